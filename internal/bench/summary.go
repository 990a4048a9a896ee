package bench

import (
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// WriteSummary writes r for people, a few aligned lines.
func (r Result) WriteSummary(w io.Writer) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-12s %s\n", label, fmt.Sprintf(format, args...))
	}
	rate := "as fast as possible"
	switch {
	case r.Idle:
		rate = "idle"
	case r.Rate > 0:
		rate = fmt.Sprintf("%g messages/s", r.Rate)
	}
	kind := "room"
	if r.Groups {
		kind = "group"
	}
	line("bench", "%s, %d connections, %d %ss, %d senders, %s", r.Transport, r.ConnsEstablished+r.ConnsFailed, r.Rooms, kind, r.Senders, rate)
	line("connections", "%d established, %d failed, %d dropped; %.2fs to connect (%.0f/s)",
		r.ConnsEstablished, r.ConnsFailed, r.ConnsDropped, r.ConnectSeconds, r.ConnectRate)
	if r.Groups {
		line("", "%.2fs to create the groups first", r.GroupSetupSeconds)
	}
	if r.ConnectError != "" {
		line("", "first failure: %s", r.ConnectError)
	}
	if r.Senders > 0 {
		acked := "acked"
		if r.Transport == TransportCompat {
			acked = "echoed to their sender"
		}
		unanswered := ""
		if r.Unanswered > 0 {
			unanswered = fmt.Sprintf(", %d unanswered", r.Unanswered)
		}
		line("messages", "%d sent in %.1fs, %d %s, %d errors%s%s", r.MessagesSent, r.DurationSeconds, r.MessagesAcked, acked, r.SendErrors, codes(r.SendErrorCodes), unanswered)
		if r.ReadsSent > 0 || r.ReadErrors > 0 {
			line("reads", "%d read positions sent, %d errors%s; %d receipt frames received", r.ReadsSent, r.ReadErrors, codes(r.ReadErrorCodes), r.ReceiptFrames)
		}
		line("deliveries", "%d received of %d expected (%.0f/s)", r.DeliveriesReceived, r.DeliveriesExpected, r.DeliveriesPerSec)
		check := "sequence per " + kind
		if r.Transport == TransportCompat {
			check = "per sender: compat frames have no sequence numbers"
		}
		line("checked", "%d lost, %d duplicated, %d out of order (%s)", r.Lost, r.Duplicated, r.OutOfOrder, check)
		line("latency", "p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms", r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
		line("to first", "p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms (each message to its first recipient)",
			r.LatencyFirst.P50, r.LatencyFirst.P90, r.LatencyFirst.P99, r.LatencyFirst.Max)
		line("to last", "p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms (each message to its last recipient)",
			r.LatencyLast.P50, r.LatencyLast.P90, r.LatencyLast.P99, r.LatencyLast.Max)
	} else {
		line("held", "%.1fs", r.DurationSeconds)
	}
	if s := r.Server; s != nil {
		line("server RSS", "%s before, %s connected (%s per connection), %s at the end",
			mib(s.RSSBefore), mib(s.RSSAfter), kib(s.RSSPerConn), mib(s.RSSEnd))
		if !s.cpuRead {
			line("server CPU", "not measured: the process could not be read (see the notes)")
		} else if r.Senders > 0 {
			line("server CPU", "%.2fs sending and draining (%.1fµs per delivery, %s)", s.CPUSeconds, s.CPUPerDeliveryUS, inKernel(s.CPUSystemSeconds, s.CPUSeconds))
		} else {
			line("server CPU", "%.2fs connecting (%s)", s.CPUSeconds, inKernel(s.CPUSystemSeconds, s.CPUSeconds))
		}
	}
	if r.ToolCPUSeconds > 0 {
		line("tool CPU", "%.2fs sending and draining (%.1fµs per delivery, %s)", r.ToolCPUSeconds, r.ToolCPUPerDeliveryUS, inKernel(r.ToolCPUSystemSeconds, r.ToolCPUSeconds))
	}
	if r.MachineCPUSeconds > 0 {
		other := ""
		if s := r.Server; s != nil && s.cpuRead {
			// The three are counted in ticks, over nearly the same span.
			other = fmt.Sprintf("; %.2fs of it neither the server's nor this tool's", max(r.MachineBusySeconds-s.CPUSeconds-r.ToolCPUSeconds, 0))
		}
		line("machine CPU", "%.2fs busy of %.2fs sending and draining (%.0f %%)%s",
			r.MachineBusySeconds, r.MachineCPUSeconds, 100*r.MachineBusySeconds/r.MachineCPUSeconds, other)
	}
	for _, n := range r.Notes {
		line("note", "%s", n)
	}
	switch {
	case r.OK:
		line("result", "OK")
	case r.Interrupted:
		line("result", "FAILED (%s)", r.InterruptReason)
	default:
		line("result", "FAILED")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func codes(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", c, m[c]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
func kib(n int64) string { return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10)) }

// inKernel says what share of cpu seconds sys was: the system time, spent
// in the kernel on the process's behalf.
func inKernel(sys, cpu float64) string {
	if cpu <= 0 {
		return "none of it in the kernel"
	}
	return fmt.Sprintf("%.0f %% of it in the kernel", 100*sys/cpu)
}

// messagesHeader names the columns WriteMessages writes.
var messagesHeader = []string{"room", "sender", "n", "sent_unix_ns", "receivers", "first_us", "median_us", "last_us"}

// WriteMessages writes r.Messages as CSV, a header line first: one line
// per message, its latencies in µs.
func (r Result) WriteMessages(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(messagesHeader); err != nil {
		return err
	}
	rec := make([]string, len(messagesHeader))
	for _, m := range r.Messages {
		var sent int64
		if !m.Sent.IsZero() {
			sent = m.Sent.UnixNano()
		}
		rec = append(rec[:0],
			strconv.Itoa(m.Room), strconv.Itoa(m.Sender), strconv.FormatInt(m.N, 10),
			strconv.FormatInt(sent, 10), strconv.Itoa(m.Receivers),
			strconv.FormatInt(m.First.Microseconds(), 10),
			strconv.FormatInt(m.Median.Microseconds(), 10),
			strconv.FormatInt(m.Last.Microseconds(), 10))
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
