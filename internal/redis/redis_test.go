package redis_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/chat/chattest"
	"github.com/parley-chat/parley/internal/redis"
	"github.com/parley-chat/parley/internal/testenv"
)

// testEnv is one test's Redis: the URL and a key prefix of its own, whose
// keys are deleted when the test ends.
type testEnv struct {
	url    string
	prefix string
	raw    *goredis.Client
}

// newTestEnv skips the test when no Redis is at PARLEY_TEST_REDIS or, if
// that is empty, at 127.0.0.1:6379; it fails when PARLEY_TEST_REDIS is set
// and unreachable (testenv.Redis).
func newTestEnv(tb testing.TB) *testEnv {
	tb.Helper()
	url, prefix, raw := testenv.Redis(tb)
	return &testEnv{url: url, prefix: prefix, raw: raw}
}

// client starts a node on the test's prefix, closed when the test ends.
func (e *testEnv) client(tb testing.TB, opts redis.Options) *redis.Client {
	tb.Helper()
	opts.Prefix = e.prefix
	c, err := redis.New(context.Background(), e.url, opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return c
}

func TestBroker(t *testing.T) {
	chattest.TestBroker(t, func(t *testing.T) chat.Broker {
		return newTestEnv(t).client(t, redis.Options{}).Broker()
	})
}

func TestPresence(t *testing.T) {
	chattest.TestPresence(t, func(t *testing.T) chat.Presence {
		return newTestEnv(t).client(t, redis.Options{}).Presence()
	})
}

func TestLimiter(t *testing.T) {
	chattest.TestLimiter(t, func(t *testing.T) chat.Limiter {
		return newTestEnv(t).client(t, redis.Options{}).Limiter()
	})
}

func TestNewUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := redis.New(ctx, "redis://127.0.0.1:1/0", redis.Options{}); err == nil {
		c.Close()
		t.Fatal("New with nothing listening = nil error; want an error")
	}
	if _, err := redis.New(ctx, "http://example.com", redis.Options{}); err == nil {
		t.Fatal("New with a bad URL = nil error; want an error")
	}
}

// TestNewHidesMalformedPassword: a URL whose password was not
// percent-encoded is refused without any of the password in the error.
func TestNewHidesMalformedPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const secret = "redis-secret-3"
	for _, u := range []string{
		"redis://parley:" + secret + "/x@127.0.0.1:1/0",
		"redis://parley:" + secret + "#x@127.0.0.1:1/0",
		"redis://parley:%zz" + secret + "@127.0.0.1:1/0",
	} {
		c, err := redis.New(ctx, u, redis.Options{})
		if err == nil {
			c.Close()
			t.Errorf("New(%q) = nil error; want an error", u)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("New(%q) = %v, which shows the password", u, err)
		}
	}
}

// events records what a subscription receives.
type events struct {
	mu     sync.Mutex
	seqs   []int64
	signal chan struct{}
}

func newEvents() *events { return &events{signal: make(chan struct{}, 1)} }

func (e *events) add(ev chat.Event) {
	e.mu.Lock()
	e.seqs = append(e.seqs, ev.Message.Seq)
	e.mu.Unlock()
	select {
	case e.signal <- struct{}{}:
	default:
	}
}

// wait returns the seqs received once there are n, failing after timeout.
func (e *events) wait(tb testing.TB, n int, timeout time.Duration) []int64 {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		e.mu.Lock()
		got := slices.Clone(e.seqs)
		e.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-e.signal:
		case <-deadline:
			tb.Fatalf("received %d events %v; want %d within %s", len(got), got, n, timeout)
		}
	}
}

func msg(conv, seq int64) chat.Event {
	return chat.Event{Type: chat.EventMessage, ConvID: conv, Message: &chat.Message{ConvID: conv, Seq: seq, Kind: chat.KindText, Body: "hi"}}
}

