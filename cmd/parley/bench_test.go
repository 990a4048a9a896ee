package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBenchCommand(t *testing.T) {
	ctx := context.Background()
	noEnv := func(string) string { return "" }
	db := filepath.Join(t.TempDir(), "bench.db")
	var tokens, stderr bytes.Buffer
	if err := run(ctx, []string{"admin", "sessions", "--db", db, "--count", "6"}, noEnv, &tokens, &stderr); err != nil {
		t.Fatalf("admin sessions: %v\n%s", err, stderr.String())
	}
	tokenFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokenFile, tokens.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--db", db, "--send-rate", "1000", "--send-burst", "1000", "--channels-compat")

	prof := filepath.Join(t.TempDir(), "bench.cpu")
	perMessage := filepath.Join(t.TempDir(), "messages.csv")
	for _, tc := range []struct {
		name, transport string
		args            []string
	}{
		{"ws", "ws", []string{"--tokens", tokenFile, "--messages", perMessage}},
		{"compat", "compat", []string{"--transport", "compat"}},
		{"longpoll", "longpoll", []string{"--transport", "longpoll", "--tokens", tokenFile}},
		{"groups", "ws", []string{"--tokens", tokenFile, "--groups", "--cpuprofile", prof}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"bench", "--targets", s.URL, "--conns", "6", "--rooms", "2", "--senders", "1",
				"--rate", "40", "--duration", "500ms", "--drain", "2s"}, tc.args...)
			if err := run(ctx, args, noEnv, &stdout, &stderr); err != nil {
				t.Fatalf("parley bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			var res struct {
				Transport          string `json:"transport"`
				ConnsEstablished   int    `json:"conns_established"`
				MessagesSent       int64  `json:"messages_sent"`
				DeliveriesExpected int64  `json:"deliveries_expected"`
				DeliveriesReceived int64  `json:"deliveries_received"`
				OK                 bool   `json:"ok"`
			}
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
				t.Fatalf("last line of output is not the JSON result: %v\n%s", err, stdout.String())
			}
			if res.Transport != tc.transport || res.ConnsEstablished != 6 || res.MessagesSent == 0 ||
				res.DeliveriesReceived != res.DeliveriesExpected || res.DeliveriesExpected != 3*res.MessagesSent || !res.OK {
				t.Errorf("result = %+v; want %s, 6 connections, every message to 3 connections, ok\n%s", res, tc.transport, stdout.String())
			}
			if !strings.Contains(stdout.String(), "result       OK") {
				t.Errorf("no summary in the output:\n%s", stdout.String())
			}
			if tc.name == "ws" {
				checkPerMessage(t, perMessage, res.MessagesSent)
			}
		})
	}
	// --messages is made before the run: a path that cannot be written
	// fails at once.
	var mout0 bytes.Buffer
	err := run(ctx, []string{"bench", "--targets", s.URL, "--tokens", tokenFile, "--conns", "2",
		"--messages", filepath.Join(t.TempDir(), "no-such-dir", "m.csv")}, noEnv, &mout0, &mout0)
	if err == nil || !strings.Contains(err.Error(), "no-such-dir") || strings.Contains(mout0.String(), "connecting") {
		t.Errorf("bench --messages into a missing directory = %v; want an error before connecting\n%s", err, mout0.String())
	}
	// --cpuprofile wrote a profile: gzip-compressed protocol buffers.
	if b, err := os.ReadFile(prof); err != nil || len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("--cpuprofile: %d bytes, %v; want a gzip-compressed profile", len(b), err)
	}

	// Users made members beforehand: the bench's entering adds no join.
	members := filepath.Join(t.TempDir(), "members.db")
	var memberTokens bytes.Buffer
	if err := run(ctx, []string{"admin", "sessions", "--db", members, "--count", "3", "--room", "bench-0"}, noEnv, &memberTokens, &stderr); err != nil {
		t.Fatalf("admin sessions --room: %v\n%s", err, stderr.String())
	}
	memberFile := filepath.Join(t.TempDir(), "member-tokens")
	if err := os.WriteFile(memberFile, memberTokens.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ms := startServer(t, "--db", members, "--send-rate", "1000", "--send-burst", "1000")
	var room struct {
		Room struct {
			ID      int64 `json:"id"`
			LastSeq int64 `json:"last_seq"`
			Members int   `json:"members"`
		} `json:"room"`
	}
	postJSON(t, signIn(t, ms, "zed@example.com", "Zed"), "POST", ms.URL+"/api/rooms", map[string]string{"name": "bench-0"}, http.StatusOK, &room)
	if room.Room.Members != 4 || room.Room.LastSeq != 4 {
		t.Errorf("bench-0 after 3 members were made and Zed entered = %+v; want 4 members, 4 joins", room.Room)
	}
	var mout bytes.Buffer
	if err := run(ctx, []string{"bench", "--targets", ms.URL, "--tokens", memberFile, "--conns", "3", "--senders", "1",
		"--rate", "20", "--duration", "300ms", "--drain", "2s"}, noEnv, &mout, &mout); err != nil {
		t.Fatalf("parley bench on members: %v\n%s", err, mout.String())
	}
	if !strings.Contains(mout.String(), "result       OK") {
		t.Errorf("bench on members made beforehand:\n%s", mout.String())
	}
	if err := run(ctx, []string{"admin", "sessions", "--db", members, "--room", "no spaces"}, noEnv, &memberTokens, &stderr); err == nil {
		t.Error("admin sessions --room with a bad name succeeded")
	}

	// Half the clients cannot connect (a token the server never issued):
	// whatever the others got, the run is not OK.
	badTokens := filepath.Join(t.TempDir(), "bad-tokens")
	first, _, _ := strings.Cut(tokens.String(), "\n")
	if err := os.WriteFile(badTokens, []byte(first+"\nnot-a-session-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var bout bytes.Buffer
	err = run(ctx, []string{"bench", "--targets", s.URL, "--tokens", badTokens, "--conns", "4", "--senders", "1",
		"--rate", "20", "--duration", "300ms", "--drain", "1s"}, noEnv, &bout, &bout)
	if err == nil || !strings.Contains(err.Error(), "of 4 connections, 2 failed to connect") ||
		!strings.Contains(bout.String(), "result       FAILED") || !strings.Contains(bout.String(), `"ok":false`) {
		t.Errorf("bench with 2 of 4 clients unable to connect = %v; want an error naming them, and the run not OK\n%s", err, bout.String())
	}

	var out bytes.Buffer
	err = run(ctx, []string{"bench", "--targets", s.URL, "--transport", "longpoll"}, noEnv, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "needs session tokens") {
		t.Errorf("bench --transport longpoll without --tokens = %v; want an error asking for tokens", err)
	}
}

func TestBenchTokens(t *testing.T) {
	in := "# made by parley admin sessions\n1\tbench-1@bench.invalid\tAAA\n\n2\tbench-2@bench.invalid\tBBB\nCCC\n"
	got, err := parseTokens(strings.NewReader(in), "tokens")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"AAA", "BBB", "CCC"}, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "# nothing\n", "1 two\n"} {
		if _, err := parseTokens(strings.NewReader(bad), "tokens"); err == nil {
			t.Errorf("parseTokens(%q): no error", bad)
		}
	}
}

