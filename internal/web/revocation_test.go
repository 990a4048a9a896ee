package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// signOutOnRead is a store whose Session read, when armed for a token
// hash, lets the session's sign-out run to its end before the read
// returns: the interleaving of a request authenticated just before a
// sign-out committed and was published.
type signOutOnRead struct {
	chat.Store
	svc   atomic.Pointer[chat.Service]
	armed atomic.Pointer[string]
}

func (s *signOutOnRead) Session(ctx context.Context, hash string) (chat.Session, chat.User, error) {
	sess, u, err := s.Store.Session(ctx, hash)
	if p := s.armed.Load(); err == nil && p != nil && *p == hash && s.armed.CompareAndSwap(p, nil) {
		if serr := s.svc.Load().SignOut(ctx, sess); serr != nil {
			panic(serr)
		}
	}
	return sess, u, err
}

// lossyBroker loses, while down is set, the events of type typ published
// to the topic of user (to any topic while user is 0), as a Redis broker
// loses what is published while Redis is unreachable.
type lossyBroker struct {
	chat.Broker
	typ  chat.EventType
	user atomic.Int64
	down atomic.Bool
}

func (b *lossyBroker) Publish(ctx context.Context, t chat.Topic, ev chat.Event) error {
	if u := b.user.Load(); b.down.Load() && ev.Type == b.typ && (u == 0 || t == chat.UserTopic(u)) {
		return errors.New("redis: unreachable")
	}
	return b.Broker.Publish(ctx, t, ev)
}

// pollAs does a poll request with the raw session token (none if "").
func pollAs(tb testing.TB, ts *testServer, method, token, cursor, body string) response {
	tb.Helper()
	var b any
	if body != "" {
		b = body
	}
	req := ts.newRequest(tb, method, "/api/poll?cursor="+url.QueryEscape(cursor), b)
	if token != "" {
		req.AddCookie(&http.Cookie{Name: web.CookieName, Value: token})
	}
	return send(tb, nil, req)
}