func seqs(from, to int64) []int64 {
	var s []int64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestBrokerTwoNodes(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	a, b := e.client(t, redis.Options{}).Broker(), e.client(t, redis.Options{}).Broker()
	onA, onB, otherB := newEvents(), newEvents(), newEvents()
	for _, s := range []struct {
		b  *redis.Broker
		t  chat.Topic
		ev *events
	}{{a, chat.ConvTopic(1), onA}, {b, chat.ConvTopic(1), onB}, {b, chat.ConvTopic(2), otherB}} {
		cancel, err := s.b.Subscribe(s.t, s.ev.add)
		if err != nil {
			t.Fatal(err)
		}
		defer cancel()
	}
	for i := int64(1); i <= 100; i++ {
		if err := a.Publish(ctx, chat.ConvTopic(1), msg(1, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx, chat.ConvTopic(2), msg(2, 1)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seqs(1, 100), onB.wait(t, 100, 5*time.Second)); diff != "" {
		t.Errorf("node B mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(seqs(1, 100), onA.wait(t, 100, 5*time.Second)); diff != "" {
		t.Errorf("node A mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{1}, otherB.wait(t, 1, 5*time.Second)); diff != "" {
		t.Errorf("node B, other topic mismatch (-want +got):\n%s", diff)
	}
}

// numSub returns how many connections Redis has subscribed to topic t.
func (e *testEnv) numSub(tb testing.TB, t chat.Topic) int64 {
	tb.Helper()
	m, err := e.raw.PubSubNumSub(context.Background(), e.prefix+string(t)).Result()
	if err != nil {
		tb.Fatal(err)
	}
	return m[e.prefix+string(t)]
}

// eventually polls cond every 20 ms until it holds, failing after timeout.
func eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBrokerSubscribeWhileRedisHangs: while Redis does not answer (its
// host gone), Subscribe and cancel return without waiting for it, since
// the hub calls them with its lock held on every connect, open and
// disconnect; once Redis answers again, the topics subscribed meanwhile
// receive what is published, and those cancelled meanwhile do not stay
// subscribed.
func TestBrokerSubscribeWhileRedisHangs(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	var logs syncLog
	c, p := e.clientViaProxy(t, redis.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	b := c.Broker()
	resumed := subscribeResumes(t, b, chat.ConvTopic(1), func(chat.Event) {})
	p.Hang()
	eventually(t, 10*time.Second, "the connection found lost", func() bool { return logs.contains("pub/sub connection lost") })

	// Each would wait for SubscribeTimeout (5 s), one after another.
	start := time.Now()
	got := newEvents()
	var cancels []func()
	for i := range 4 {
		cancel, err := b.Subscribe(chat.ConvTopic(int64(10+i)), got.add)
		if err != nil {
			t.Fatal(err)
		}
		cancels = append(cancels, cancel)
	}
	cancels[3]()
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("4 Subscribes and a cancel with Redis hanging took %v; want no wait for Redis", d.Round(time.Millisecond))
	}
	p.Restore(t)
	select {
	case <-resumed:
	case <-time.After(15 * time.Second):
		t.Fatal("OnResume not called within 15s of Redis answering again")
	}
	pub := e.client(t, redis.Options{}).Broker()
	for i := range 3 {
		if err := pub.Publish(ctx, chat.ConvTopic(int64(10+i)), msg(int64(10+i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	got.wait(t, 3, 5*time.Second)
	eventually(t, 5*time.Second, "the topic cancelled meanwhile unsubscribed", func() bool { return e.numSub(t, chat.ConvTopic(13)) == 0 })
	for _, cancel := range cancels[:3] {
		cancel()
	}
}

// syncLog is a log sink tests may read while the code under test writes.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *syncLog) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

func TestBrokerOneSubscriptionPerTopic(t *testing.T) {
	e := newTestEnv(t)
	b := e.client(t, redis.Options{}).Broker()
	var cancels []func()
	for range 3 {
		for _, tp := range []chat.Topic{chat.ConvTopic(1), chat.UserTopic(1)} {
			cancel, err := b.Subscribe(tp, func(chat.Event) {})
			if err != nil {
				t.Fatal(err)
			}
			cancels = append(cancels, cancel)
		}
	}
	for _, tp := range []chat.Topic{chat.ConvTopic(1), chat.UserTopic(1)} {
		if n := e.numSub(t, tp); n != 1 {
			t.Errorf("PUBSUB NUMSUB %s = %d; want 1 (one connection per node)", tp, n)
		}
	}
	for _, cancel := range cancels[:4] {
		cancel()
	}
	if n := e.numSub(t, chat.ConvTopic(1)); n != 1 {
		t.Errorf("PUBSUB NUMSUB with a subscriber left = %d; want 1", n)
	}
	for _, cancel := range cancels[4:] {
		cancel()
	}
	eventually(t, 5*time.Second, "UNSUBSCRIBE after the last cancel", func() bool {
		return e.numSub(t, chat.ConvTopic(1)) == 0 && e.numSub(t, chat.UserTopic(1)) == 0
	})
}

func TestBrokerClosed(t *testing.T) {
	e := newTestEnv(t)
	b := e.client(t, redis.Options{}).Broker()
	cancel, err := b.Subscribe(chat.ConvTopic(1), func(chat.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	cancel() // harmless after Close
	if err := b.Publish(context.Background(), chat.ConvTopic(1), msg(1, 1)); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("Publish after Close = %v; want ErrClosed", err)
	}
	if _, err := b.Subscribe(chat.ConvTopic(1), func(chat.Event) {}); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("Subscribe after Close = %v; want ErrClosed", err)
	}
}

func TestBrokerResumesAfterConnectionKill(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	a := e.client(t, redis.Options{}).Broker()
	pub := e.client(t, redis.Options{}).Broker()
	got := newEvents()
	resumed := subscribeResumes(t, a, chat.ConvTopic(1), got.add)
	if err := pub.Publish(ctx, chat.ConvTopic(1), msg(1, 1)); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1, 5*time.Second)

	n, err := e.raw.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
	if err != nil || n < 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub = %d, %v; want at least 1 killed", n, err)
	}
	select {
	case <-resumed:
	case <-time.After(15 * time.Second):
		t.Fatal("OnResume not called within 15s of the connection kill")
	}
	if err := pub.Publish(ctx, chat.ConvTopic(1), msg(1, 2)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{1, 2}, got.wait(t, 2, 5*time.Second)); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
	// A topic subscribed after the resume works too.
	later := newEvents()
	cancel2, err := a.Subscribe(chat.ConvTopic(2), later.add)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel2()
	if err := pub.Publish(ctx, chat.ConvTopic(2), msg(2, 1)); err != nil {
		t.Fatal(err)
	}
	later.wait(t, 1, 5*time.Second)
}

// watched records what a Presence's Watch functions receive: presences
// ended in got, presences back in back.
type watched struct {
	mu     sync.Mutex
	got    [][2]int64
	back   [][2]int64
	signal chan struct{}
}

func watch(p *redis.Presence) *watched {
	w := &watched{signal: make(chan struct{}, 1)}
	p.Watch(func(conv, user int64, online bool) {
		w.mu.Lock()
		if online {
			w.back = append(w.back, [2]int64{conv, user})
		} else {
			w.got = append(w.got, [2]int64{conv, user})
		}
		w.mu.Unlock()
		select {
		case w.signal <- struct{}{}:
		default:
		}
	})
	return w
}

func (w *watched) all() [][2]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	got := slices.Clone(w.got)
	slices.SortFunc(got, func(a, b [2]int64) int {
		if a[0] != b[0] {
			return int(a[0] - b[0])
		}
		return int(a[1] - b[1])
	})
	return got
}

// waitBack returns the presences reported back once there is one, failing
// after 5 s; what names the wait.
func (w *watched) waitBack(t *testing.T, what string) [][2]int64 {
	t.Helper()
	eventually(t, 5*time.Second, what, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.back) > 0
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.back)
}

// wait returns what was reported once there are n, failing after timeout.
func (w *watched) wait(tb testing.TB, n int, timeout time.Duration) [][2]int64 {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		if got := w.all(); len(got) >= n {
			return got
		}
		select {
		case <-w.signal:
		case <-deadline:
			tb.Fatalf("Watch reported %v; want %d presences within %s", w.all(), n, timeout)
		}
	}
}

func mustAdd(tb testing.TB, p chat.Presence, conv, user int64, want bool) {
	tb.Helper()
	if got, err := p.Add(context.Background(), conv, user); err != nil || got != want {
		tb.Fatalf("Add(%d, %d) = %v, %v; want %v", conv, user, got, err, want)
	}
}

func mustRemove(tb testing.TB, p chat.Presence, conv, user int64, want bool) {
	tb.Helper()
	if got, err := p.Remove(context.Background(), conv, user); err != nil || got != want {
		tb.Fatalf("Remove(%d, %d) = %v, %v; want %v", conv, user, got, err, want)
	}
}

func online(tb testing.TB, p chat.Presence, conv int64) []int64 {
	tb.Helper()
	ids, n, err := p.Online(context.Background(), conv, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	if n != len(ids) {
		tb.Fatalf("Online(%d) counts %d, lists %v", conv, n, ids)
	}
	slices.Sort(ids)
	return ids
}

func TestPresenceTwoNodesCountOnce(t *testing.T) {
	e := newTestEnv(t)
	a, b := e.client(t, redis.Options{}).Presence(), e.client(t, redis.Options{}).Presence()
	mustAdd(t, a, 1, 7, true)  // online
	mustAdd(t, b, 1, 7, false) // already online on A
	mustAdd(t, a, 1, 7, false)
	mustAdd(t, b, 1, 8, true)
	for _, p := range []chat.Presence{a, b} {
		if diff := cmp.Diff([]int64{7, 8}, online(t, p, 1)); diff != "" {
			t.Errorf("Online mismatch (-want +got):\n%s", diff)
		}
	}
	mustRemove(t, a, 1, 7, false)
	mustRemove(t, a, 1, 7, false) // gone from A, still on B
	if diff := cmp.Diff([]int64{7, 8}, online(t, a, 1)); diff != "" {
		t.Errorf("Online mismatch (-want +got):\n%s", diff)
	}
	mustRemove(t, b, 1, 7, true) // gone everywhere
	if diff := cmp.Diff([]int64{8}, online(t, a, 1)); diff != "" {
		t.Errorf("Online mismatch (-want +got):\n%s", diff)
	}
	got, err := a.OnlineOf(context.Background(), 1, []int64{7, 8, 9})
	if err != nil || !slices.Equal(got, []int64{8}) {
		t.Errorf("OnlineOf = %v, %v; want [8]", got, err)
	}
	// Concurrent first connections on two nodes: exactly one is first.
	var wg sync.WaitGroup
	var firsts, lasts [2]bool
	for i, p := range []chat.Presence{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := p.Add(context.Background(), 2, 5)
			if err != nil {
				t.Error(err)
			}
			firsts[i] = f
		}()
	}
	wg.Wait()
	if firsts[0] == firsts[1] {
		t.Errorf("concurrent Add on two nodes: first = %v; want exactly one", firsts)
	}
	for i, p := range []chat.Presence{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := p.Remove(context.Background(), 2, 5)
			if err != nil {
				t.Error(err)
			}
			lasts[i] = l
		}()
	}
	wg.Wait()
	if lasts[0] == lasts[1] {
		t.Errorf("concurrent Remove on two nodes: last = %v; want exactly one", lasts)
	}
}

func TestPresenceDeadNode(t *testing.T) {
	const ttl = time.Second
	e := newTestEnv(t)
	a := e.client(t, redis.Options{NodeTTL: ttl}).Presence()
	b := e.client(t, redis.Options{NodeTTL: ttl}).Presence()
	c := e.client(t, redis.Options{NodeTTL: ttl}).Presence()
	wa, wb, wc := watch(a), watch(b), watch(c)
	mustAdd(t, a, 1, 10, true)
	mustAdd(t, a, chat.Everywhere, 10, true)
	mustAdd(t, a, 1, 11, true)
	mustAdd(t, a, 1, 11, false)
	mustAdd(t, b, 1, 11, false) // also on B: stays present
	mustAdd(t, b, 1, 12, true)

	start := time.Now()
	a.Crash()
	want := [][2]int64{{chat.Everywhere, 10}, {1, 10}}
	deadline := time.Now().Add(10 * ttl)
	for {
		got := append(wb.all(), wc.all()...)
		if len(got) >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Watch reported %v; want %v within %s", got, want, 10*ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("dead node reported %s after the crash (NodeTTL %s)", time.Since(start).Round(time.Millisecond), ttl)
	// Give a second reaper time to (wrongly) report again.
	time.Sleep(2 * ttl)
	got := append(wb.all(), wc.all()...)
	slices.SortFunc(got, func(x, y [2]int64) int { return int(x[0]-y[0])*1000 + int(x[1]-y[1]) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Watch on the survivors mismatch (-want +got):\n%s", diff)
	}
	if got := wa.all(); len(got) != 0 {
		t.Errorf("the dead node's Watch got %v; want nothing", got)
	}
	if diff := cmp.Diff([]int64{11, 12}, online(t, b, 1)); diff != "" {
		t.Errorf("Online after the reap mismatch (-want +got):\n%s", diff)
	}
	if got := online(t, c, chat.Everywhere); len(got) != 0 {
		t.Errorf("Online(Everywhere) after the reap = %v; want none", got)
	}
	mustRemove(t, b, 1, 11, true) // B was the last holder
	mustAdd(t, c, 1, 10, true)    // 10 comes back on C
}

func TestPresenceCloseEndsHeld(t *testing.T) {
	e := newTestEnv(t)
	ca := e.client(t, redis.Options{})
	a, b := ca.Presence(), e.client(t, redis.Options{}).Presence()
	wa, wb := watch(a), watch(b)
	mustAdd(t, a, 1, 10, true)
	mustAdd(t, a, 1, 11, true)
	mustAdd(t, b, 1, 11, false)
	mustAdd(t, a, 1, 12, true)
	mustRemove(t, a, 1, 12, true) // removed before Close: not reported
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][2]int64{{1, 10}}, wa.all()); diff != "" {
		t.Errorf("Watch on the closed node mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{11}, online(t, b, 1)); diff != "" {
		t.Errorf("Online after Close mismatch (-want +got):\n%s", diff)
	}
	if _, err := a.Add(context.Background(), 1, 1); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("Add after Close = %v; want ErrClosed", err)
	}
	if got := wb.all(); len(got) != 0 {
		t.Errorf("Watch on the other node got %v; want nothing", got)
	}
}

// TestPresenceStateAcrossNodes: the version State gives a user's presence
// grows with each of its changes, whichever node made it or reads it: by
// a connection's end, by the reap of a dead node, and after Redis has lost
// its clock (a restart without persistence).
func TestPresenceStateAcrossNodes(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	ca, proxy := e.clientViaProxy(t, redis.Options{NodeID: "a"})
	a := ca.Presence()
	b := e.client(t, redis.Options{NodeID: "b", NodeTTL: time.Second}).Presence() // sweeps every ~170 ms
	readers := []chat.Presence{a, b}
	last := int64(0)
	state := func(want bool, newer bool) {
		t.Helper()
		for _, p := range readers {
			on, v, err := p.State(ctx, chat.Everywhere, 7)
			if err != nil || on != want {
				t.Fatalf("State(7) = %v, %d, %v; want online %v", on, v, err, want)
			}
			if newer && v <= last || !newer && v != last {
				t.Fatalf("State(7) version %d after %d; want newer %v", v, last, newer)
			}
			last, newer = v, false
		}
	}
	mustAdd(t, a, chat.Everywhere, 7, true)
	state(true, true)
	mustAdd(t, b, chat.Everywhere, 7, false)
	state(true, false)
	mustRemove(t, a, chat.Everywhere, 7, false) // still on B
	state(true, false)
	mustRemove(t, b, chat.Everywhere, 7, true)
	state(false, true)

	// Redis loses everything: the clock starts again beyond where it was.
	keys, err := e.raw.Keys(ctx, e.prefix+"presence:clock").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("clock keys = %v, %v; want one", keys, err)
	}
	if err := e.raw.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	if on, v, err := a.State(ctx, chat.Everywhere, 7); err != nil || on || v != 0 {
		t.Errorf("State(7) without a clock = %v, %d, %v; want offline, version 0", on, v, err)
	}
	mustAdd(t, a, chat.Everywhere, 7, true)
	state(true, true)

	// A is cut off, taken for dead and reaped by B: 7 goes offline with
	// a newer version.
	wb := watch(b)
	proxy.Cut()
	readers = []chat.Presence{b}
	if err := e.raw.Del(ctx, e.prefix+"presence:node:a").Err(); err != nil {
		t.Fatal(err)
	}
	wb.wait(t, 1, 10*time.Second)
	state(false, true)
}

// TestPresenceRewriteAfterReap: a node whose heartbeat key vanished (as
// after a long pause) is reaped by another, then writes its presences
// again on its next heartbeat.
func TestPresenceRewriteAfterReap(t *testing.T) {
	e := newTestEnv(t)
	a := e.client(t, redis.Options{NodeID: "a", NodeTTL: 12 * time.Second}).Presence() // heartbeat every 2 s
	b := e.client(t, redis.Options{NodeID: "b", NodeTTL: time.Second}).Presence()      // sweeps every ~170 ms
	wa, wb := watch(a), watch(b)
	mustAdd(t, a, 1, 10, true)
	mustAdd(t, a, 1, 11, true)
	mustAdd(t, b, 1, 11, false) // 11 is on B too: never gone
	if err := e.raw.Del(context.Background(), e.prefix+"presence:node:a").Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][2]int64{{1, 10}}, wb.wait(t, 1, 10*time.Second)); diff != "" {
		t.Errorf("Watch mismatch (-want +got):\n%s", diff)
	}
	eventually(t, 15*time.Second, "presence written again", func() bool {
		return slices.Equal(online(t, b, 1), []int64{10, 11})
	})
	// 10 was reported gone: A, writing it again, reports it back (to tell
	// who was told it had gone); 11 never went.
	back := wa.waitBack(t, "presence reported back")
	if diff := cmp.Diff([][2]int64{{1, 10}}, back); diff != "" {
		t.Errorf("presences reported back mismatch (-want +got):\n%s", diff)
	}
	mustRemove(t, b, 1, 11, false)
	mustRemove(t, a, 1, 11, true)
	mustAdd(t, b, 1, 10, false)
	mustRemove(t, b, 1, 10, false)
	mustRemove(t, a, 1, 10, true)
}

func TestLimiterShared(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	a, b := e.client(t, redis.Options{}).Limiter(), e.client(t, redis.Options{}).Limiter()
	for i, l := range []*redis.Limiter{a, b, a} {
		if ok, _, err := l.Allow(ctx, "k", 3, time.Minute); !ok || err != nil {
			t.Fatalf("event %d = %v, %v; want allowed", i+1, ok, err)
		}
	}
	for _, l := range []*redis.Limiter{a, b} {
		ok, after, err := l.Allow(ctx, "k", 3, time.Minute)
		if ok || err != nil || after <= 0 || after > time.Minute {
			t.Errorf("4th event = %v, %v, %v; want refused, retry within 1m", ok, after, err)
		}
	}
	if ok, _, err := b.Allow(ctx, "other", 3, time.Minute); !ok || err != nil {
		t.Errorf("another key = %v, %v; want allowed", ok, err)
	}
	// Concurrent callers on both nodes: exactly n allowed.
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for i := range 40 {
		l := []*redis.Limiter{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, _, err := l.Allow(ctx, "burst", 10, time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if allowed != 10 {
		t.Errorf("concurrent events allowed = %d; want 10", allowed)
	}
}

// url is e's Redis URL through p.
func (e *testEnv) urlVia(tb testing.TB, p *testenv.Proxy) string {
	tb.Helper()
	u, err := url.Parse(e.url)
	if err != nil {
		tb.Fatal(err)
	}
	u.Host = p.Addr()
	return u.String()
}

func (e *testEnv) target(tb testing.TB) string {
	tb.Helper()
	opt, err := goredis.ParseURL(e.url)
	if err != nil {
		tb.Fatal(err)
	}
	return opt.Addr
}

// clientViaProxy is a client with opts (and the env's prefix) that reaches
// Redis through a proxy the test can cut; it is closed when the test ends,
// before the proxy.
func (e *testEnv) clientViaProxy(tb testing.TB, opts redis.Options) (*redis.Client, *testenv.Proxy) {
	tb.Helper()
	p := testenv.StartProxy(tb, e.target(tb))
	opts.Prefix = e.prefix
	c, err := redis.New(context.Background(), e.urlVia(tb, p), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() }) // a cut connection may fail to close cleanly
	return c, p
}

func TestBrokerRedisDown(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{SubscribeTimeout: time.Second})
	b := c.Broker()
	pub := e.client(t, redis.Options{}).Broker()
	got := newEvents()
	resumed := subscribeResumes(t, b, chat.ConvTopic(1), got.add)
	if err := pub.Publish(ctx, chat.ConvTopic(1), msg(1, 1)); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1, 5*time.Second)

	p.Cut()
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	if err := b.Publish(pctx, chat.ConvTopic(1), msg(1, 9)); err == nil {
		t.Error("Publish with Redis down = nil; want an error")
	}
	got2 := newEvents()
	cancel2, err := b.Subscribe(chat.ConvTopic(2), got2.add)
	if err != nil {
		t.Fatalf("Subscribe with Redis down = %v; want nil (it subscribes on reconnect)", err)
	}
	defer cancel2()

	p.Restore(t)
	select {
	case <-resumed:
	case <-time.After(15 * time.Second):
		t.Fatal("OnResume not called within 15s of Redis coming back")
	}
	for _, ev := range []struct {
		t  chat.Topic
		ev chat.Event
	}{{chat.ConvTopic(1), msg(1, 2)}, {chat.ConvTopic(2), msg(2, 1)}} {
		if err := pub.Publish(ctx, ev.t, ev.ev); err != nil {
			t.Fatal(err)
		}
	}
	// 9, whose publish failed, is published again once Redis is back
	// (Publish), on a goroutine of its own: before 2 or after it. A retry
	// that timed out after Redis took it is kept and made again, so 9 may
	// come twice: delivery is at least once, and the hub drops a seq it
	// has delivered.
	var seqs []int64
	for n := 3; n <= 5 && len(seqs) < 3; n++ {
		seen := map[int64]bool{}
		seqs = slices.DeleteFunc(got.wait(t, n, 5*time.Second), func(s int64) bool {
			again := seen[s] && s == 9
			seen[s] = true
			return again
		})
	}
	if !slices.Equal(seqs, []int64{1, 9, 2}) && !slices.Equal(seqs, []int64{1, 2, 9}) {
		t.Errorf("topic 1 got %v; want 1, then 2 with the retried 9 before or after it", seqs)
	}
	got2.wait(t, 1, 5*time.Second)
	eventually(t, 10*time.Second, "Publish works again", func() bool {
		return b.Publish(ctx, chat.ConvTopic(3), msg(3, 1)) == nil
	})
}

// TestBrokerDeadPeer: a pub/sub connection that silently stops carrying
// data is noticed by the ping and replaced.
func TestBrokerDeadPeer(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{
		PingInterval: 200 * time.Millisecond, PingTimeout: 300 * time.Millisecond, SubscribeTimeout: time.Second,
	})
	b := c.Broker()
	pub := e.client(t, redis.Options{}).Broker()
	got := newEvents()
	resumed := subscribeResumes(t, b, chat.ConvTopic(1), got.add)
	p.Freeze()
	select {
	case <-resumed:
	case <-time.After(15 * time.Second):
		t.Fatal("OnResume not called within 15s of the connection going silent")
	}
	if err := pub.Publish(ctx, chat.ConvTopic(1), msg(1, 1)); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1, 5*time.Second)
	// The pool's frozen connections would stall Close until they time out.
	p.Cut()
	p.Restore(t)
}

