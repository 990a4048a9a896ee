package main

// Fault tests: real parley processes on PostgreSQL and Redis, real
// WebSocket clients, and a fault each; every test checks that nothing is
// lost, nothing is stored twice and order is kept. See faultkit_test.go.

import (
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/testenv"
)

// TestFaultCrossNode: users on three nodes chat in a room, a group and a
// direct chat; every message reaches everyone once, in order.
func TestFaultCrossNode(t *testing.T) {
	e := newFaultEnv(t, envOptions{nodes: 3, users: 6})
	clients := e.connectAll()
	start := time.Now()
	stop := startLoad(clients, 20*time.Millisecond)
	time.Sleep(2 * time.Second)
	stop()
	r, _ := e.settle(clients, 20*time.Second)
	r.check(t)
	t.Logf("3 nodes, 6 users, room + group + direct chat; took %v", time.Since(start).Round(time.Millisecond))
}

// TestFaultKillNode: a node is killed with SIGKILL while clients on every
// node send; its clients reconnect elsewhere, resync and retry what was
// not acknowledged, and each message is stored once.
func TestFaultKillNode(t *testing.T) {
	e := newFaultEnv(t, envOptions{nodes: 3, users: 6})
	clients := e.connectAll()
	start := time.Now()
	stop := startLoad(clients, 20*time.Millisecond)
	time.Sleep(1200 * time.Millisecond)
	killedAt := time.Now()
	e.signal(e.nodes[2], sigkill)
	time.Sleep(2 * time.Second)
	stop()
	r, _ := e.settle(clients, 20*time.Second)
	r.check(t)
	var worstReconnect, worstResync time.Duration
	moved := 0
	for _, c := range clients {
		c.mu.Lock()
		if c.pref == 2 {
			if len(c.reconnect) == 0 || c.node == 2 {
				t.Errorf("%s was on the killed node and did not reconnect elsewhere (node %d, %d reconnects)", c.name, c.node, len(c.reconnect))
			} else {
				moved++
			}
			worstReconnect = max(worstReconnect, maxDuration(c.reconnect))
			worstResync = max(worstResync, maxDuration(c.resync))
		} else if len(c.reconnect) > 0 {
			t.Errorf("%s on a live node reconnected %d times", c.name, len(c.reconnect))
		}
		c.mu.Unlock()
	}
	t.Logf("node n2 killed %v after the start; %d clients moved; reconnect time ≤ %v, resynced ≤ %v after their connection broke; took %v",
		killedAt.Sub(start).Round(time.Millisecond), moved, worstReconnect.Round(time.Millisecond), worstResync.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if worstReconnect > 5*time.Second {
		t.Errorf("reconnect took %v; want under 5s", worstReconnect)
	}
}

// TestFaultRedisRestart: the Redis between the nodes is restarted while
// clients send; sends are acknowledged throughout, the nodes reconnect by
// themselves and the messages of the outage reach everyone soon after.
func TestFaultRedisRestart(t *testing.T) {
	skipFaultIfShort(t)
	testenv.Postgres(t) // skip before starting anything
	rs := startRedisServer(t)
	e := newFaultEnv(t, envOptions{nodes: 2, users: 4, broker: rs.URL()})
	clients := e.connectAll()
	start := time.Now()
	const outage = 3 * time.Second
	downAt, upAt := e.outage(clients, 25*time.Millisecond, outage, rs.stop, rs.start, 20*time.Second)

	// Catch-up: when the last message acknowledged during the outage
	// reached the last client, measured from Redis's return.
	lastOutage := map[int64]int64{} // conversation → highest seq acked during the outage
	ackedDuring := 0
	for _, c := range clients {
		c.mu.Lock()
		for _, p := range c.byCID {
			if p.acked && p.ackedAt.After(downAt) && p.ackedAt.Before(upAt) {
				ackedDuring++
				lastOutage[p.room] = max(lastOutage[p.room], p.seq)
			}
		}
		c.mu.Unlock()
	}
	var catchUp time.Duration
	for _, c := range clients {
		c.mu.Lock()
		for id, cs := range c.convs {
			if s := lastOutage[id]; s > 0 && int(s) <= len(cs.gotAt) {
				catchUp = max(catchUp, cs.gotAt[s-1].Sub(upAt))
			}
		}
		c.mu.Unlock()
	}
	t.Logf("Redis down %v; %d sends acknowledged during the outage; they reached every client %v after Redis returned; took %v",
		upAt.Sub(downAt).Round(time.Millisecond), ackedDuring, catchUp.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if ackedDuring == 0 {
		t.Errorf("no send was acknowledged while Redis was down")
	}
	if catchUp > 10*time.Second {
		t.Errorf("messages of the outage took %v to reach everyone; want under 10s", catchUp)
	}
	for _, n := range e.nodes {
		if exited(n) {
			t.Errorf("node %s exited: %v", n.id, n.err)
		}
	}
}

// TestFaultPostgresCut: the database is unreachable for 10s; sends fail
// with the retryable "unavailable" error, never an ack without a commit;
// the nodes recover by themselves and the retried sends are stored once.
func TestFaultPostgresCut(t *testing.T) {
	skipFaultIfShort(t)
	var proxy *testenv.Proxy
	e := newFaultEnv(t, envOptions{nodes: 2, users: 4, viaDB: func(db string) string {
		u, err := url.Parse(db)
		if err != nil {
			t.Fatal(err)
		}
		proxy = testenv.StartProxy(t, u.Host)
		u.Host = proxy.Addr()
		return u.String()
	}})
	clients := e.connectAll()
	start := time.Now()
	const outage = 10 * time.Second
	cutAt, backAt := e.outage(clients, 50*time.Millisecond, outage, proxy.Cut, func() { proxy.Restore(t) }, 30*time.Second)

	codes := map[string]int{}
	ackedDuring, errorsDuring := 0, 0
	var firstAckAfter time.Time
	for _, c := range clients {
		c.mu.Lock()
		for code, n := range c.errCodes {
			codes[code] += n
		}
		for _, at := range c.errTimes {
			if at.After(cutAt) {
				errorsDuring++
			}
		}
		for _, p := range c.byCID {
			if p.acked && p.ackedAt.After(cutAt.Add(500*time.Millisecond)) && p.ackedAt.Before(backAt) {
				ackedDuring++
			}
			if p.acked && p.ackedAt.After(backAt) && (firstAckAfter.IsZero() || p.ackedAt.Before(firstAckAfter)) {
				firstAckAfter = p.ackedAt
			}
		}
		c.mu.Unlock()
	}
	t.Logf("PostgreSQL cut for %v: %d send errors, codes %v; %d acks during the cut; first ack %v after it returned; took %v",
		backAt.Sub(cutAt).Round(time.Millisecond), errorsDuring, codes, ackedDuring,
		firstAckAfter.Sub(backAt).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if errorsDuring == 0 {
		t.Errorf("no send failed while PostgreSQL was unreachable")
	}
	for code := range codes {
		if code != "unavailable" {
			t.Errorf("clients got error code %q (%d times); want only unavailable", code, codes[code])
		}
	}
	if ackedDuring > 0 {
		t.Errorf("%d sends acknowledged while PostgreSQL was unreachable", ackedDuring)
	}
	if firstAckAfter.IsZero() || firstAckAfter.Sub(backAt) > 10*time.Second {
		t.Errorf("first ack after PostgreSQL returned at %v; want within 10s", firstAckAfter.Sub(backAt))
	}
	for _, n := range e.nodes {
		if exited(n) {
			t.Errorf("node %s exited: %v", n.id, n.err)
		}
	}
}

// TestFaultRollingRestart: each node in turn gets SIGTERM and is started
// again while clients send; nothing is lost or stored twice.
func TestFaultRollingRestart(t *testing.T) {
	e := newFaultEnv(t, envOptions{nodes: 3, users: 6})
	clients := e.connectAll()
	start := time.Now()
	stop := startLoad(clients, 20*time.Millisecond)
	var restarts []string
	for _, n := range e.nodes {
		time.Sleep(700 * time.Millisecond)
		t0 := time.Now()
		if err := e.signal(n, sigterm); err != nil {
			t.Errorf("node %s after SIGTERM: %v", n.id, err)
		}
		stopped := time.Since(t0)
		e.startNode(n)
		restarts = append(restarts, fmt.Sprintf("%s stopped in %v, back in %v", n.id, stopped.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond)))
	}
	time.Sleep(700 * time.Millisecond)
	stop()
	r, _ := e.settle(clients, 20*time.Second)
	r.check(t)
	reconnects := 0
	var worst time.Duration
	for _, c := range clients {
		c.mu.Lock()
		reconnects += len(c.reconnect)
		worst = max(worst, maxDuration(c.reconnect))
		c.mu.Unlock()
	}
	t.Logf("rolling restart: %v; %d client reconnects, each ≤ %v; took %v", restarts, reconnects, worst.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if reconnects == 0 {
		t.Errorf("no client reconnected during the rolling restart")
	}
}

// TestFaultSameClientIDTwoNodes: one user sends the same client_id through
// two nodes at once; it is stored once and both get an ack with its seq.
func TestFaultSameClientIDTwoNodes(t *testing.T) {
	e := newFaultEnv(t, envOptions{nodes: 2, users: 2})
	u := e.users[0]
	a := newClient("a", u, e.urls, 0)
	b := newClient("b", u, e.urls, 1)
	other := newClient("u1", e.users[1], e.urls, 1)
	for _, c := range []*fclient{a, b, other} {
		c.start()
	}
	t.Cleanup(func() { a.close(); b.close(); other.close() })
	if !pollUntil(15*time.Second, func() bool { return a.connected() && b.connected() && other.connected() }) {
		t.Fatal("clients did not connect within 15s")
	}
	if a.nodeIndex() == b.nodeIndex() {
		t.Fatalf("both connections are on node %d", a.nodeIndex())
	}
	start := time.Now()
	const rounds = 40
	for k := range rounds {
		cid := fmt.Sprintf("same-%d", k)
		var wg sync.WaitGroup
		for _, c := range []*fclient{a, b} {
			wg.Go(func() { c.sendAlone(e.room, cid, "twice "+cid) })
		}
		wg.Wait()
		if !pollUntil(10*time.Second, func() bool { return a.backlog() == 0 && b.backlog() == 0 }) {
			t.Fatalf("%s not acknowledged on both connections within 10s", cid)
		}
	}
	stored := e.history(u, e.room)
	count := map[string]int{}
	for _, m := range stored {
		count[m.ClientID]++
	}
	dup, lost, mismatched := 0, 0, 0
	for k := range rounds {
		cid := fmt.Sprintf("same-%d", k)
		switch n := count[cid]; {
		case n == 0:
			lost++
		case n > 1:
			dup += n - 1
		}
		a.mu.Lock()
		b.mu.Lock()
		pa, pb := a.byCID[cid], b.byCID[cid]
		if !pa.acked || !pb.acked || pa.seq != pb.seq {
			mismatched++
			t.Errorf("%s: acks %v seq %d and %v seq %d; want both, same seq", cid, pa.acked, pa.seq, pb.acked, pb.seq)
		}
		b.mu.Unlock()
		a.mu.Unlock()
	}
	// Everyone received the stored sequence, exactly once each.
	r, _ := e.settle([]*fclient{a, b, other}, 20*time.Second)
	t.Logf("%d client_ids each sent through 2 nodes at once: stored %d messages; lost=%d duplicated=%d ack seq mismatches=%d; took %v",
		rounds, len(stored), lost, dup, mismatched, time.Since(start).Round(time.Millisecond))
	if lost != 0 || dup != 0 {
		t.Errorf("lost=%d duplicated=%d; want 0", lost, dup)
	}
	if r.missing != 0 || !r.orderOK {
		t.Errorf("deliveries: %v", r)
	}
}
