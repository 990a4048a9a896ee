package redis_test

import (
	"bytes"
	"context"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/redis"
)

// replyLoser forwards connections to a Redis and, the first time a client
// sends marker, passes the command on but loses its reply: the connection
// breaks once Redis has run it, as when a network fails between a
// command and its answer.
type replyLoser struct {
	ln     net.Listener
	target string
	marker []byte
	fired  atomic.Bool
	again  atomic.Int32 // replies lost after the first
	lost   atomic.Int32 // replies lost so far
	// between, if set, runs once Redis ran the first command whose reply
	// is lost, before the client sees the connection break.
	between func()
	wg      sync.WaitGroup
}

// proxyTo accepts on ln until it is closed, and has serve, a goroutine
// each, carry every connection to target; wg counts the goroutines, and
// serve calls wg.Done.
func proxyTo(ln net.Listener, target string, wg *sync.WaitGroup, serve func(c, s net.Conn)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(1)
			go serve(c, s)
		}
	}()
}

func startReplyLoser(tb testing.TB, target string, marker []byte) *replyLoser {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &replyLoser{ln: ln, target: target, marker: marker}
	proxyTo(ln, target, &p.wg, p.serve)
	tb.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *replyLoser) serve(c, s net.Conn) {
	defer p.wg.Done()
	var mute atomic.Bool // the reply to the marked command is lost
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := s.Read(buf)
			if n > 0 && !mute.Load() {
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			lose := bytes.Contains(buf[:n], p.marker) && (p.fired.CompareAndSwap(false, true) || p.again.Add(-1) >= 0)
			if lose {
				mute.Store(true)
				p.lost.Add(1)
			}
			if _, err := s.Write(buf[:n]); err != nil {
				break
			}
			if lose {
				time.Sleep(100 * time.Millisecond) // Redis runs it
				if p.between != nil && p.lost.Load() == 1 {
					p.between()
				}
				break
			}
		}
		if err != nil {
			break
		}
	}
	c.Close()
	s.Close()
	<-done
}