// TestPresenceRetriesFailedRemove: a Remove that fails while Redis is
// unreachable is retried by the heartbeat, and the end it then finds is
// reported to Watch, since no caller announced it. (If Redis stays away
// long enough for the node's heartbeat to expire, the other node reaps it
// and reports the end instead; either way exactly once.)
func TestPresenceRetriesFailedRemove(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{NodeTTL: 12 * time.Second})
	a := c.Presence()
	other := e.client(t, redis.Options{}).Presence()
	wa, wo := watch(a), watch(other)
	mustAdd(t, a, 1, 10, true)
	mustAdd(t, a, 1, 11, true)

	p.Cut()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if last, err := a.Remove(rctx, 1, 10); err == nil {
		t.Fatalf("Remove with Redis down = %v, nil; want an error", last)
	}
	if _, err := a.Add(rctx, 2, 12); err == nil {
		t.Fatal("Add with Redis down = nil error; want an error")
	}
	mustRemove(t, a, 2, 12, false) // its connection ends: undo what the Add may have written
	p.Restore(t)

	ended := func() int {
		n := 0
		for _, w := range append(wa.all(), wo.all()...) {
			if w == [2]int64{1, 10} {
				n++
			}
		}
		return n
	}
	eventually(t, 15*time.Second, "the end of (1, 10) reported", func() bool { return ended() > 0 })
	eventually(t, 15*time.Second, "Online(1) = [11]", func() bool { return slices.Equal(online(t, other, 1), []int64{11}) })
	eventually(t, 15*time.Second, "the failed Add undone", func() bool { return len(online(t, other, 2)) == 0 })
	if n := ended(); n != 1 {
		t.Errorf("the end of (1, 10) was reported %d times; want 1", n)
	}
	mustAdd(t, a, 2, 12, true)
	mustRemove(t, a, 1, 11, true)
}

