package web_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/testenv"
)

// TestPresenceTabs: Grace has three tabs (two WebSocket, one long-poll);
// her friend Ada sees her online once, still online as the first two
// close, offline with a last-seen time after the last one (and the grace
// period), and online again when she returns. The contact list agrees.
func TestPresenceTabs(t *testing.T) {
	const grace = 300 * time.Millisecond
	ts := newTestServer(t, withWeb(fastPoll), withChat(func(c *chat.Config) { c.PresenceGrace = grace }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	gr := ts.signIn(t, "grace@example.com", "Grace")
	ts.befriend(t, ada, gr)
	aw := ts.connect(t, ada)

	isOnline := func(want bool) wireContact {
		t.Helper()
		cs := ts.contacts(t, ada).Contacts
		if len(cs) != 1 || cs[0].Online == nil || *cs[0].Online != want {
			t.Fatalf("Ada's contacts = %+v; want Grace online=%v", cs, want)
		}
		return cs[0]
	}
	presence := func(online bool) frame {
		t.Helper()
		return aw.take(t, "presence of Grace", func(f frame) bool {
			return f.Type == "presence" && f.RoomID == 0 && f.User != nil && f.User.ID == gr.ID && f.Online == online
		})
	}
	noPresence := func() {
		t.Helper()
		aw.barrier(t)
		for _, f := range aw.drain() {
			if f.Type == "presence" {
				t.Errorf("unexpected presence frame %s", f)
			}
		}
	}

	isOnline(false)
	tab1 := ts.connect(t, gr)
	presence(true)
	tab2 := ts.connect(t, gr)
	tab3 := ts.connectPoll(t, gr, "")
	isOnline(true)

	_ = tab1.conn.Close()
	tab3.leave()
	ts.mustDo(t, gr, "DELETE", "/api/poll?cursor="+url.QueryEscape(tab3.poll.getCursor()), nil, http.StatusNoContent, nil)
	time.Sleep(2 * grace)
	noPresence()
	isOnline(true)

	// A reload of the last tab within the grace period: no news.
	_ = tab2.conn.Close()
	tab4 := ts.connect(t, gr)
	time.Sleep(2 * grace)
	noPresence()

	_ = tab4.conn.Close()
	off := presence(false)
	if off.LastSeen.IsZero() {
		t.Errorf("offline presence %s has no last_seen", off)
	}
	c := isOnline(false)
	if !c.LastSeen.Equal(off.LastSeen) {
		t.Errorf("contact last_seen %v; want %v as in the frame", c.LastSeen, off.LastSeen)
	}
	ts.connect(t, gr)
	presence(true)
}

// TestLargeRoomOnline: past chat.Config.OnlineMax present, "opened" and the
// online list name OnlineMax of them with the full count, and arrivals
// reach the others as a count, not one presence frame each.
func TestLargeRoomOnline(t *testing.T) {
	ts := newTestServer(t, withChat(func(c *chat.Config) {
		c.OnlineMax = 2
		c.OnlineCountEvery = 50 * time.Millisecond
	}))
	var cs []*client
	for _, name := range []string{"Ada", "Bo", "Cy"} {
		cs = append(cs, ts.signIn(t, strings.ToLower(name)+"@example.com", name))
	}
	room := ts.enterRoom(t, cs[0], "big")
	for _, c := range cs[1:] {
		ts.enterRoom(t, c, "big")
	}
	wa := ts.connect(t, cs[0])
	wa.open(t, room.ID, nil)
	wb := ts.connect(t, cs[1])
	if op := wb.open(t, room.ID, nil); len(op.OnlineUsers) != 2 || op.OnlineCount != 2 {
		t.Errorf("Bo's opened = %s; want both present, counted 2", op)
	}
	p := wa.take(t, "Bo's presence", func(f frame) bool { return f.Type == "presence" })
	if p.User == nil || p.User.ID != cs[1].ID || !p.Online || p.OnlineCount != 2 {
		t.Errorf("presence = %s; want Bo online, 2 present", p)
	}

	wc := ts.connect(t, cs[2])
	if op := wc.open(t, room.ID, nil); len(op.OnlineUsers) != 2 || op.OnlineCount != 3 ||
		!slices.ContainsFunc(op.OnlineUsers, func(u wireUser) bool { return u.ID == cs[2].ID }) {
		t.Errorf("Cy's opened = %s; want 2 of those present, Cy among them, counted 3", op)
	}
	for _, w := range []*wsClient{wa, wb} {
		f := w.take(t, "the count", func(f frame) bool { return f.Type == "online_count" || f.Type == "presence" })
		if f.Type != "online_count" || f.RoomID != room.ID || f.OnlineCount != 3 {
			t.Errorf("%s got %s; want the count of room %d, 3", w.name, f, room.ID)
		}
	}
	var online struct {
		Users []wireUser `json:"users"`
		Count int        `json:"count"`
	}
	ts.mustDo(t, cs[0], "GET", roomPath(room.ID, "/online"), nil, http.StatusOK, &online)
	if len(online.Users) != 2 || online.Count != 3 {
		t.Errorf("GET online = %+v; want 2 users, count 3", online)
	}
}

// userGateStore holds the next read of user id, once armed: entered is
// closed as it starts, and it goes on when open is closed.
type userGateStore struct {
	chat.Store
	holdOnce
}

func (s *userGateStore) User(ctx context.Context, id int64) (chat.User, error) {
	defer s.hold(id, true)()
	return s.Store.User(ctx, id)
}

// holdOnce holds one call, once armed for an id: entered is closed as it
// starts, it goes on when open is closed, and done is closed once it has
// returned.
type holdOnce struct {
	mu      sync.Mutex
	id      int64
	entered chan struct{}
	open    chan struct{}
	done    chan struct{}
}

func (h *holdOnce) arm(id int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.id = id
	h.entered, h.open, h.done = make(chan struct{}), make(chan struct{}), make(chan struct{})
}

// hold holds the caller, a call for id, if h is armed for id and match
// holds: it closes entered and waits until open is closed. It returns
// what the caller defers: closing done once held.
func (h *holdOnce) hold(id int64, match bool) (release func()) {
	h.mu.Lock()
	held := match && h.id != 0 && h.id == id
	entered, open, done := h.entered, h.open, h.done
	if held {
		h.id = 0
	}
	h.mu.Unlock()
	if !held {
		return func() {}
	}
	close(entered)
	<-open
	return func() { close(done) }
}

// TestPresenceOtherDeviceAtGraceEnd: Grace's phone goes away, and as its
// grace period ends, with the offline news on its way, her laptop
// connects. Her friend Ada is told she is online, and then no stale
// offline: Grace has a connection, and Ada would show her offline until
// she next went offline and online again.
func TestPresenceOtherDeviceAtGraceEnd(t *testing.T) {
	const grace = 100 * time.Millisecond
	gate := &userGateStore{}
	ts := newTestServer(t, withStore(func(s chat.Store) chat.Store { gate.Store = s; return gate }),
		withChat(func(c *chat.Config) { c.PresenceGrace = grace }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	gr := ts.signIn(t, "grace@example.com", "Grace")
	laptop := ts.signIn(t, "grace@example.com", "Grace")
	ts.befriend(t, ada, gr)
	aw := ts.connect(t, ada)
	presence := func(online bool) frame {
		t.Helper()
		return aw.take(t, "presence of Grace", func(f frame) bool {
			return f.Type == "presence" && f.RoomID == 0 && f.User != nil && f.User.ID == gr.ID && f.Online == online
		})
	}

	phone := ts.connect(t, gr)
	presence(true)
	gate.arm(gr.ID)
	_ = phone.conn.Close()
	select { // the phone counted out, the offline news being made
	case <-gate.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Grace's phone was not counted out")
	}
	ts.connect(t, laptop)
	presence(true)
	close(gate.open)
	<-gate.done
	time.Sleep(4 * grace) // the offline news, if it goes, reaches Ada
	aw.barrier(t)
	for _, f := range aw.drain() {
		if f.Type == "presence" && f.User != nil && f.User.ID == gr.ID && !f.Online {
			t.Errorf("Ada got %s after Grace's laptop connected; want her online", f)
		}
	}
	if cs := ts.contacts(t, ada).Contacts; len(cs) != 1 || cs[0].Online == nil || !*cs[0].Online {
		t.Errorf("Ada's contacts = %+v; want Grace online", cs)
	}
}

// contactsGateStore holds the next read of the contacts of user id, once
// armed, as userGateStore holds a read of the user.
type contactsGateStore struct {
	chat.Store
	mu      sync.Mutex
	id      int64
	entered chan struct{}
	open    chan struct{}
}

func (s *contactsGateStore) arm(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id = id
	s.entered, s.open = make(chan struct{}), make(chan struct{})
}

func (s *contactsGateStore) Contacts(ctx context.Context, id int64) ([]chat.Contact, error) {
	s.mu.Lock()
	hold := s.id != 0 && s.id == id
	entered, open := s.entered, s.open
	if hold {
		s.id = 0
	}
	s.mu.Unlock()
	if hold {
		close(entered)
		<-open
	}
	return s.Store.Contacts(ctx, id)
}

// TestClusterPresenceCrossingNews: three nodes share PostgreSQL and Redis.
// Grace's phone, on node A, is counted out, and A has read that she is
// offline everywhere and is about to tell her friends; then her laptop
// connects on node B, which tells them she is online. A's offline news
// reaches Redis last. Her friend Ada, on node C, must not be left showing
// her offline while her laptop is connected.
func TestClusterPresenceCrossingNews(t *testing.T) {
	a, b, c, gate, told := crossingCluster(t)

	ada := a.signIn(t, "ada@example.com", "Ada")
	gr := a.signIn(t, "grace@example.com", "Grace")
	laptop := a.signIn(t, "grace@example.com", "Grace")
	a.befriend(t, ada, gr)
	aw := c.connect(t, ada)
	presence := func(online bool) frame {
		t.Helper()
		return aw.take(t, "presence of Grace", func(f frame) bool {
			return f.Type == "presence" && f.RoomID == 0 && f.User != nil && f.User.ID == gr.ID && f.Online == online
		})
	}

	phone := a.connect(t, gr)
	presence(true)
	gate.arm(gr.ID)
	_ = phone.conn.Close()
	select { // A counted the phone out, read her offline, and lists her friends
	case <-gate.entered:
	case <-time.After(waitTimeout):
		t.Fatal("Grace's phone was not counted out")
	}
	b.connect(t, laptop)
	presence(true)
	close(gate.open)

	wantOnlineAfterTold(t, told, a, c, gr, gr.ID, ada, aw, "Grace's laptop connected")
}

// crossingCluster is three nodes on one PostgreSQL schema and one Redis:
// on node A, gate can hold the read of a user's friends, and told tells
// when a friend's offline news was published.
func crossingCluster(t *testing.T) (a, b, c *testServer, gate *contactsGateStore, told *offlineBroker) {
	t.Helper()
	pg := testenv.PostgresSchema(t)
	url, prefix, _ := testenv.Redis(t)
	gate = &contactsGateStore{}
	told = &offlineBroker{told: make(chan struct{})}
	graceIs := withChat(func(c *chat.Config) { c.PresenceGrace = 100 * time.Millisecond })
	a = newTestServer(t, onCluster(pg, url, prefix, "a"), graceIs,
		withStore(func(s chat.Store) chat.Store { gate.Store = s; return gate }),
		withBroker(func(b chat.Broker) chat.Broker { told.Broker = b; return told }))
	b = newTestServer(t, onCluster(pg, url, prefix, "b"), graceIs)
	c = newTestServer(t, onCluster(pg, url, prefix, "c"), graceIs)
	return a, b, c, gate, told
}

// wantOnlineAfterTold waits until node a published Grace's (user
// graceID's) offline news (told), then for a rename of hers that a
// publishes after it (as by, a session of hers there) to reach Ada's
// connection aw on node c; by then Ada must have got no offline news of
// Grace, and her contacts must show her online, as after says.
func wantOnlineAfterTold(t *testing.T, told *offlineBroker, a, c *testServer, by *client, graceID int64, ada *client, aw *wsClient, after string) {
	t.Helper()
	// A published its news; a rename of Grace's that A publishes after it
	// reaches Ada after it too.
	select {
	case <-told.told:
	case <-time.After(waitTimeout):
		t.Fatal("node A did not tell Ada that Grace went offline")
	}
	a.mustDo(t, by, "PATCH", "/api/me", map[string]string{"name": "Grace H"}, http.StatusOK, nil)
	aw.find(t, "Grace's rename", func(f frame) bool {
		return f.Type == "user" && f.User != nil && f.User.ID == graceID && f.User.Name == "Grace H"
	}, false)
	for _, f := range aw.drain() {
		if f.Type == "presence" && f.RoomID == 0 && f.User != nil && f.User.ID == graceID && !f.Online {
			t.Errorf("Ada got %s after %s; want her online", f, after)
		}
	}
	if cs := c.contacts(t, ada).Contacts; len(cs) != 1 || cs[0].Online == nil || !*cs[0].Online {
		t.Errorf("Ada's contacts = %+v; want Grace online", cs)
	}
}

// offlineBroker closes told once a publish of a friend's offline presence
// has returned.
type offlineBroker struct {
	chat.Broker
	once sync.Once
	told chan struct{}
}

func (b *offlineBroker) Publish(ctx context.Context, t chat.Topic, ev chat.Event) error {
	err := b.Broker.Publish(ctx, t, ev)
	if ev.Type == chat.EventPresence && ev.ConvID == chat.Everywhere && !ev.Online {
		b.once.Do(func() { close(b.told) })
	}
	return err
}

// goneBroker holds, once armed, the publish of user id's news of going
// offline or leaving a room: entered is closed as it starts, it goes on
// when open is closed, and done is closed once it has returned.
type goneBroker struct {
	chat.Broker
	holdOnce
}

func (b *goneBroker) Publish(ctx context.Context, t chat.Topic, ev chat.Event) error {
	if ev.User != nil {
		defer b.hold(ev.User.ID, ev.Type == chat.EventPresence && !ev.Online)()
	}
	return b.Broker.Publish(ctx, t, ev)
}

// goneCluster starts three nodes, A, B and C, on one PostgreSQL schema
// and Redis prefix, with opts, A's broker behind gate, and signs in Ada,
// and Grace twice (her phone, her laptop), on A.
func goneCluster(t *testing.T, opts ...option) (a, b, c *testServer, gate *goneBroker, ada, gr, laptop *client) {
	t.Helper()
	pg := testenv.PostgresSchema(t)
	url, prefix, _ := testenv.Redis(t)
	gate = &goneBroker{}
	a = newTestServer(t, append([]option{onCluster(pg, url, prefix, "a"),
		withBroker(func(b chat.Broker) chat.Broker { gate.Broker = b; return gate })}, opts...)...)
	b = newTestServer(t, append([]option{onCluster(pg, url, prefix, "b")}, opts...)...)
	c = newTestServer(t, append([]option{onCluster(pg, url, prefix, "c")}, opts...)...)
	return a, b, c, gate, a.signIn(t, "ada@example.com", "Ada"), a.signIn(t, "grace@example.com", "Grace"), a.signIn(t, "grace@example.com", "Grace")
}

// closeHeld closes room roomID on Grace's (gr) phone, on node A, whose
// news of her leaving the room gate then holds; it returns once A counted
// her out and tells the room.
func closeHeld(t *testing.T, gate *goneBroker, phone *wsClient, gr *client, roomID int64) {
	t.Helper()
	gate.arm(gr.ID)
	phone.send(t, map[string]any{"type": "close", "room_id": roomID})
	select {
	case <-gate.entered:
	case <-time.After(waitTimeout):
		t.Fatal("node A did not tell the room that Grace left")
	}
}

// wantPresentAfterGone lets node A publish the news of Grace (gr) leaving
// room roomID that gate holds, then has A publish a rename of hers, which
// reaches the room after it: Ada (aw) must by then have got no news of
// Grace absent from it, after what after says.
func wantPresentAfterGone(t *testing.T, a *testServer, gate *goneBroker, gr *client, aw *wsClient, roomID int64, after string) {
	t.Helper()
	close(gate.open)
	<-gate.done
	a.mustDo(t, gr, "PATCH", "/api/me", map[string]string{"name": "Grace H"}, http.StatusOK, nil)
	aw.find(t, "Grace's rename", func(f frame) bool {
		return f.Type == "user" && f.RoomID == roomID && f.User != nil && f.User.ID == gr.ID && f.User.Name == "Grace H"
	}, false)
	for _, f := range aw.drain() {
		if f.Type == "presence" && f.RoomID == roomID && f.User != nil && f.User.ID == gr.ID && !f.Online {
			t.Errorf("Ada got %s after %s; want her present", f, after)
		}
	}
}

// TestClusterRoomPresenceCrossingNews: three nodes share PostgreSQL and
// Redis. Grace closes a room on node A, which counts her out of it and is
// about to tell the room; then her laptop opens the room on node B, which
// tells it she is there. A's news reaches Redis last. Ada, with the room
// open on node C, must not be left showing Grace absent while her laptop
// has the room open, with a count that agrees with that list.
func TestClusterRoomPresenceCrossingNews(t *testing.T) {
	a, b, c, gate, ada, gr, laptop := goneCluster(t)
	room := a.enterRoom(t, ada, "lobby")
	a.enterRoom(t, gr, "lobby")
	aw := c.connect(t, ada)
	aw.open(t, room.ID, nil)
	presence := func(online bool) frame {
		t.Helper()
		return aw.take(t, "Grace's presence in the room", func(f frame) bool {
			return f.Type == "presence" && f.RoomID == room.ID && f.User != nil && f.User.ID == gr.ID && f.Online == online
		})
	}

	phone := a.connect(t, gr)
	phone.open(t, room.ID, nil)
	presence(true)
	lw := b.connect(t, laptop)
	closeHeld(t, gate, phone, gr, room.ID)
	lw.open(t, room.ID, nil)
	if f := presence(true); f.OnlineCount != 2 {
		t.Errorf("Ada got %s as Grace's laptop opened the room; want 2 present", f)
	}
	wantPresentAfterGone(t, a, gate, gr, aw, room.ID, "Grace's laptop opened the room")
}

// TestClusterPresenceNewsBeforeFirstConnection: three nodes share
// PostgreSQL and Redis. Grace's phone, on node A, is counted out, and A
// is about to tell her friends; then her laptop connects on node B, which
// tells them she is online while her friend Ada has no connection
// anywhere. Ada's first connection, on node C, loads her contacts (Grace
// online), and only then A's offline news reaches Redis: C must not give
// it to Ada, whose contacts are newer.
func TestClusterPresenceNewsBeforeFirstConnection(t *testing.T) {
	const grace = 100 * time.Millisecond
	a, b, c, gate, ada, gr, laptop := goneCluster(t, withChat(func(c *chat.Config) { c.PresenceGrace = grace }))
	a.befriend(t, ada, gr)

	phone := a.connect(t, gr)
	gate.arm(gr.ID)
	_ = phone.conn.Close()
	select { // A counted the phone out, read her offline, and tells her friends
	case <-gate.entered:
	case <-time.After(waitTimeout):
		t.Fatal("Grace's phone was not counted out")
	}
	b.connect(t, laptop)
	aw := c.connect(t, ada)
	if cs := c.contacts(t, ada).Contacts; len(cs) != 1 || cs[0].Online == nil || !*cs[0].Online {
		t.Fatalf("Ada's contacts = %+v; want Grace online", cs)
	}
	close(gate.open)
	<-gate.done

	// A published its news; a rename of Grace's that A publishes after it
	// reaches Ada after it too.
	a.mustDo(t, gr, "PATCH", "/api/me", map[string]string{"name": "Grace H"}, http.StatusOK, nil)
	aw.find(t, "Grace's rename", func(f frame) bool {
		return f.Type == "user" && f.User != nil && f.User.ID == gr.ID && f.User.Name == "Grace H"
	}, false)
	for _, f := range aw.drain() {
		if f.Type == "presence" && f.RoomID == 0 && f.User != nil && f.User.ID == gr.ID && !f.Online {
			t.Errorf("Ada got %s after her contacts showed Grace online; want her online", f)
		}
	}
}

// TestClusterRoomPresenceNewsBeforeFirstOpen: three nodes share PostgreSQL
// and Redis. Grace closes a room on node A, which counts her out of it and
// is about to tell the room; then her laptop opens the room on node B,
// which tells it she is there while no connection on node C has it open.
// Ada then opens it on C, the first there: "opened" lists Grace. Only then
// A's news reaches Redis: C must not give it to Ada, whose list is newer.
func TestClusterRoomPresenceNewsBeforeFirstOpen(t *testing.T) {
	a, b, c, gate, ada, gr, laptop := goneCluster(t)
	room := a.enterRoom(t, ada, "lobby")
	a.enterRoom(t, gr, "lobby")
	phone := a.connect(t, gr)
	phone.open(t, room.ID, nil)
	lw := b.connect(t, laptop)
	aw := c.connect(t, ada)

	closeHeld(t, gate, phone, gr, room.ID)
	lw.open(t, room.ID, nil)
	op := aw.open(t, room.ID, nil)
	if op.OnlineCount != 2 || !slices.ContainsFunc(op.OnlineUsers, func(u wireUser) bool { return u.ID == gr.ID }) {
		t.Fatalf("Ada's opened = %s; want Grace present, 2 present", op)
	}
	wantPresentAfterGone(t, a, gate, gr, aw, room.ID, "her opened listed Grace")
}

// TestClusterContactNewerThanCrossingNews: three nodes share PostgreSQL
// and Redis. Ada, on node C, asked Grace to be her friend. Grace's phone,
// on node A, is counted out, and A has read that she is offline
// everywhere and is about to list her friends; then her laptop connects
// on node B, which tells her friends (not yet Ada) she is online, and
// Grace accepts Ada's request on B: Ada's contact shows her online. Only
// then A lists Grace's friends, Ada now among them, and tells them she
// went offline, news read before the contact was. Ada must be left
// showing Grace online, as the contact did.
func TestClusterContactNewerThanCrossingNews(t *testing.T) {
	a, b, c, gate, told := crossingCluster(t)

	ada := c.signIn(t, "ada@example.com", "Ada")
	gr := b.signIn(t, "grace@example.com", "Grace")
	phone := a.signIn(t, "grace@example.com", "Grace")
	c.requestFriend(t, ada, gr.ID)
	aw := c.connect(t, ada)

	pw := a.connect(t, phone)
	gate.arm(gr.ID)
	_ = pw.conn.Close()
	select { // A counted the phone out, read her offline, and lists her friends
	case <-gate.entered:
	case <-time.After(waitTimeout):
		t.Fatal("Grace's phone was not counted out")
	}
	b.connect(t, gr)
	b.mustDo(t, gr, "POST", "/api/contacts/"+strconv.FormatInt(ada.ID, 10)+"/accept", nil, http.StatusOK, nil)
	f := aw.take(t, "Grace's contact", func(f frame) bool {
		return f.Type == "contact" && f.User != nil && f.User.ID == gr.ID && f.State == "friends"
	})
	if !strings.Contains(f.Raw, `"online":true`) {
		t.Fatalf("Ada got %s as Grace accepted; want her online", f)
	}
	close(gate.open)

	wantOnlineAfterTold(t, told, a, c, phone, gr.ID, ada, aw, "her contact showed Grace online")
}

// TestContactFilledFromLogAfterNews: Grace accepts Ada's request while
// online, and the publish of Ada's contact is lost (Ada's node never gets
// it); Grace then goes offline, and Ada is told. Ada's next logged event
// (Eve's request) shows the gap: her connection fills the contact in from
// her log, where it shows Grace online, older than the news she was
// given. It must come without a presence, as one delivered after that
// news would, and leave Grace offline.
func TestContactFilledFromLogAfterNews(t *testing.T) {
	const grace = 100 * time.Millisecond
	lose := &loseContactBroker{}
	ts := newTestServer(t, withChat(func(c *chat.Config) { c.PresenceGrace = grace }),
		withBroker(func(b chat.Broker) chat.Broker { lose.Broker = b; return lose }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	gr := ts.signIn(t, "grace@example.com", "Grace")
	eve := ts.signIn(t, "eve@example.com", "Eve")
	ts.requestFriend(t, ada, gr.ID)
	aw := ts.connect(t, ada)
	gw := ts.connect(t, gr)

	lose.arm(ada.ID, gr.ID)
	ts.mustDo(t, gr, "POST", "/api/contacts/"+strconv.FormatInt(ada.ID, 10)+"/accept", nil, http.StatusOK, nil)
	_ = gw.conn.Close()
	aw.take(t, "Grace offline", func(f frame) bool {
		return f.Type == "presence" && f.RoomID == 0 && f.User != nil && f.User.ID == gr.ID && !f.Online
	})
	ts.requestFriend(t, eve, ada.ID)
	aw.find(t, "Eve's request", func(f frame) bool {
		return f.Type == "contact" && f.User != nil && f.User.ID == eve.ID
	}, false)
	var got []string
	for _, f := range aw.drain() {
		if f.Type == "contact" && f.User != nil && f.User.ID == gr.ID {
			got = append(got, f.Raw)
			if strings.Contains(f.Raw, `"online"`) {
				t.Errorf("Ada got %s, filled in from her log, after Grace went offline; want it without online", f)
			}
		}
	}
	if len(got) != 1 {
		t.Errorf("Ada's contact frames of Grace = %q; want the one filled in", got)
	}
}

// loseContactBroker, once armed, drops the publish of owner's contact
// with user, as a broker may lose it.
type loseContactBroker struct {
	chat.Broker
	mu          sync.Mutex
	owner, user int64
}

func (b *loseContactBroker) arm(owner, user int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.owner, b.user = owner, user
}

func (b *loseContactBroker) Publish(ctx context.Context, t chat.Topic, ev chat.Event) error {
	b.mu.Lock()
	lose := b.owner != 0 && t == chat.UserTopic(b.owner) && ev.Type == chat.EventContact && ev.Contact != nil && ev.Contact.User.ID == b.user
	if lose {
		b.owner = 0
	}
	b.mu.Unlock()
	if lose {
		return nil
	}
	return b.Broker.Publish(ctx, t, ev)
}

// TestContactReplayedAfterNews: Grace accepts Ada's request while online,
// then goes offline, and Ada's connection is told both. Ada opens another
// connection with events_after just before the contact, and reads her
// contacts after its hello (Grace offline): the contact replayed from her
// log, whose presence is older than that news, must come without online,
// as one filled into a gap does (TestContactFilledFromLogAfterNews), not
// undo the contacts.
func TestContactReplayedAfterNews(t *testing.T) {
	const grace = 100 * time.Millisecond
	ts := newTestServer(t, withChat(func(c *chat.Config) { c.PresenceGrace = grace }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	gr := ts.signIn(t, "grace@example.com", "Grace")
	ts.requestFriend(t, ada, gr.ID)
	aw := ts.connect(t, ada)
	gw := ts.connect(t, gr)
	ts.mustDo(t, gr, "POST", "/api/contacts/"+strconv.FormatInt(ada.ID, 10)+"/accept", nil, http.StatusOK, nil)
	c := aw.expectContact(t, gr, "friends")
	if !strings.Contains(c.Raw, `"online":true`) {
		t.Fatalf("Ada got %s as Grace accepted; want her online", c)
	}
	_ = gw.conn.Close()
	aw.take(t, "Grace offline", func(f frame) bool {
		return f.Type == "presence" && f.RoomID == 0 && f.User != nil && f.User.ID == gr.ID && !f.Online
	})

	conn, resp, err := ts.dial(t, ada, "/api/ws?events_after="+strconv.FormatInt(c.UserSeq-1, 10), dialOptions{})
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, statusOf(resp))
	}
	w := newWSClient(t, "Ada again", conn)
	w.startReading()
	w.expect(t, "hello")
	f := w.expectContact(t, gr, "friends")
	if strings.Contains(f.Raw, `"online"`) {
		t.Errorf("Ada's new connection got %s, replayed from her log, after Grace went offline; want it without online", f)
	}
}