// TestBrokerPublishesOnceWhenReplyLost: a PUBLISH whose reply is lost
// (the connection broke after Redis ran it) is not sent again. go-redis
// retries a pipeline whose reply it could not read, and Redis then
// publishes the event twice: every node delivers it twice, and for the
// events that carry no seq (typing, presence) the hubs cannot tell the
// copy from news.
func TestBrokerPublishesOnceWhenReplyLost(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	p := startReplyLoser(t, e.target(t), []byte("lost-reply-marker"))
	a, err := redis.New(ctx, "redis://"+p.ln.Addr().String(), redis.Options{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	b := e.client(t, redis.Options{}).Broker()

	var mu sync.Mutex
	var got []chat.Event
	cancel, err := b.Subscribe(chat.ConvTopic(5), func(ev chat.Event) {
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)

	ev := chat.Event{Type: chat.EventTyping, ConvID: 5, User: &chat.User{ID: 7, Name: "lost-reply-marker"}}
	err = a.Broker().Publish(ctx, chat.ConvTopic(5), ev)
	t.Logf("Publish with its reply lost = %v", err)
	// Whatever Publish said, the event may have gone out once; wait for
	// it, and a while for a copy.
	eventually(t, 5*time.Second, "the typing event arrives", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	time.Sleep(time.Second)
	mu.Lock()
	n := len(got)
	mu.Unlock()
	if !p.fired.Load() {
		t.Fatal("the proxy never saw the marked publish")
	}
	if n != 1 {
		t.Errorf("typing event published with its reply lost delivered %d times; want 1", n)
	}
}

// TestPresenceRewriteOfPresenceNeverGone: a node whose heartbeat key
// lapsed (a long pause) but that no node reaped meanwhile writes its
// presences again, and reports none of them back: none ended, nobody was
// told they had, and a report would tell the user's friends and rooms
// once more that they are online.
func TestPresenceRewriteOfPresenceNeverGone(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	a := e.client(t, redis.Options{NodeID: "a", NodeTTL: 12 * time.Second}).Presence()
	wa := watch(a)
	mustAdd(t, a, chat.Everywhere, 10, true)
	mustAdd(t, a, 1, 10, true)
	if err := e.raw.Del(ctx, e.prefix+"presence:node:a").Err(); err != nil {
		t.Fatal(err)
	}
	if expired, err := a.Heartbeat(ctx); err != nil || !expired {
		t.Fatalf("Heartbeat after the key lapsed = %v, %v; want true, nil", expired, err)
	}
	if left := a.Settle(ctx, true, nil); len(left) != 0 {
		t.Fatalf("rewrite left %v; want nothing", left)
	}
	wa.mu.Lock()
	back := slices.Clone(wa.back)
	wa.mu.Unlock()
	if len(back) != 0 {
		t.Errorf("presences reported back after a rewrite that found them all there: %v; want none", back)
	}
	if diff := cmp.Diff([]int64{10}, online(t, a, 1)); diff != "" {
		t.Errorf("Online after the rewrite mismatch (-want +got):\n%s", diff)
	}
}

// TestPresenceAddBesideUnreapedNode: a user present through a node that
// died, and that no node has reaped yet, is still present: an Add on
// another node is not the first, so that the user's friends are not told
// again that they came online; the reap then ends nothing.
func TestPresenceAddBesideUnreapedNode(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	a := e.client(t, redis.Options{NodeID: "a", NodeTTL: 12 * time.Second}).Presence()
	b := e.client(t, redis.Options{NodeID: "b", NodeTTL: 3 * time.Second}).Presence() // sweeps every ~0.5 s
	wb := watch(b)
	mustAdd(t, a, chat.Everywhere, 10, true)
	a.Crash()
	// A's key expired; B has not swept yet.
	if err := e.raw.Del(ctx, e.prefix+"presence:node:a").Err(); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, b, chat.Everywhere, 10, false)
	eventually(t, 10*time.Second, "A reaped", func() bool {
		ok, err := e.raw.SIsMember(ctx, e.prefix+"presence:nodes", "a").Result()
		return err == nil && !ok
	})
	if got := wb.all(); len(got) != 0 {
		t.Errorf("the reap of A reported %v ended; want nothing", got)
	}
	if diff := cmp.Diff([]int64{10}, online(t, b, chat.Everywhere)); diff != "" {
		t.Errorf("Online after the reap mismatch (-want +got):\n%s", diff)
	}
	mustRemove(t, b, chat.Everywhere, 10, true)
}

// TestPresenceRemoveWhenReplyLost: the last Remove of a user whose reply
// is lost (the connection broke after Redis ran it) still has the end
// told: Remove reports last, or fails and the heartbeat, retrying it,
// reports the end to Watch. go-redis ran the script again, which found
// the presence gone and answered "not last": the user's friends and rooms
// were never told they left, and showed them online until reloaded.
func TestPresenceRemoveWhenReplyLost(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	p := startReplyLoser(t, e.target(t), []byte("777001"))
	p.fired.Store(true) // not yet
	c, err := redis.New(ctx, "redis://"+p.ln.Addr().String(), redis.Options{Prefix: e.prefix, NodeTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	a := c.Presence()
	wa := watch(a)
	mustAdd(t, a, 777001, 10, true)
	p.fired.Store(false) // the next command about conversation 777001 loses its reply
	last, err := a.Remove(ctx, 777001, 10)
	t.Logf("Remove with its reply lost = %v, %v", last, err)
	if !p.fired.Load() {
		t.Fatal("the proxy never saw the Remove")
	}
	switch {
	case err == nil && !last:
		t.Errorf("Remove(777001, 10) with its reply lost = false, nil; want true, or an error whose retry reports the end")
	case err != nil:
		if diff := cmp.Diff([][2]int64{{777001, 10}}, wa.wait(t, 1, 10*time.Second)); diff != "" {
			t.Errorf("Watch after the failed Remove mismatch (-want +got):\n%s", diff)
		}
	}
	if got := online(t, a, 777001); len(got) != 0 {
		t.Errorf("Online(777001) = %v; want none", got)
	}
}

// TestPresenceReapWhenReplyLost: the reap of a dead node whose reply is
// lost (the connection broke after Redis ran it) still reports the
// presences it ended. go-redis ran the script again, which found the
// node reaped and returned nothing: the dead node's users were never
// told gone, and stayed online for their friends and rooms.
func TestPresenceReapWhenReplyLost(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	a := e.client(t, redis.Options{NodeID: "deadnode-777", NodeTTL: 3 * time.Second}).Presence()
	mustAdd(t, a, chat.Everywhere, 10, true)
	// Only the reap sends the node's id as an argument of its own.
	p := startReplyLoser(t, e.target(t), []byte("\r\ndeadnode-777\r\n"))
	c, err := redis.New(ctx, "redis://"+p.ln.Addr().String(), redis.Options{Prefix: e.prefix, NodeTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	b := c.Presence()
	wb := watch(b)
	a.Crash()
	if err := e.raw.Del(ctx, e.prefix+"presence:node:deadnode-777").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the reap of the dead node sent", p.fired.Load)
	if diff := cmp.Diff([][2]int64{{chat.Everywhere, 10}}, wb.wait(t, 1, 10*time.Second)); diff != "" {
		t.Errorf("Watch after the reap mismatch (-want +got):\n%s", diff)
	}
}

// TestPresenceRewriteWhenReplyLost: a node reaped while alive writes its
// presences again; when the reply to that write is lost (go-redis runs it
// again, and that run finds the presence held), the user is still
// reported back, to tell those told they had gone.
func TestPresenceRewriteWhenReplyLost(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	p := startReplyLoser(t, e.target(t), []byte("\r\n777003\r\n"))
	p.fired.Store(true) // not yet
	c, err := redis.New(ctx, "redis://"+p.ln.Addr().String(), redis.Options{Prefix: e.prefix, NodeID: "a", NodeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	a := c.Presence()
	wa := watch(a)
	b := e.client(t, redis.Options{NodeID: "b", NodeTTL: time.Second}).Presence() // sweeps every ~170 ms
	wb := watch(b)
	mustAdd(t, a, 777003, 10, true)
	if err := e.raw.Del(ctx, e.prefix+"presence:node:a").Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][2]int64{{777003, 10}}, wb.wait(t, 1, 10*time.Second)); diff != "" {
		t.Errorf("Watch of the reap mismatch (-want +got):\n%s", diff)
	}
	// A's heartbeat is back, and it writes its presences again.
	if expired, err := a.Heartbeat(ctx); err != nil || !expired {
		t.Fatalf("Heartbeat after the reap = %v, %v; want true, nil", expired, err)
	}
	p.fired.Store(false)
	left := a.Settle(ctx, true, nil)
	if !p.fired.Load() {
		t.Fatal("the proxy never saw the rewrite")
	}
	if len(left) > 0 {
		left = a.Settle(ctx, false, left)
	}
	if len(left) > 0 {
		t.Fatalf("rewrite left %v", left)
	}
	wa.mu.Lock()
	back := slices.Clone(wa.back)
	wa.mu.Unlock()
	if diff := cmp.Diff([][2]int64{{777003, 10}}, back); diff != "" {
		t.Errorf("presences reported back mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{10}, online(t, b, 777003)); diff != "" {
		t.Errorf("Online after the rewrite mismatch (-want +got):\n%s", diff)
	}
}

// TestPresenceReapWhenAllRepliesLost: the reap of a dead node whose
// every try loses its reply (go-redis gives up) is taken up again by a
// later sweep, which reports the presences it ended, once. The first run
// had taken the node out of the nodes set, so no later sweep reaped it:
// its users were never told gone.
func TestPresenceReapWhenAllRepliesLost(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	a := e.client(t, redis.Options{NodeID: "deadnode-778", NodeTTL: 3 * time.Second}).Presence()
	mustAdd(t, a, chat.Everywhere, 10, true)
	mustAdd(t, a, 1, 10, true)
	p := startReplyLoser(t, e.target(t), []byte("\r\ndeadnode-778\r\n"))
	p.again.Store(3) // go-redis tries 4 times
	c, err := redis.New(ctx, "redis://"+p.ln.Addr().String(), redis.Options{Prefix: e.prefix, NodeTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	b := c.Presence()
	wb := watch(b)
	a.Crash()
	if err := e.raw.Del(ctx, e.prefix+"presence:node:deadnode-778").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "every try of the reap lost", func() bool { return p.lost.Load() >= 4 })
	want := [][2]int64{{chat.Everywhere, 10}, {1, 10}}
	if diff := cmp.Diff(want, wb.wait(t, 2, 10*time.Second)); diff != "" {
		t.Errorf("Watch after the reap mismatch (-want +got):\n%s", diff)
	}
	time.Sleep(2 * time.Second) // later sweeps must not report it again
	if diff := cmp.Diff(want, wb.all()); diff != "" {
		t.Errorf("Watch after later sweeps mismatch (-want +got):\n%s", diff)
	}
	if got := online(t, b, 1); len(got) != 0 {
		t.Errorf("Online(1) = %v; want none", got)
	}
}

// TestPresenceCloseWhenReplyLost: the reap Close runs on its own node,
// whose reply is lost (the connection broke after Redis ran it), still
// reports the presences it ended. go-redis ran it again, which found
// nothing left to end: the users stayed online to their friends.
func TestPresenceCloseWhenReplyLost(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	// Only the reap of a leaving node sends its id followed by "1".
	p := startReplyLoser(t, e.target(t), []byte("\r\nclosing-779\r\n$1\r\n1\r\n"))
	p.fired.Store(true) // not the reap at start
	c, err := redis.New(ctx, "redis://"+p.ln.Addr().String(), redis.Options{Prefix: e.prefix, NodeID: "closing-779", NodeTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a := c.Presence()
	wa := watch(a)
	mustAdd(t, a, chat.Everywhere, 10, true)
	p.fired.Store(false)
	err = c.Close()
	t.Logf("Close with its reply lost = %v", err)
	if !p.fired.Load() {
		t.Fatal("the proxy never saw the reap")
	}
	if diff := cmp.Diff([][2]int64{{chat.Everywhere, 10}}, wa.all()); diff != "" {
		t.Errorf("Watch after Close mismatch (-want +got):\n%s", diff)
	}
	b := e.client(t, redis.Options{}).Presence()
	if got := online(t, b, chat.Everywhere); len(got) != 0 {
		t.Errorf("Online(Everywhere) = %v; want none", got)
	}
}

// TestPresenceRestartWhenReplyLost: the reap a node runs at start on the
// presences an earlier run with its NodeID left, whose reply is lost,
// still has them reported to Watch.
func TestPresenceRestartWhenReplyLost(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	opts := redis.Options{NodeID: "restart-780", NodeTTL: 3 * time.Second}
	a := e.client(t, opts).Presence()
	mustAdd(t, a, chat.Everywhere, 10, true)
	a.Crash()
	if err := e.raw.Del(ctx, e.prefix+"presence:node:restart-780").Err(); err != nil {
		t.Fatal(err)
	}
	p := startReplyLoser(t, e.target(t), []byte("\r\nrestart-780\r\n$1\r\n1\r\n"))
	opts.Prefix = e.prefix
	c, err := redis.New(ctx, "redis://"+p.ln.Addr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if !p.fired.Load() {
		t.Fatal("the proxy never saw the reap")
	}
	if diff := cmp.Diff([][2]int64{{chat.Everywhere, 10}}, watch(c.Presence()).all()); diff != "" {
		t.Errorf("Watch after a restart with the reply lost mismatch (-want +got):\n%s", diff)
	}
}

// TestPresenceHeartbeatLapseWhenReplyLost: a heartbeat that finds the
// node's key lapsed, after another node reaped it, and whose reply is
// lost still has the node write its presences again and report them
// back. go-redis ran the heartbeat again, which found the key the first
// run had set and answered "not lapsed"; and if every try lost its
// reply, the next heartbeat did the same: the reaped presences were
// never written back, and the user showed offline while connected.
func TestPresenceHeartbeatLapseWhenReplyLost(t *testing.T) {
	for _, tt := range []struct {
		name string
		lost int32 // tries of the heartbeat whose reply is lost; go-redis makes 4
	}{
		{"one", 1},
		{"all", 4},
	} {
		t.Run(tt.name, func(t *testing.T) { testHeartbeatLapseWhenReplyLost(t, tt.lost) })
	}
}

func testHeartbeatLapseWhenReplyLost(t *testing.T, lost int32) {
	ctx := context.Background()
	e := newTestEnv(t)
	// Only the heartbeat sends the node's id followed by the key's TTL,
	// 2/3 NodeTTL in ms.
	p := startReplyLoser(t, e.target(t), []byte("\r\nhb-781\r\n$5\r\n40000\r\n"))
	p.fired.Store(true) // not the heartbeat at start
	c, err := redis.New(ctx, "redis://"+p.ln.Addr().String(), redis.Options{Prefix: e.prefix, NodeID: "hb-781", NodeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	a := c.Presence()
	wa := watch(a)
	b := e.client(t, redis.Options{NodeID: "b", NodeTTL: time.Second}).Presence() // sweeps every ~170 ms
	wb := watch(b)
	mustAdd(t, a, 777004, 10, true)
	if err := e.raw.Del(ctx, e.prefix+"presence:node:hb-781").Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][2]int64{{777004, 10}}, wb.wait(t, 1, 10*time.Second)); diff != "" {
		t.Fatalf("Watch of the reap mismatch (-want +got):\n%s", diff)
	}
	// A's heartbeats, as beat runs them, the first losing its reply.
	p.again.Store(lost - 1)
	p.fired.Store(false)
	var expired bool
	for i := 0; i < 3; i++ {
		expired, err = a.Heartbeat(ctx)
		t.Logf("Heartbeat %d = %v, %v", i, expired, err)
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("Heartbeat failed 3 times: %v", err)
	}
	if got := p.lost.Load(); got != lost {
		t.Fatalf("the proxy lost %d replies of the heartbeat; want %d", got, lost)
	}
	if left := a.Settle(ctx, expired, nil); len(left) != 0 {
		t.Fatalf("Settle left %v", left)
	}
	if diff := cmp.Diff([]int64{10}, online(t, b, 777004)); diff != "" {
		t.Errorf("Online after the heartbeat mismatch (-want +got):\n%s", diff)
	}
	wa.mu.Lock()
	back := slices.Clone(wa.back)
	wa.mu.Unlock()
	if diff := cmp.Diff([][2]int64{{777004, 10}}, back); diff != "" {
		t.Errorf("presences reported back mismatch (-want +got):\n%s", diff)
	}
}

// TestPresenceReapReportedOnceWhenReaperCloses: a node that reported a
// reap but could not confirm it (Close cancelled the sweep's calls as the
// Watch functions ran, or Redis failed the confirm) and then closes
// leaves nothing for another node to take over: the reap's presences are
// reported gone once. The reap stayed in Redis under the closed node,
// and once its lease lapsed another node reported it again: the user's
// friends were told twice that they went offline.
func TestPresenceReapReportedOnceWhenReaperCloses(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	d := e.client(t, redis.Options{NodeID: "dead-782", NodeTTL: time.Minute}).Presence()
	mustAdd(t, d, 777005, 10, true)
	d.Crash()
	if err := e.raw.Del(ctx, e.prefix+"presence:node:dead-782").Err(); err != nil {
		t.Fatal(err)
	}

	c := e.client(t, redis.Options{NodeID: "reaper-782", NodeTTL: time.Minute})
	r := c.Presence()
	sweep, stop := context.WithCancel(ctx)
	defer stop()
	r.Watch(func(int64, int64, bool) { stop() }) // the confirm after the report fails
	wr := watch(r)
	err := r.Sweep(sweep)
	t.Logf("Sweep cancelled as it reported = %v", err)
	if diff := cmp.Diff([][2]int64{{777005, 10}}, wr.all()); diff != "" {
		t.Fatalf("Watch of the reaper mismatch (-want +got):\n%s", diff)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// The leases of whatever reaps are left lapse.
	tokens, err := e.raw.SMembers(ctx, e.prefix+"presence:reaping").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reaps left after the reaper closed: %v", tokens)
	for _, tok := range tokens {
		if err := e.raw.Del(ctx, e.prefix+"presence:lease:"+tok).Err(); err != nil {
			t.Fatal(err)
		}
	}
	n := e.client(t, redis.Options{NodeID: "taker-782", NodeTTL: time.Minute}).Presence()
	wn := watch(n)
	if err := n.Sweep(ctx); err != nil {
		t.Fatalf("Sweep of another node: %v", err)
	}
	if got := wn.all(); len(got) != 0 {
		t.Errorf("another node's sweep reported %v gone again; want nothing", got)
	}
}

// limiterViaReplyLoser is a Limiter on the test's prefix that reaches
// Redis through a replyLoser of marker, not armed yet, with its script
// loaded (a first run of it could be the EVAL after a NOSCRIPT).
func limiterViaReplyLoser(t *testing.T, e *testEnv, marker string) (*redis.Limiter, *replyLoser) {
	t.Helper()
	p := startReplyLoser(t, e.target(t), []byte(marker))
	p.fired.Store(true) // not yet
	c, err := redis.New(context.Background(), "redis://"+p.ln.Addr().String(), redis.Options{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	l := c.Limiter()
	if ok, _, err := l.Allow(context.Background(), "warm-up", 1, time.Hour); err != nil || !ok {
		t.Fatalf("Allow(warm-up) = %v, %v; want allowed", ok, err)
	}
	return l, p
}

// TestLimiterAllowWhenReplyLost: an Allow whose reply is lost (the
// connection broke after Redis ran it) counts its event once and allows
// it. go-redis ran the script again, which found the first run's entry
// and, at the limit, refused the event it had counted: the user was
// rate-limited for an action counted once and refused.
func TestLimiterAllowWhenReplyLost(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	l, p := limiterViaReplyLoser(t, e, "lim-777006")
	if ok, _, err := l.Allow(ctx, "lim-777006", 2, time.Hour); err != nil || !ok {
		t.Fatalf("Allow event 1 = %v, %v; want allowed", ok, err)
	}
	p.fired.Store(false)
	ok, _, err := l.Allow(ctx, "lim-777006", 2, time.Hour)
	if !p.fired.Load() {
		t.Fatal("the proxy never saw the Allow")
	}
	if err != nil || !ok {
		t.Errorf("Allow event 2 with its reply lost = %v, %v; want allowed", ok, err)
	}
	if n, err := e.raw.ZCard(ctx, e.prefix+"limit:lim-777006").Result(); err != nil || n != 2 {
		t.Errorf("events counted = %d, %v; want 2", n, err)
	}
}

// TestLimiterUndoWhenReplyLost: an Undo whose reply is lost takes back
// one event, not two. go-redis sent the ZPOPMAX again.
func TestLimiterUndoWhenReplyLost(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	l, p := limiterViaReplyLoser(t, e, "lim-777007")
	if err := l.Undo(ctx, "warm-up"); err != nil { // the script loaded
		t.Fatal(err)
	}
	for i := range 2 {
		if ok, _, err := l.Allow(ctx, "lim-777007", 3, time.Hour); err != nil || !ok {
			t.Fatalf("Allow event %d = %v, %v; want allowed", i+1, ok, err)
		}
	}
	p.fired.Store(false)
	err := l.Undo(ctx, "lim-777007")
	t.Logf("Undo with its reply lost = %v", err)
	if !p.fired.Load() {
		t.Fatal("the proxy never saw the Undo")
	}
	if n, err := e.raw.ZCard(ctx, e.prefix+"limit:lim-777007").Result(); err != nil || n != 1 {
		t.Errorf("events counted after one Undo = %d, %v; want 1", n, err)
	}
}

// TestPresenceReapConfirmedAfterSlowWatch: a sweep whose Watch functions
// take all its time (a large reap, each presence told to friends and
// rooms) still confirms the reap it reported, so that no node takes it
// over and reports it again. The confirm shared the sweep's context and
// failed; had the reaper then died, another node reported the reap's
// presences gone a second time.
func TestPresenceReapConfirmedAfterSlowWatch(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	d := e.client(t, redis.Options{NodeID: "dead-783", NodeTTL: time.Minute}).Presence()
	mustAdd(t, d, 777008, 10, true)
	d.Crash()
	if err := e.raw.Del(ctx, e.prefix+"presence:node:dead-783").Err(); err != nil {
		t.Fatal(err)
	}

	r := e.client(t, redis.Options{NodeID: "reaper-783", NodeTTL: time.Minute}).Presence()
	sweep, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	r.Watch(func(int64, int64, bool) { <-sweep.Done() }) // uses up the sweep's time
	wr := watch(r)
	err := r.Sweep(sweep)
	t.Logf("Sweep whose Watch took its time = %v", err)
	if diff := cmp.Diff([][2]int64{{777008, 10}}, wr.all()); diff != "" {
		t.Fatalf("Watch of the reaper mismatch (-want +got):\n%s", diff)
	}
	tokens, err := e.raw.SMembers(ctx, e.prefix+"presence:reaping").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 0 {
		t.Errorf("reaps left unconfirmed after the sweep: %v; want none", tokens)
	}

	// The reaper dies; its leases lapse.
	r.Crash()
	if err := e.raw.Del(ctx, e.prefix+"presence:node:reaper-783").Err(); err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		if err := e.raw.Del(ctx, e.prefix+"presence:lease:"+tok).Err(); err != nil {
			t.Fatal(err)
		}
	}
	n := e.client(t, redis.Options{NodeID: "taker-783", NodeTTL: time.Minute}).Presence()
	wn := watch(n)
	if err := n.Sweep(ctx); err != nil {
		t.Fatalf("Sweep of another node: %v", err)
	}
	if got := wn.all(); len(got) != 0 {
		t.Errorf("another node's sweep reported %v gone again; want nothing", got)
	}
}

// lateSender forwards connections to a Redis and, once armed, holds back
// the first command a client sends with marker until release is called,
// as a network that delays one connection's packets: the client has
// stopped waiting for it when Redis runs it. ran is closed once Redis
// answered it.
type lateSender struct {
	ln      net.Listener
	marker  []byte
	armed   atomic.Bool
	held    chan struct{} // closed when the command is held
	release chan struct{}
	ran     chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// letGo sends the command held back.
func (p *lateSender) letGo() { p.once.Do(func() { close(p.release) }) }

func startLateSender(tb testing.TB, target string, marker []byte) *lateSender {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &lateSender{ln: ln, marker: marker, held: make(chan struct{}), release: make(chan struct{}), ran: make(chan struct{})}
	proxyTo(ln, target, &p.wg, p.serve)
	tb.Cleanup(func() {
		p.letGo()
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *lateSender) serve(c, s net.Conn) {
	defer p.wg.Done()
	var late atomic.Bool // the held command was sent
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := s.Read(buf)
			if n > 0 {
				if late.CompareAndSwap(true, false) {
					close(p.ran)
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			hold := bytes.Contains(buf[:n], p.marker) && p.armed.CompareAndSwap(true, false)
			if hold {
				close(p.held)
				<-p.release
				late.Store(true)
			}
			if _, err := s.Write(buf[:n]); err != nil {
				break
			}
			if hold {
				select { // its answer, before the client's end may close s
				case <-p.ran:
				case <-time.After(5 * time.Second):
				}
			}
		}
		if err != nil {
			break
		}
	}
	c.Close()
	s.Close()
	<-done
}

// TestPresenceLateRemoveRepaired: a Remove that Redis runs after the node
// stopped waiting for it (callTimeout), and after an Add of the same
// presence, does not leave the connection of that Add shown absent: the
// heartbeat writes the presence again. The Add marked the presence
// settled, and nothing wrote it again while the connection lasted.
func TestPresenceLateRemoveRepaired(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	p := startLateSender(t, e.target(t), []byte("777009"))
	c, err := redis.New(ctx, "redis://"+p.ln.Addr().String(), redis.Options{Prefix: e.prefix, NodeID: "a", NodeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	a := c.Presence()
	wa := watch(a)
	mustAdd(t, a, 1, 10, true) // the scripts loaded
	mustRemove(t, a, 1, 10, true)
	mustAdd(t, a, 777009, 10, true)
	p.armed.Store(true)
	last, err := a.Remove(ctx, 777009, 10)
	if err == nil {
		t.Fatalf("Remove held back = %v, nil; want an error", last)
	}
	select {
	case <-p.held:
	default:
		t.Fatal("the proxy never held the Remove")
	}
	eventually(t, 5*time.Second, "Redis taken for answering again", func() bool {
		_, _, err := a.Online(ctx, 777009, 0)
		return err == nil
	})
	// The connection opens again while the Remove is under way.
	first, err := a.Add(ctx, 777009, 10)
	t.Logf("Add while the Remove is under way = %v, %v", first, err)
	if err != nil {
		t.Fatal(err)
	}
	p.letGo()
	select {
	case <-p.ran:
	case <-time.After(5 * time.Second):
		t.Fatal("Redis never answered the Remove held back")
	}
	in, err := e.raw.SIsMember(ctx, e.prefix+"presence:in:777009", 10).Result()
	t.Logf("present in Redis after the late Remove: %v, %v", in, err)
	// Heartbeats, as beat runs them, until the presence is back.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if left := a.Settle(ctx, false, nil); len(left) != 0 {
			t.Fatalf("Settle left %v", left)
		}
		if slices.Equal(online(t, a, 777009), []int64{10}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Online(777009) = %v 5s after the late Remove, the connection open; want [10]", online(t, a, 777009))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := wa.all(); len(got) != 0 {
		t.Errorf("Watch reported %v ended; want nothing", got)
	}
	// Who read Redis meanwhile found the user gone.
	if diff := cmp.Diff([][2]int64{{777009, 10}}, wa.waitBack(t, "the presence reported back")); diff != "" {
		t.Errorf("presences reported back mismatch (-want +got):\n%s", diff)
	}
	mustRemove(t, a, 777009, 10, true)
}

// TestPresenceAddFirstWhenReplyLost: an Add whose reply is lost, while the
// same user joins on another node before go-redis sends it again, still
// has one of the two Adds report first. The first run answered first;
// the other node's found this one there and answered not first; the run
// again found the other node there and answered not first too: nobody
// told the user's friends and rooms they came online.
func TestPresenceAddFirstWhenReplyLost(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	b := e.client(t, redis.Options{NodeID: "b"}).Presence()
	// The script loaded: its first run is the EVALSHA the proxy marks.
	mustAdd(t, b, 1, 10, true)
	mustRemove(t, b, 1, 10, true)
	p := startReplyLoser(t, e.target(t), []byte("777010"))
	var bFirst atomic.Bool
	p.between = func() {
		first, err := b.Add(ctx, 777010, 10)
		t.Logf("Add on B between the runs = %v, %v", first, err)
		bFirst.Store(first)
	}
	c, err := redis.New(ctx, "redis://"+p.ln.Addr().String(), redis.Options{Prefix: e.prefix, NodeID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	aFirst, err := c.Presence().Add(ctx, 777010, 10)
	t.Logf("Add on A with its reply lost = %v, %v", aFirst, err)
	if !p.fired.Load() {
		t.Fatal("the proxy never saw the Add")
	}
	if err == nil && aFirst == bFirst.Load() {
		t.Errorf("Add on A = %v, Add on B = %v; want exactly one first", aFirst, bFirst.Load())
	}
}