// TestPresenceRetriesFailedRemoveAfterFlush: a Remove fails while Redis
// is unreachable, and Redis comes back empty (restarted without
// persistence, as docs/deploy.md advises). Nobody else knows the user was
// there: the node that failed to remove them reports their end.
func TestPresenceRetriesFailedRemoveAfterFlush(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{NodeTTL: 3 * time.Second}) // heartbeat every 500 ms
	a := c.Presence()
	wa := watch(a)
	mustAdd(t, a, chat.Everywhere, 10, true)
	mustAdd(t, a, chat.Everywhere, 11, true)

	p.Cut()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if last, err := a.Remove(rctx, chat.Everywhere, 10); err == nil {
		t.Fatalf("Remove with Redis down = %v, nil; want an error", last)
	}
	keys, err := e.raw.Keys(ctx, e.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		if err := e.raw.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	p.Restore(t)

	if diff := cmp.Diff([][2]int64{{chat.Everywhere, 10}}, wa.wait(t, 1, 15*time.Second)); diff != "" {
		t.Errorf("Watch mismatch (-want +got):\n%s", diff)
	}
	eventually(t, 15*time.Second, "11 written again", func() bool {
		return slices.Equal(online(t, a, chat.Everywhere), []int64{11})
	})
}

func TestPresenceRestartSameNodeID(t *testing.T) {
	e := newTestEnv(t)
	// A short NodeTTL: the restart watches the dead run's heartbeat for
	// 1.5 × NodeTTL/6 before it takes the id over.
	opts := redis.Options{NodeID: "x", NodeTTL: 3 * time.Second}
	a := e.client(t, opts).Presence()
	mustAdd(t, a, 1, 10, true)
	a.Crash()
	b := e.client(t, opts).Presence()
	if got := online(t, b, 1); len(got) != 0 {
		t.Errorf("Online after a restart with the same NodeID = %v; want none", got)
	}
	// Nobody else will report the earlier run's users gone.
	if diff := cmp.Diff([][2]int64{{1, 10}}, watch(b).all()); diff != "" {
		t.Errorf("Watch after a restart with the same NodeID mismatch (-want +got):\n%s", diff)
	}
	mustAdd(t, b, 1, 10, true)
}