// checkPerMessage reads what --messages wrote for a run of 2 rooms of 3
// connections with a sender each: a line per message sent, every one
// received by the 3 connections of its room, in the order sent.
func checkPerMessage(t *testing.T, path string, sent int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("--messages: %v", err)
	}
	if len(rows) == 0 || strings.Join(rows[0], ",") != "room,sender,n,sent_unix_ns,receivers,first_us,median_us,last_us" {
		t.Fatalf("--messages header = %q", rows)
	}
	if int64(len(rows)-1) != sent {
		t.Fatalf("--messages has %d messages; %d were sent", len(rows)-1, sent)
	}
	next := map[string]int64{} // room/sender: the number due next
	var prevSent int64
	for _, r := range rows[1:] {
		v := make([]int64, len(r))
		for i, x := range r {
			if v[i], err = strconv.ParseInt(x, 10, 64); err != nil {
				t.Fatalf("--messages line %q: %v", r, err)
			}
		}
		key := r[0] + "/" + r[1]
		next[key]++
		if v[0] < 0 || v[0] > 1 || v[1] != 0 || v[2] != next[key] || v[3] <= 0 || v[4] != 3 ||
			!(0 < v[5] && v[5] <= v[6] && v[6] <= v[7] && v[7] < 10_000_000) {
			t.Errorf("--messages line %q: want room 0 or 1, sender 0, the next number (%d), a send time, 3 receivers, 0 < first <= median <= last < 10 s", r, next[key])
		}
		if v[0] == 0 && v[3] < prevSent {
			t.Errorf("--messages line %q: sent before the message above it", r)
		}
		if v[0] == 0 {
			prevSent = v[3]
		}
	}
}

// TestBenchRefusesBeforeWriting: flags a run cannot go with are refused
// with an error before anything is written: the files of --messages and
// --cpuprofile, which may hold an earlier run's, are left as they were,
// and nothing is printed to stdout.
func TestBenchRefusesBeforeWriting(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--conns", "0"}, "conns"},
		{[]string{"--duration", "-1s"}, "duration"},
		{[]string{"--drain", "-1s"}, "drain"},
		{[]string{"--settle", "1h"}, "settle"},
		{[]string{"--rate", "-1"}, "rate"},
		{[]string{"--inflight", "-1"}, "in-flight"},
		{[]string{"--ramp", "NaN"}, "ramp"},
		{[]string{"--groups"}, "groups need a signed-in transport"},
		{[]string{"--transport", "carrier-pigeon"}, "carrier-pigeon"},
		{[]string{"--targets", "ftp://127.0.0.1:1"}, "target"},
		{[]string{"--conns", "2000000000"}, "ulimit -n"},
		// Zero is what bench.Config takes for its default; the flags
		// have their defaults already, and refuse it.
		{[]string{"--rooms", "0"}, "--rooms"},
		{[]string{"--ramp", "0"}, "--ramp"},
		{[]string{"--drain", "0"}, "--drain"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			msgs, prof := filepath.Join(dir, "messages.csv"), filepath.Join(dir, "bench.cpu")
			for _, f := range []string{msgs, prof} {
				if err := os.WriteFile(f, []byte("an earlier run's\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"bench", "--transport", "compat", "--targets", "http://127.0.0.1:1", "--duration", "100ms",
				"--messages", msgs, "--cpuprofile", prof}, tt.args...)
			var stdout bytes.Buffer
			err := run(t.Context(), args, func(string) string { return "" }, &stdout, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parley %s = %v; want an error naming %s", strings.Join(args, " "), err, tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("parley %s printed %q; want nothing", strings.Join(args, " "), stdout.String())
			}
			for _, f := range []string{msgs, prof} {
				if b, err := os.ReadFile(f); err != nil || string(b) != "an earlier run's\n" {
					t.Errorf("after parley %s, %s holds %d bytes (%q…), %v; want it as it was", strings.Join(tt.args, " "), filepath.Base(f), len(b), b[:min(len(b), 8)], err)
				}
			}
		})
	}
}
