package redis_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/redis"
)

// startFakeRedis serves RESP on 127.0.0.1 and answers every command with
// the error reply errLine (without its "-" and CRLF), except HELLO, which
// it does not know, as a Redis before version 6. It stops when the test
// ends.
func startFakeRedis(tb testing.TB, errLine string) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed at the end of the test
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					args, err := readCommand(r)
					if err != nil {
						return
					}
					reply := "-" + errLine + "\r\n"
					if strings.EqualFold(args[0], "HELLO") {
						reply = "-ERR unknown command 'HELLO'\r\n"
					}
					if _, err := io.WriteString(c, reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// readCommand reads one command, an array of bulk strings, from r.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not an array: %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 1 || n > 1024 {
		return nil, fmt.Errorf("bad array length: %q", line)
	}
	args := make([]string, n)
	for i := range args {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil || size < 0 || size > 1<<20 {
			return nil, fmt.Errorf("bad bulk length: %q", line)
		}
		b := make([]byte, size+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		args[i] = string(b[:size])
	}
	return args, nil
}

// TestLimiterRedisNotReady checks that a Redis answering that it cannot
// serve for now (still loading its data set after a restart, running a
// long script, a replica cut from its master or a read-only one after a
// failover) refuses what is rate-limited as unavailable (503, retry
// later), as a Redis that cannot be reached does, not as a bug (500);
// and that an error of the command itself is not called retryable.
func TestLimiterRedisNotReady(t *testing.T) {
	for _, tt := range []struct {
		reply string
		want  bool // chat.ErrUnavailable
	}{
		{"LOADING Redis is loading the dataset in memory", true},
		{"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", true},
		{"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", true},
		{"READONLY You can't write against a read only replica.", true},
		{"TRYAGAIN Multiple keys request during rehashing of slot", true},
		{"WRONGTYPE Operation against a key holding the wrong kind of value", false},
		{"ERR Error running script (call to f_0123): @user_script:1: bad", false},
	} {
		code, _, _ := strings.Cut(tt.reply, " ")
		t.Run(code, func(t *testing.T) {
			l, closeLimiter := redis.NewLimiterAt(startFakeRedis(t, tt.reply))
			defer closeLimiter()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, err := l.Allow(ctx, "k", 3, time.Minute)
			if err == nil {
				t.Fatalf("Allow with Redis answering %q = nil error; want one", tt.reply)
			}
			e := chat.AsError(err)
			got := e != nil && e.Code == chat.CodeUnavailable && errors.Is(err, chat.ErrUnavailable)
			if got != tt.want {
				t.Errorf("Allow with Redis answering %q = %v; unavailable %v, want %v", tt.reply, err, got, tt.want)
			}
			err = l.Undo(ctx, "k")
			if got := errors.Is(err, chat.ErrUnavailable); got != tt.want {
				t.Errorf("Undo with Redis answering %q = %v; unavailable %v, want %v", tt.reply, err, got, tt.want)
			}
		})
	}
}