// TestNodeIDInUse: a node does not start under the NodeID of a live node,
// whose presences it would drop as an earlier run's; the live node keeps
// its users present.
func TestNodeIDInUse(t *testing.T) {
	e := newTestEnv(t)
	opts := redis.Options{NodeID: "x", NodeTTL: 6 * time.Second, Prefix: e.prefix}
	a := e.client(t, opts).Presence()
	mustAdd(t, a, 1, 10, true)
	c, err := redis.New(t.Context(), e.url, opts)
	if err == nil {
		c.Close()
		t.Fatal("New under the NodeID of a live node = nil; want ErrNodeIDInUse")
	}
	if !errors.Is(err, redis.ErrNodeIDInUse) || !strings.Contains(err.Error(), "--node-id") {
		t.Errorf("New under the NodeID of a live node = %v; want ErrNodeIDInUse naming --node-id", err)
	}
	if got := online(t, a, 1); !slices.Equal(got, []int64{10}) {
		t.Errorf("Online of the live node after the refused start = %v; want [10]", got)
	}
}

// TestBrokerPublishFailsFastWhenDown: while the pub/sub connection is lost,
// Publish fails within a fraction of a second instead of waiting for
// go-redis to give up dialling, so that sends (which publish after their
// commit) are not held up by a Redis outage.
// pipelineHook holds the first pipeline of PUBLISH commands until release
// is closed, and records the size of every such pipeline (go-redis also
// pipelines the commands that set up a connection).
type pipelineHook struct {
	entered, release chan struct{}
	mu               sync.Mutex
	sizes            []int
}

