package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux platform Go supports.
const clockTicks = 100

// procStats is what Linux reports about a process in /proc.
type procStats struct {
	RSS int64         // resident set size, bytes
	CPU time.Duration // user + system time
	Sys time.Duration // of which system time: in the kernel, on the process's behalf
	ok  bool          // read: false if the process could not be read (it ended)
}

// readProc reads process pid's memory and CPU time from /proc.
func readProc(pid int) (procStats, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStats{}, err
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStats{}, err
	}
	return parseProc(status, stat)
}

// parseProc reads VmRSS from a /proc/PID/status and utime and stime from
// a /proc/PID/stat.
func parseProc(status, stat []byte) (procStats, error) {
	var ps procStats
	found := false
	for line := range strings.Lines(string(status)) {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v) // "123456 kB"
		if len(f) != 2 || f[1] != "kB" {
			return procStats{}, fmt.Errorf("proc status: odd VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return procStats{}, fmt.Errorf("proc status: VmRSS: %w", err)
		}
		ps.RSS, found = kb<<10, true
		break
	}
	if !found {
		return procStats{}, fmt.Errorf("proc status: no VmRSS line")
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, the 12th and 13th after it.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procStats{}, fmt.Errorf("proc stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return procStats{}, fmt.Errorf("proc stat: %d fields after the command name; want at least 13", len(f))
	}
	t, err := ticks(f[11:13]) // utime, stime
	if err != nil {
		return procStats{}, err
	}
	ps.CPU, ps.Sys = t[0]+t[1], t[1]
	ps.ok = true
	return ps, nil
}

// machineStats is the whole machine's CPU time so far, over all its CPUs,
// from /proc/stat.
type machineStats struct {
	Busy  time.Duration // user, nice, system, irq, softirq and steal time
	Total time.Duration // Busy, idle and iowait: the CPUs' time in all
}

// readMachine reads the machine's CPU time from /proc/stat.
func readMachine() (machineStats, error) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineStats{}, err
	}
	return parseMachine(stat)
}

// parseMachine reads the first line of a /proc/stat: "cpu" and the
// times of every CPU together, in USER_HZ: user, nice, system, idle,
// iowait, irq, softirq and steal (guest time is within user's).
func parseMachine(stat []byte) (machineStats, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return machineStats{}, fmt.Errorf("proc stat: first line %q: want cpu and at least 8 times", line)
	}
	t, err := ticks(f[1:9])
	if err != nil {
		return machineStats{}, err
	}
	busy := t[0] + t[1] + t[2] + t[5] + t[6] + t[7]
	return machineStats{Busy: busy, Total: busy + t[3] + t[4]}, nil
}

// ticks reads times counted in USER_HZ, as /proc writes them.
func ticks(fields []string) ([]time.Duration, error) {
	t := make([]time.Duration, len(fields))
	for i, s := range fields {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("proc stat: cpu time: %w", err)
		}
		// A tick is 10 ms: ticks times that, not times a second over
		// USER_HZ, which overflows from about 9×10⁹ ticks (a machine's
		// idle time, over all its CPUs, reaches that in weeks).
		t[i] = time.Duration(n) * (time.Second / clockTicks)
	}
	return t, nil
}