func cursorOf(tb testing.TB, r response) string {
	tb.Helper()
	var body struct {
		Cursor string `json:"cursor"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &body) != nil || body.Cursor == "" {
		tb.Fatalf("poll = %s; want 200 with a cursor", r)
	}
	return body.Cursor
}

// TestPollSignOutLost: a signed-out session token kept working, for
// reading and for sending as its user, on a long-poll channel whose
// session_ended event did not arrive (the broker was unreachable when the
// session signed out), while every other request with it got 401. The
// hub's check of its clients' sessions closes the channel.
func TestPollSignOutLost(t *testing.T) {
	var lb *lossyBroker
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.PollHold = 200 * time.Millisecond }), withChat(func(c *chat.Config) { c.SessionCheck = 20 * time.Millisecond }),
		withBroker(func(b chat.Broker) chat.Broker { lb = &lossyBroker{Broker: b, typ: chat.EventSessionEnded}; return lb }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	token := ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value

	// Whoever holds the token (a stolen cookie) long-polls.
	cur := cursorOf(t, pollAs(t, ts, "GET", token, "", ""))
	cur = cursorOf(t, pollAs(t, ts, "GET", token, cur, ""))

	lb.down.Store(true) // Redis is unreachable for a moment
	ts.mustDo(t, ada, "POST", "/api/auth/signout", nil, http.StatusNoContent, nil)
	lb.down.Store(false)

	// The channel serves its polls until the check closes it: polls that
	// read, and send nothing.
	deadline := time.Now().Add(waitTimeout)
	for r := pollAs(t, ts, "GET", token, cur, ""); r.Status == http.StatusOK; r = pollAs(t, ts, "GET", token, cur, "") {
		if time.Now().After(deadline) {
			t.Fatalf("the signed-out token still polls after %s", waitTimeout)
		}
		cur = cursorOf(t, r)
	}
	wantSignedOut(t, ts, token, cur, room.ID)
	for _, m := range ts.allMessages(t, ts.signIn(t, "eve@example.com", "Eve"), room.ID) {
		if m.Kind == "text" {
			t.Errorf("stored after Ada signed out, as Ada: %+v", m)
		}
	}
}

// TestWSSignOutLost: the WebSocket form of TestPollSignOutLost: a
// connection whose node missed its session's sign-out stayed open. The
// hub's check closes it as the event would have, and the other session's
// connection stays.
func TestWSSignOutLost(t *testing.T) {
	var lb *lossyBroker
	ts := newTestServer(t, withChat(func(c *chat.Config) { c.SessionCheck = 20 * time.Millisecond }),
		withBroker(func(b chat.Broker) chat.Broker { lb = &lossyBroker{Broker: b, typ: chat.EventSessionEnded}; return lb }))
	phone := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, phone, "general")
	laptop := ts.signIn(t, "ada@example.com", "Ada")
	wp, wl := ts.connect(t, phone), ts.connect(t, laptop)
	wp.open(t, room.ID, nil)
	wl.open(t, room.ID, nil)

	lb.down.Store(true)
	ts.mustDo(t, phone, "POST", "/api/auth/signout", nil, http.StatusNoContent, nil)
	lb.down.Store(false)
	wp.expectClose(t, web.CloseSessionEnded)
	wl.sendMessage(t, room.ID, "laptop-1", "still here")
}

// TestPollSignOutRace: a poll channel made by a request authenticated
// just before its session signed out misses the session_ended event, and
// from then on the signed-out token is that channel's user without a
// session read: single node, nothing lost.
func TestPollSignOutRace(t *testing.T) {
	var st *signOutOnRead
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.PollHold = 200 * time.Millisecond }), withStore(func(s chat.Store) chat.Store { st = &signOutOnRead{Store: s}; return st }))
	st.svc.Store(ts.svc)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	token := ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value

	hash := chat.HashToken(token)
	st.armed.Store(&hash) // Ada signs out while the next poll is authenticated
	r := pollAs(t, ts, "GET", token, "", "")
	if r.Status != http.StatusOK {
		wantError(t, "poll authenticated as its session signed out", r, http.StatusUnauthorized, chat.CodeUnauthorized)
		return // refused: as it should be
	}
	wantSignedOut(t, ts, token, cursorOf(t, r), room.ID)
}

// wantSignedOut checks that the signed-out session token gets 401 from the
// API, and from the poll channel of cursor cur, where it neither polls
// nor sends.
func wantSignedOut(t *testing.T, ts *testServer, token, cur string, roomID int64) {
	t.Helper()
	req := ts.newRequest(t, "GET", "/api/me", nil)
	req.AddCookie(&http.Cookie{Name: web.CookieName, Value: token})
	wantError(t, "GET /api/me with the signed-out token", send(t, nil, req), http.StatusUnauthorized, chat.CodeUnauthorized)
	for i := range 3 {
		r := pollAs(t, ts, "GET", token, cur, "")
		if r.Status != http.StatusOK {
			wantError(t, "a poll with the signed-out token", r, http.StatusUnauthorized, chat.CodeUnauthorized)
			return
		}
		cur = cursorOf(t, r)
		frame := `{"type":"send","room_id":` + strconv.FormatInt(roomID, 10) + `,"client_id":"after-signout-` + strconv.Itoa(i) + `","body":"sent with a signed-out token"}`
		t.Errorf("poll %d with the signed-out token = 200; POST send = %s", i, pollAs(t, ts, "POST", token, cur, frame))
	}
}

// TestWSSignOutRace: the WebSocket form of TestPollSignOutRace: an
// upgrade authenticated just before its session signed out stays open,
// and sends, after the sign-out.
func TestWSSignOutRace(t *testing.T) {
	var st *signOutOnRead
	ts := newTestServer(t, withStore(func(s chat.Store) chat.Store { st = &signOutOnRead{Store: s}; return st }))
	st.svc.Store(ts.svc)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	token := ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value
	hash := chat.HashToken(token)
	st.armed.Store(&hash)
	conn, _, err := ts.dial(t, ada, "/api/ws", dialOptions{})
	if err != nil {
		return // refused
	}
	w := newWSClient(t, "Ada", conn)
	w.startReading()
	w.send(t, map[string]any{"type": "send", "room_id": room.ID, "client_id": "ws-after", "body": "after sign-out", "ref": "x"})
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		q, err, changed := w.queue, w.err, w.changed
		w.mu.Unlock()
		for _, f := range q {
			if f.Type == "ack" {
				t.Errorf("WebSocket opened as its session signed out stays open and sends: %s", f)
				return
			}
		}
		if err != nil {
			t.Logf("closed: %v", err)
			return // closed: as it should be
		}
		select {
		case <-changed:
		case <-time.After(time.Until(deadline)):
		}
	}
	t.Errorf("neither an ack nor a close within %s", waitTimeout)
}

// removeOnUserGroups is a store whose UserGroups, when armed, runs a function
// after the read and before it returns: a removal from a group between a
// connection's read of its user's groups and its subscriptions to them.
type removeOnUserGroups struct {
	chat.Store
	armed atomic.Pointer[func()]
}

func (s *removeOnUserGroups) UserGroups(ctx context.Context, userID int64) ([]chat.MemberAt, error) {
	gs, err := s.Store.UserGroups(ctx, userID)
	if f := s.armed.Swap(nil); f != nil {
		(*f)()
	}
	return gs, err
}

// TestRemovedWhileConnecting: a member removed from a group while their
// connection reads their groups does not follow the group: its messages
// do not reach them.
func TestRemovedWhileConnecting(t *testing.T) {
	var st *removeOnUserGroups
	ts := newTestServer(t, withStore(func(s chat.Store) chat.Store { st = &removeOnUserGroups{Store: s}; return st }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	g := ts.createGroup(t, ada, "crew", 0)
	ts.addMember(t, ada, g.ID, grace)
	var removed response
	remove := func() { removed = ts.do(t, ada, "DELETE", memberPath(g.ID, grace, ""), nil) }
	st.armed.Store(&remove)
	wg := ts.connect(t, grace)
	if removed.Status != http.StatusNoContent {
		t.Fatalf("removing Grace as she connects = %s; want 204", removed)
	}
	ts.mustDo(t, ada, "POST", roomPath(g.ID, "/messages"), map[string]string{"client_id": "a-1", "body": "after Grace left"}, http.StatusOK, nil)
	wg.barrier(t)
	for _, f := range wg.drain() {
		if f.Type == "message" && f.Message != nil && f.Message.ClientID == "a-1" {
			t.Errorf("Grace, removed as she connected, received the group's message: %s", f)
		}
	}
}

// TestPollShortSessionExpires: a session made to live an hour ("parley
// admin sessions --ttl 1h"), never renewed, stops working on its poll
// channel when it expires, as on every other request.
func TestPollShortSessionExpires(t *testing.T) {
	var st chat.Store
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.PollHold = 200 * time.Millisecond }), withStore(func(s chat.Store) chat.Store { st = s; return s }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	ts.enterRoom(t, ada, "general")
	const token = "a-token-of-an-hour"
	now := ts.clock.Now()
	if _, err := st.CreateSession(t.Context(), chat.Session{UserID: ada.ID, TokenHash: chat.HashToken(token), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	cur := cursorOf(t, pollAs(t, ts, "GET", token, "", ""))
	cur = cursorOf(t, pollAs(t, ts, "GET", token, cur, ""))
	ts.clock.Advance(time.Hour - time.Second)
	cur = cursorOf(t, pollAs(t, ts, "GET", token, cur, ""))
	ts.clock.Advance(time.Second)
	wantError(t, "a poll as the session expires", pollAs(t, ts, "GET", token, cur, ""), http.StatusUnauthorized, chat.CodeUnauthorized)
}

// TestRemovedFromStoreEndsPresence: a removed event that a WebSocket
// gets from the store, filling the gap before the next logged event
// (its broker lost it), closes the group on the connection as the live
// one does: the removed member is no longer listed as present in it.
func TestRemovedFromStoreEndsPresence(t *testing.T) {
	var br *lossyBroker
	ts := newTestServer(t, withBroker(func(b chat.Broker) chat.Broker {
		br = &lossyBroker{Broker: b, typ: chat.EventRemoved}
		return br
	}))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	g := ts.createGroup(t, ada, "Crew", 0)
	ts.addMember(t, ada, g.ID, bob)
	wb := ts.connect(t, bob)
	wb.open(t, g.ID, nil)

	br.user.Store(bob.ID)
	br.down.Store(true)
	ts.mustDo(t, ada, "DELETE", memberPath(g.ID, bob, ""), nil, http.StatusNoContent, nil)
	br.down.Store(false)
	ts.requestFriend(t, ada, bob.ID) // the next logged event for Bob
	wb.take(t, "removed", func(f frame) bool { return f.Type == "removed" && f.RoomID == g.ID })
	wb.take(t, "contact", func(f frame) bool { return f.Type == "contact" })

	online := func() []wireUser {
		var out struct {
			Users []wireUser `json:"users"`
			Count int        `json:"count"`
		}
		ts.mustDo(t, ada, "GET", roomPath(g.ID, "/online"), nil, http.StatusOK, &out)
		return out.Users
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		us := online()
		if !slices.ContainsFunc(us, func(u wireUser) bool { return u.ID == bob.ID }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %d online = %+v %s after Bob's connection got removed; want Bob gone", g.ID, us, waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAddedFromStoreFollowsGroup: a connection receives the messages of
// every group its user belongs to, opened or not, and follows a group
// the user is added to by itself (docs/protocol.md), also when the event
// that tells it comes from the store, filling the gap before the next
// logged event because its broker lost it.
func TestAddedFromStoreFollowsGroup(t *testing.T) {
	var br *lossyBroker
	ts := newTestServer(t, withBroker(func(b chat.Broker) chat.Broker {
		br = &lossyBroker{Broker: b, typ: chat.EventConversation}
		return br
	}))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	g := ts.createGroup(t, ada, "Crew", 0)
	wb := ts.connect(t, bob)

	br.user.Store(bob.ID)
	br.down.Store(true)
	ts.addMember(t, ada, g.ID, bob)
	br.down.Store(false)
	ts.requestFriend(t, ada, bob.ID) // the next logged event for Bob
	wb.take(t, "conversation", func(f frame) bool { return f.Type == "conversation" && f.RoomID == g.ID })
	wb.take(t, "contact", func(f frame) bool { return f.Type == "contact" })
	m := ts.post(t, ada, g.ID, "a-1", "hello crew")
	wb.expectMessage(t, g.ID, m.Seq)
}

// TestSessionCap: a user could hold as many sessions as sign-in codes
// reached them, about 14,400 in a session's 30 days. Past
// MaxSessionsPerUser a sign-in ends the user's least recently used
// session as a sign-out does: its token gets 401, its WebSocket is closed
// with 4001 and its long-poll channel ends. The sessions used since, the
// one signed in first among them, and the new one keep working.
func TestSessionCap(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.PollHold = 200 * time.Millisecond }),
		withChat(func(c *chat.Config) { c.MaxSessionsPerUser = 3 }))
	phone := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, phone, "general")
	ts.clock.Advance(time.Minute)
	laptop := ts.signIn(t, "ada@example.com", "Ada")
	ts.clock.Advance(time.Minute)
	tablet := ts.signIn(t, "ada@example.com", "Ada")
	wp, wl := ts.connect(t, phone), ts.connect(t, laptop)
	wp.open(t, room.ID, nil)
	wl.open(t, room.ID, nil)
	laptopToken := laptop.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value
	cur := cursorOf(t, pollAs(t, ts, "GET", laptopToken, "", ""))

	// A day later the phone and the tablet are used again, the laptop
	// not: it is the least recently used, though the phone is older.
	ts.clock.Advance(24 * time.Hour)
	ts.mustDo(t, phone, "GET", "/api/me", nil, http.StatusOK, nil)
	ts.mustDo(t, tablet, "GET", "/api/me", nil, http.StatusOK, nil)
	desk := ts.signIn(t, "ada@example.com", "Ada")

	wl.expectClose(t, web.CloseSessionEnded)
	wantSignedOut(t, ts, laptopToken, cur, room.ID)
	wp.sendMessage(t, room.ID, "phone-1", "still here")
	for _, c := range []*client{phone, tablet, desk} {
		ts.mustDo(t, c, "GET", "/api/me", nil, http.StatusOK, nil)
	}
}

// sessionUses counts a store's session reads and recorded uses.
type sessionUses struct {
	chat.Store
	reads, uses atomic.Int64
}

func (s *sessionUses) Session(ctx context.Context, hash string) (chat.Session, chat.User, error) {
	s.reads.Add(1)
	return s.Store.Session(ctx, hash)
}

func (s *sessionUses) UseSession(ctx context.Context, id int64, used, expires time.Time) error {
	s.uses.Add(1)
	return s.Store.UseSession(ctx, id, used, expires)
}

// TestPollChannelRecordsUse: a long-poll channel's polls are its user's
// without a session read, and so record no use of the session for the
// session cap; once an hour one is authenticated in full, which records
// it, and the polls after it go without a read again.
func TestPollChannelRecordsUse(t *testing.T) {
	var st *sessionUses
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.PollHold = 50 * time.Millisecond }),
		withStore(func(s chat.Store) chat.Store { st = &sessionUses{Store: s}; return st }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	token := ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value
	cur := cursorOf(t, pollAs(t, ts, "GET", token, "", ""))
	poll := func(what string, wantReads, wantUses int64) {
		t.Helper()
		st.reads.Store(0)
		st.uses.Store(0)
		for range 3 {
			cur = cursorOf(t, pollAs(t, ts, "GET", token, cur, ""))
		}
		if r, u := st.reads.Load(), st.uses.Load(); r != wantReads || u != wantUses {
			t.Errorf("%s: 3 polls read the session %d times and recorded %d uses; want %d and %d", what, r, u, wantReads, wantUses)
		}
	}
	poll("on the channel", 0, 0)
	ts.clock.Advance(chat.SessionUseStep)
	poll("an hour later", 1, 1)
	poll("after that", 0, 0)
}

// TestSessionUsedByWebSocket: a WebSocket opened once and left open
// recorded no use of its session after it connected, so a sign-in past
// MaxSessionsPerUser ended it as the least recently used while it was in
// use, and the session expired under it 30 days after its last request.
// The node's check of its connections' sessions records their use, an
// hour after the last one recorded, and renews a session in its last
// hour: the phone's WebSocket outlives the laptop signed in after it and
// left unused, and its session's first 30 days.
func TestSessionUsedByWebSocket(t *testing.T) {
	var st chat.Store
	ts := newTestServer(t, withChat(func(c *chat.Config) { c.SessionCheck = 20 * time.Millisecond }),
		withChat(func(c *chat.Config) { c.MaxSessionsPerUser = 2 }),
		withStore(func(s chat.Store) chat.Store { st = s; return s }))
	phone := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, phone, "general")
	wp := ts.connect(t, phone)
	wp.open(t, room.ID, nil)
	phoneHash := chat.HashToken(phone.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value)
	ts.clock.Advance(time.Minute)
	laptop := ts.signIn(t, "ada@example.com", "Ada")

	// waitUse waits for the check to record a use of the phone's session
	// now, by the test's clock, and returns the session.
	waitUse := func(what string) chat.Session {
		t.Helper()
		now := ts.clock.Now().Truncate(time.Microsecond)
		deadline := time.Now().Add(waitTimeout)
		for {
			sess, _, err := st.Session(t.Context(), phoneHash)
			if err == nil && sess.UsedAt.Equal(now) {
				return sess
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the session of the open WebSocket = %+v, %v after %s; want it used at %v", what, sess, err, waitTimeout, now)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ts.clock.Advance(chat.SessionUseStep)
	sess := waitUse("an hour later")
	desk := ts.signIn(t, "ada@example.com", "Ada")
	ts.mustDo(t, laptop, "GET", "/api/me", nil, http.StatusUnauthorized, nil)
	wp.sendMessage(t, room.ID, "phone-1", "still here")
	ts.mustDo(t, desk, "GET", "/api/me", nil, http.StatusOK, nil)

	// Half an hour before it would expire, the session is renewed; an
	// hour later, past that expiry, the WebSocket still works.
	ts.clock.Advance(sess.ExpiresAt.Sub(ts.clock.Now()) - 30*time.Minute)
	sess = waitUse("30 minutes before the session's end")
	if want := ts.clock.Now().Truncate(time.Microsecond).Add(30 * 24 * time.Hour); !sess.ExpiresAt.Equal(want) {
		t.Errorf("the session of the open WebSocket, in its last hour, expires at %v; want it renewed to %v", sess.ExpiresAt, want)
	}
	ts.clock.Advance(time.Hour)
	waitUse("past the session's first expiry")
	wp.sendMessage(t, room.ID, "phone-2", "still here, a month on")
}

// lateRemoval is a broker that, while holding, keeps back the publishes
// of user's removal from a group (the removed on their topic, and the
// group's message with Revoke) until release: a removal whose publish
// reaches this node late, over Redis from another node.
type lateRemoval struct {
	chat.Broker
	user    atomic.Int64
	holding atomic.Bool
	mu      sync.Mutex
	held    []func() error
}

func (b *lateRemoval) Publish(ctx context.Context, t chat.Topic, ev chat.Event) error {
	u := b.user.Load()
	if b.holding.Load() && (ev.Type == chat.EventRemoved && t == chat.UserTopic(u) || ev.Revoke == u) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.held = append(b.held, func() error { return b.Broker.Publish(context.WithoutCancel(ctx), t, ev) })
		return nil
	}
	return b.Broker.Publish(ctx, t, ev)
}

// release publishes what was held, in order, and holds no more.
func (b *lateRemoval) release(tb testing.TB) {
	tb.Helper()
	b.holding.Store(false)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.held) == 0 {
		tb.Fatal("no removal was held")
	}
	for _, publish := range b.held {
		if err := publish(); err != nil {
			tb.Fatal(err)
		}
	}
	b.held = nil
}

// TestLateRemovalSparesGroupsFollowed: Grace is removed from a group and
// added again, and then connects, before the removal's publishes reach
// this node. Her connection follows the group from the connect on; the
// removal, late, ended an earlier membership than the one the connect
// found, and must not stop it: the group's next message reaches her.
func TestLateRemovalSparesGroupsFollowed(t *testing.T) {
	br := &lateRemoval{}
	ts := newTestServer(t, withBroker(func(b chat.Broker) chat.Broker { br.Broker = b; return br }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	g := ts.createGroup(t, ada, "crew", 0)
	ts.addMember(t, ada, g.ID, grace)
	br.user.Store(grace.ID)
	br.holding.Store(true)
	ts.mustDo(t, ada, "DELETE", memberPath(g.ID, grace, ""), nil, http.StatusNoContent, nil)
	ts.addMember(t, ada, g.ID, grace)
	wg := ts.connect(t, grace)
	br.release(t)
	wg.barrier(t)
	ts.mustDo(t, ada, "POST", roomPath(g.ID, "/messages"), map[string]string{"client_id": "a-1", "body": "for Grace again"}, http.StatusOK, nil)
	wg.take(t, "the message after the late removal", func(f frame) bool {
		return f.Type == "message" && f.Message != nil && f.Message.ClientID == "a-1"
	})
}

// TestReopenAfterLeaveRefused: Grace has a room open on a connection and
// leaves it elsewhere; before the leave's removed reaches this node (late,
// as through a broker that lags), she opens the room there again. She is
// no member: the open is refused with not_member, as any open of a room
// not entered is (docs/protocol.md, open). An opened reply would carry a
// user_seq that covers the leave, make the late removed old news (the hub
// spares the subscription), and keep the room open and her present in it.
func TestReopenAfterLeaveRefused(t *testing.T) {
	br := &lateRemoval{}
	ts := newTestServer(t, withBroker(func(b chat.Broker) chat.Broker { br.Broker = b; return br }))
	ada, grace, room, wa, wg := ts.adaAndGrace(t)
	br.user.Store(grace.ID)
	br.holding.Store(true)
	ts.mustDo(t, grace, "DELETE", roomPath(room.ID, "/members/me"), nil, http.StatusNoContent, nil)

	wg.send(t, map[string]any{"type": "open", "room_id": room.ID, "ref": "again"})
	f := wg.take(t, "answer to the open after the leave", func(f frame) bool {
		return (f.Type == "opened" || f.Type == "error") && f.Ref == "again"
	})
	if f.Type != "error" || f.Code != "not_member" {
		t.Errorf("open after the leave = %s; want error not_member", f)
	}

	// The late removed then ends the room on this connection: Ada's next
	// message, which reaches Ada's connection, does not reach it.
	br.release(t)
	wg.take(t, "the late removed", func(f frame) bool { return f.Type == "removed" && f.RoomID == room.ID })
	ts.mustDo(t, ada, "POST", roomPath(room.ID, "/messages"), map[string]string{"client_id": "a-1", "body": "gone?"}, http.StatusOK, nil)
	wa.take(t, "Ada's message", func(f frame) bool { return f.Type == "message" && f.Message != nil && f.Message.ClientID == "a-1" })
	wg.barrier(t)
	for _, f := range wg.drain() {
		if f.Type == "message" && f.Message != nil && f.Message.ClientID == "a-1" {
			t.Errorf("Grace, no longer a member, received %s", f)
		}
	}
}