func (h *pipelineHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *pipelineHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }

func (h *pipelineHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		if len(cmds) == 0 || cmds[0].Name() != "publish" {
			return next(ctx, cmds)
		}
		h.mu.Lock()
		first := len(h.sizes) == 0
		h.sizes = append(h.sizes, len(cmds))
		h.mu.Unlock()
		if first {
			close(h.entered)
			<-h.release
		}
		return next(ctx, cmds)
	}
}

// TestBrokerPipelinesPublishes holds a publish on its way to Redis while 99
// more are made: they must go together in the next pipeline, and every
// event must arrive.
func TestBrokerPipelinesPublishes(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	c := e.client(t, redis.Options{})
	h := &pipelineHook{entered: make(chan struct{}), release: make(chan struct{})}
	c.Redis().AddHook(h)
	b := c.Broker()
	got := newEvents()
	cancel, err := b.Subscribe(chat.ConvTopic(1), got.add)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()

	const n = 100
	var wg sync.WaitGroup
	publish := func(seq int64) {
		wg.Go(func() {
			if err := b.Publish(ctx, chat.ConvTopic(1), msg(1, seq)); err != nil {
				t.Errorf("Publish(%d): %v", seq, err)
			}
		})
	}
	publish(1)
	select {
	case <-h.entered:
	case <-time.After(5 * time.Second):
		close(h.release)
		t.Fatal("the first publish sent no pipeline within 5s")
	}
	for seq := int64(2); seq <= n; seq++ {
		publish(seq)
	}
	eventually(t, 5*time.Second, "99 publishes waiting", func() bool { return b.PendingPublishes() == n-1 })
	close(h.release)
	wg.Wait()

	evs := got.wait(t, n, 5*time.Second)
	if evs[0] != 1 {
		t.Errorf("first event %d; want the held one, 1", evs[0])
	}
	if diff := cmp.Diff(seqs(1, n), slices.Sorted(slices.Values(evs))); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if diff := cmp.Diff([]int{1, n - 1}, h.sizes); diff != "" {
		t.Errorf("pipeline sizes mismatch (-want +got):\n%s", diff)
	}
}

// TestBrokerPublishStopsWaitingWhenLost holds a publish's pipeline, as a
// connection that died silently holds it until go-redis's read timeout,
// and cuts Redis off: once the Broker finds its connection lost, the
// publish must fail instead of waiting on, so that the acks of sends
// queued behind it are not held through the outage.
func TestBrokerPublishStopsWaitingWhenLost(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{SubscribeTimeout: time.Second, PingInterval: 200 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	h := &pipelineHook{entered: make(chan struct{}, 10), release: make(chan struct{})}
	c.Redis().AddHook(h)
	b := c.Broker()
	cancel, err := b.Subscribe(chat.ConvTopic(1), func(chat.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	defer close(h.release)

	errc := make(chan error, 1)
	go func() { errc <- b.Publish(ctx, chat.ConvTopic(1), msg(1, 1)) }()
	select {
	case <-h.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the publish sent no pipeline within 5s")
	}
	p.Cut()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Publish on a held pipeline, Redis cut = nil; want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Publish still waits for its held pipeline 10s after Redis was cut")
	}
	p.Restore(t)
}

func TestBrokerPublishFailsFastWhenDown(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{SubscribeTimeout: time.Second})
	b := c.Broker()
	resumed := subscribeResumes(t, b, chat.ConvTopic(1), func(chat.Event) {})

	p.Cut()
	eventually(t, 5*time.Second, "the broker notices Redis is gone", func() bool {
		return b.Publish(ctx, chat.ConvTopic(1), msg(1, 1)) != nil
	})
	for i := range 3 {
		start := time.Now()
		err := b.Publish(ctx, chat.ConvTopic(1), msg(1, int64(i+2)))
		if d := time.Since(start); err == nil || d > 500*time.Millisecond {
			t.Errorf("Publish with Redis down = %v after %v; want an error within 500ms", err, d)
		}
	}

	p.Restore(t)
	select {
	case <-resumed:
	case <-time.After(15 * time.Second):
		t.Fatal("OnResume not called within 15s of Redis coming back")
	}
	if err := b.Publish(ctx, chat.ConvTopic(1), msg(1, 9)); err != nil {
		t.Errorf("Publish after Redis returned = %v; want nil", err)
	}
}

// TestPresenceFailedAddThenRemove: a connection whose Add failed (Redis
// unreachable) is served anyway, and chat.Service counts it out with
// Remove when it ends (Service.Connect, Service.disconnectNow). That
// Remove must not end the presence of the user's other connection, whose
// Add succeeded once Redis was back.
func TestPresenceFailedAddThenRemove(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{})
	a := c.Presence()
	other := e.client(t, redis.Options{}).Presence()

	p.Cut()
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := a.Add(actx, chat.Everywhere, 7); err == nil { // the first tab
		t.Fatal("Add with Redis down = nil error; want an error")
	}
	p.Restore(t)
	// On a busy machine the failed Add may have run past callTimeout:
	// Redis is then taken for down until the guard's probe finds it back.
	eventually(t, 10*time.Second, "Redis taken for reachable again", func() bool {
		_, _, err := a.Online(ctx, chat.Everywhere, 0)
		return err == nil
	})
	mustAdd(t, a, chat.Everywhere, 7, true) // the second tab, Redis back

	mustRemove(t, a, chat.Everywhere, 7, false) // the first tab closes; the second is open
	if diff := cmp.Diff([]int64{7}, online(t, other, chat.Everywhere)); diff != "" {
		t.Errorf("Online with the second tab open mismatch (-want +got):\n%s", diff)
	}
	mustRemove(t, a, chat.Everywhere, 7, true) // the second tab closes
	if got := online(t, other, chat.Everywhere); len(got) != 0 {
		t.Errorf("Online with both tabs closed = %v; want none", got)
	}
}

// TestPresenceFailedAddWrittenWhenBack: a user connects while Redis is
// unreachable, so the Add fails, and stays connected; once Redis is back,
// the heartbeat writes the presence and reports it to Watch, instead of
// showing the user offline for as long as the connection lasts.
func TestPresenceFailedAddWrittenWhenBack(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{NodeTTL: 3 * time.Second}) // heartbeat every 500 ms
	a := c.Presence()
	other := e.client(t, redis.Options{}).Presence()
	wa := watch(a)

	p.Cut()
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := a.Add(actx, chat.Everywhere, 7); err == nil {
		t.Fatal("Add with Redis down = nil error; want an error")
	}
	p.Restore(t)

	eventually(t, 15*time.Second, "the failed Add written", func() bool {
		return slices.Equal(online(t, other, chat.Everywhere), []int64{7})
	})
	back := wa.waitBack(t, "the presence reported")
	if diff := cmp.Diff([][2]int64{{chat.Everywhere, 7}}, back); diff != "" {
		t.Errorf("presences reported mismatch (-want +got):\n%s", diff)
	}
	mustAdd(t, a, chat.Everywhere, 7, false)    // a second tab
	mustRemove(t, a, chat.Everywhere, 7, false) // one closes
	mustRemove(t, a, chat.Everywhere, 7, true)  // the other
	if got := online(t, other, chat.Everywhere); len(got) != 0 {
		t.Errorf("Online with both tabs closed = %v; want none", got)
	}
}

// twoNodesOneBehindProxy starts two brokers on one Redis: a, whose
// connections go through the proxy p, and another that has subscribed
// got to conversation topic 1, where a has published message 1, which
// got has. a's pub/sub connection also holds topic 9, so that a notices
// a cut; resumed has a value each time a resumes.
func twoNodesOneBehindProxy(t *testing.T) (a *redis.Broker, p *testenv.Proxy, resumed <-chan struct{}, got *events) {
	t.Helper()
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{SubscribeTimeout: time.Second})
	a = c.Broker()
	resumed = subscribeResumes(t, a, chat.ConvTopic(9), func(chat.Event) {})
	b := e.client(t, redis.Options{}).Broker()
	got = newEvents()
	cancel, err := b.Subscribe(chat.ConvTopic(1), got.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	if err := a.Publish(context.Background(), chat.ConvTopic(1), msg(1, 1)); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1, 5*time.Second)
	return a, p, resumed, got
}

// TestBrokerPublishesFailedMessageAgain: a message whose publish failed
// while its node was cut from Redis reaches the other nodes, whose own
// connections never broke, once the node has Redis back; their hubs fill
// whatever came before it from the store.
func TestBrokerPublishesFailedMessageAgain(t *testing.T) {
	ctx := context.Background()
	a, p, resumed, got := twoNodesOneBehindProxy(t)

	p.Cut()
	// Once a knows Redis is gone, its publishes fail at once and send
	// nothing (a publish made before might still go out when Redis is back).
	eventually(t, 5*time.Second, "the broker notices Redis is gone", func() bool {
		return a.Publish(ctx, chat.ConvTopic(9), chat.Event{Type: chat.EventTyping, ConvID: 9}) != nil
	})
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	for seq := int64(2); seq <= 3; seq++ {
		if err := a.Publish(pctx, chat.ConvTopic(1), msg(1, seq)); err == nil {
			t.Fatalf("Publish(%d) with Redis cut = nil; want an error", seq)
		}
	}
	if err := a.Publish(pctx, chat.ConvTopic(1), chat.Event{Type: chat.EventTyping, ConvID: 1}); err == nil {
		t.Fatal("Publish(typing) with Redis cut = nil; want an error")
	}
	p.Restore(t)
	select {
	case <-resumed:
	case <-time.After(15 * time.Second):
		t.Fatal("OnResume not called within 15s of Redis coming back")
	}
	// The newest failed message, once; the typing event is not kept.
	if diff := cmp.Diff([]int64{1, 3}, got.wait(t, 2, 10*time.Second)); diff != "" {
		t.Errorf("node B mismatch (-want +got):\n%s", diff)
	}
	if err := a.Publish(ctx, chat.ConvTopic(1), msg(1, 4)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{1, 3, 4}, got.wait(t, 3, 5*time.Second)); diff != "" {
		t.Errorf("node B mismatch (-want +got):\n%s", diff)
	}
}

// TestPresenceRewriteResumes: a rewrite of a reaped node's presences cut
// short (its heartbeat's time ran out, Redis failed) is taken up by the
// next heartbeat, which finds the node's key present again and would
// otherwise rewrite nothing.
func TestPresenceRewriteResumes(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	a := e.client(t, redis.Options{NodeID: "a", NodeTTL: 12 * time.Second}).Presence()
	for u := int64(10); u < 13; u++ {
		mustAdd(t, a, 1, u, true)
	}
	// As a reap does: the node's presences are gone from Redis, its key
	// is not.
	keys, err := e.raw.Keys(ctx, e.prefix+"presence:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k != e.prefix+"presence:node:a" && k != e.prefix+"presence:nodes" {
			if err := e.raw.Del(ctx, k).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cut, cancel := context.WithCancel(ctx)
	cancel()
	left := a.Settle(cut, true, nil)
	if len(left) != 3 {
		t.Fatalf("a rewrite cut short left %v; want the 3 presences", left)
	}
	if left = a.Settle(ctx, false, left); len(left) != 0 {
		t.Errorf("the next heartbeat left %v; want nothing", left)
	}
	if diff := cmp.Diff([]int64{10, 11, 12}, online(t, a, 1)); diff != "" {
		t.Errorf("Online after the rewrite resumed mismatch (-want +got):\n%s", diff)
	}
}

// TestPresenceRedisDown: reading who is present while Redis is
// unreachable says the dependency is unavailable (503 to a client asking
// GET /api/rooms/{id}/online), as the Limiter does, not a bug (500).
func TestPresenceRedisDown(t *testing.T) {
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{})
	p.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := c.Presence().Online(ctx, 1, 10)
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Online with Redis down = %v; want a chat error of kind ErrUnavailable", err)
	}
	_, err = c.Presence().OnlineOf(ctx, 1, []int64{7})
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("OnlineOf with Redis down = %v; want a chat error of kind ErrUnavailable", err)
	}
}

// TestLimiterRedisDown checks that a Limiter that cannot reach Redis
// says the dependency is unavailable (503 to the client), as the stores
// do, rather than failing as a bug would (500).
func TestLimiterRedisDown(t *testing.T) {
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{})
	p.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := c.Limiter().Allow(ctx, "k", 3, time.Minute)
	if e := chat.AsError(err); e == nil || !errors.Is(err, chat.ErrUnavailable) || e.Code != chat.CodeUnavailable {
		t.Errorf("Allow with Redis down = %#v; want a chat error of kind ErrUnavailable", err)
	}
}

// subscribeResumes subscribes fn to topic on b until the test ends, and
// returns a channel that receives each time b resumes.
func subscribeResumes(tb testing.TB, b *redis.Broker, topic chat.Topic, fn func(chat.Event)) <-chan struct{} {
	tb.Helper()
	resumed := make(chan struct{}, 10)
	b.OnResume(func() { resumed <- struct{}{} })
	cancel, err := b.Subscribe(topic, fn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cancel)
	return resumed
}

// TestEnded: a channel recorded on one node counts as ended on another,
// for the given time only; a user's set keeps the newest max channels and
// expires.
func TestEnded(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	a, b := e.client(t, redis.Options{}).Ended(), e.client(t, redis.Options{}).Ended()
	if err := a.Add(ctx, 7, "ch1", time.Minute, 3); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user    int64
		channel string
		want    bool
	}{{7, "ch1", true}, {7, "ch2", false}, {8, "ch1", false}} {
		if got, err := b.Has(ctx, c.user, c.channel); got != c.want || err != nil {
			t.Errorf("Has(%d, %q) = %v, %v; want %v", c.user, c.channel, got, err, c.want)
		}
	}
	for _, ch := range []string{"ch2", "ch3", "ch4"} {
		if err := b.Add(ctx, 7, ch, time.Minute, 3); err != nil {
			t.Fatal(err)
		}
	}
	key := e.prefix + "ended:7"
	if n := e.raw.ZCard(ctx, key).Val(); n != 3 {
		t.Errorf("channels kept = %d; want 3", n)
	}
	if got, _ := a.Has(ctx, 7, "ch1"); got {
		t.Error("the oldest of 4 channels, past max 3, still counts as ended")
	}
	if ttl := e.raw.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("the set's TTL = %v; want at most 1m", ttl)
	}
	if err := a.Add(ctx, 9, "short", 50*time.Millisecond, 3); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := b.Has(ctx, 9, "short")
		if err != nil {
			t.Fatal(err)
		}
		if !got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a channel ended for 50ms still counts as ended after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLimiterWhileRedisHangs: while Redis does not answer (its host gone:
// connections accepted, nothing comes back), a rate-limited call fails
// with "unavailable" without waiting for go-redis's own timeouts, as a
// presence call does: sign-in codes, new rooms and the other limited
// actions must not hang on it. Once Redis answers again, Allow counts
// again.
func TestLimiterWhileRedisHangs(t *testing.T) {
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{})
	l := c.Limiter()
	ctx := context.Background()
	p.Hang()
	// Each used to wait for go-redis's read timeout, and its retries.
	start := time.Now()
	for i := range 3 {
		if _, _, err := l.Allow(ctx, "k", 3, time.Minute); !errors.Is(err, chat.ErrUnavailable) {
			t.Errorf("Allow %d with Redis hanging = %v; want a chat error of kind ErrUnavailable", i, err)
		}
	}
	if err := l.Undo(ctx, "k"); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Undo with Redis hanging = %v; want a chat error of kind ErrUnavailable", err)
	}
	// The record of ended long-poll channels shares the verdict.
	if err := c.Ended().Add(ctx, 1, "ch", time.Minute, 4); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Ended.Add with Redis hanging = %v; want a chat error of kind ErrUnavailable", err)
	}
	if _, err := c.Ended().Has(ctx, 1, "ch"); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Ended.Has with Redis hanging = %v; want a chat error of kind ErrUnavailable", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("3 Allows, an Undo and two calls of Ended with Redis hanging took %v; want no wait for Redis past the first", d.Round(time.Millisecond))
	}
	p.Restore(t)
	eventually(t, 15*time.Second, "Allow with Redis back", func() bool {
		ok, _, err := l.Allow(ctx, "k", 3, time.Minute)
		return err == nil && ok
	})
}

// TestCloseWhileRedisHangs: Close returns within CloseTimeout while Redis
// does not answer, although the heartbeat and the pub/sub connection wait
// for a new connection's handshake, which go-redis does not cut short.
func TestCloseWhileRedisHangs(t *testing.T) {
	e := newTestEnv(t)
	c, p := e.clientViaProxy(t, redis.Options{})
	if _, err := c.Presence().Add(context.Background(), 1, 1); err != nil {
		t.Fatal(err)
	}
	p.Hang()
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		t.Logf("Close: %v", err)
	case <-time.After(redis.CloseTimeout + time.Second):
		t.Fatalf("Close with Redis hanging did not return within %v", redis.CloseTimeout+time.Second)
	}
}

// TestBrokerRetriesFailedPublishByItself: a message whose publish failed
// while only the node's other connections to Redis broke (its pub/sub
// connection held, so the connection never resumes) reaches the other
// nodes once Redis takes publishes again, though the node publishes
// nothing more.
func TestBrokerRetriesFailedPublishByItself(t *testing.T) {
	ctx := context.Background()
	a, p, resumed, got := twoNodesOneBehindProxy(t)

	p.CutExcept([]byte("subscribe")) // a's pub/sub connection holds
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	if err := a.Publish(pctx, chat.ConvTopic(1), msg(1, 2)); err == nil {
		t.Fatal("Publish(2) with a's other connections cut = nil; want an error")
	}
	p.Restore(t)
	if diff := cmp.Diff([]int64{1, 2}, got.wait(t, 2, 15*time.Second)); diff != "" {
		t.Errorf("node B mismatch (-want +got):\n%s", diff)
	}
	select {
	case <-resumed:
		t.Error("a's pub/sub connection resumed; want it held throughout")
	default:
	}
}
