package web_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
)

type wireConversation struct {
	ID           int64        `json:"id"`
	Kind         string       `json:"kind"`
	Name         string       `json:"name"`
	Peer         *wireUser    `json:"peer"`
	CreatedAt    time.Time    `json:"created_at"`
	LastSeq      int64        `json:"last_seq"`
	ReadSeq      int64        `json:"read_seq"`
	Unread       int64        `json:"unread"`
	LastMessage  *wireMessage `json:"last_message"`
	LastActiveAt time.Time    `json:"last_active_at"`
	Members      int          `json:"members"`
}

// befriend makes a and b friends through the REST contact endpoints.
func (ts *testServer) befriend(tb testing.TB, a, b *client) {
	tb.Helper()
	ts.requestFriend(tb, a, b.ID)
	ts.mustDo(tb, b, "POST", "/api/contacts/"+strconv.FormatInt(a.ID, 10)+"/accept", nil, http.StatusOK, nil)
}

// sendDirect sends body from c to user id by user id.
func (ts *testServer) sendDirect(tb testing.TB, c *client, to int64, clientID, body string) (wireMessage, wireConversation) {
	tb.Helper()
	var out struct {
		Message      wireMessage      `json:"message"`
		Conversation wireConversation `json:"conversation"`
	}
	ts.mustDo(tb, c, "POST", "/api/direct/"+strconv.FormatInt(to, 10)+"/messages",
		map[string]string{"client_id": clientID, "body": body}, http.StatusOK, &out)
	return out.Message, out.Conversation
}

func (ts *testServer) conversations(tb testing.TB, c *client) []wireConversation {
	tb.Helper()
	var out struct {
		Conversations []wireConversation `json:"conversations"`
	}
	ts.mustDo(tb, c, "GET", "/api/conversations", nil, http.StatusOK, &out)
	if out.Conversations == nil {
		tb.Fatalf("GET /api/conversations: conversations is null; want a list")
	}
	return out.Conversations
}

// conversation returns c's list entry of conversation id.
func (ts *testServer) conversation(tb testing.TB, c *client, id int64) wireConversation {
	tb.Helper()
	for _, cv := range ts.conversations(tb, c) {
		if cv.ID == id {
			return cv
		}
	}
	tb.Fatalf("%s: conversation %d not in GET /api/conversations", c.Name, id)
	return wireConversation{}
}

func (ts *testServer) markRead(tb testing.TB, c *client, id, seq int64) (readSeq, unread int64) {
	tb.Helper()
	var out struct {
		RoomID  int64 `json:"room_id"`
		ReadSeq int64 `json:"read_seq"`
		Unread  int64 `json:"unread"`
	}
	ts.mustDo(tb, c, "POST", "/api/conversations/"+strconv.FormatInt(id, 10)+"/read", map[string]int64{"seq": seq}, http.StatusOK, &out)
	if out.RoomID != id {
		tb.Errorf("mark read %d: room_id = %d", id, out.RoomID)
	}
	return out.ReadSeq, out.Unread
}

func (w *wsClient) expectRead(tb testing.TB, id, seq int64) {
	tb.Helper()
	w.take(tb, "read "+strconv.FormatInt(id, 10), func(f frame) bool {
		return f.Type == "read" && f.RoomID == id && f.Seq == seq
	})
}

func TestDirectConversation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	ts := newTestServer(t, withDB(path))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	eve := ts.signIn(t, "eve@example.com", "Eve")

	// Not friends yet: no conversation, and no sending.
	wantError(t, "send to a stranger", ts.do(t, ada, "POST", "/api/direct/"+strconv.FormatInt(grace.ID, 10)+"/messages",
		map[string]string{"client_id": "c0", "body": "hi"}), http.StatusForbidden, "not_friends")
	wantError(t, "GET direct before any message", ts.do(t, ada, "GET", "/api/direct/"+strconv.FormatInt(grace.ID, 10), nil),
		http.StatusNotFound, "not_found")

	ts.befriend(t, ada, grace)
	g1 := ts.connect(t, grace)
	g2 := ts.connect(t, grace) // a second device
	aws := ts.connect(t, ada)

	m1, conv := ts.sendDirect(t, ada, grace.ID, "c1", "hello Grace")
	id := conv.ID
	if m1.Seq != 1 || m1.RoomID != id || conv.Kind != "direct" || conv.Peer == nil || *conv.Peer != ref(grace) || conv.Unread != 0 || conv.ReadSeq != 1 {
		t.Fatalf("first direct message = %+v in %+v; want seq 1 in a new direct conversation with Grace, read", m1, conv)
	}
	// Idempotent: the retry returns the stored message.
	if again, _ := ts.sendDirect(t, ada, grace.ID, "c1", "hello Grace"); again != m1 {
		t.Errorf("retry = %+v; want %+v", again, m1)
	}
	// Grace learns of it live on every device without opening it.
	for _, w := range []*wsClient{g1, g2} {
		f := w.take(t, "conversation event", func(f frame) bool { return f.Type == "conversation" && f.RoomID == id })
		if f.Kind != "direct" || f.Peer == nil || *f.Peer != (wireUser{ID: ada.ID, Name: ada.Name}) || f.Message == nil || *f.Message != m1 {
			t.Errorf("%s: conversation frame = %s; want Ada's message", w.name, f)
		}
	}
	aws.take(t, "own conversation event", func(f frame) bool { return f.Type == "conversation" && f.RoomID == id })

	var got struct {
		Conversation wireConversation `json:"conversation"`
	}
	ts.mustDo(t, grace, "GET", "/api/direct/"+strconv.FormatInt(ada.ID, 10), nil, http.StatusOK, &got)
	if got.Conversation.ID != id || *got.Conversation.Peer != ref(ada) {
		t.Errorf("GET /api/direct/ada = %+v; want conversation %d with Ada", got.Conversation, id)
	}

	gc := ts.conversation(t, grace, id)
	if gc.Unread != 1 || gc.LastSeq != 1 || gc.LastMessage == nil || *gc.LastMessage != m1 || gc.Kind != "direct" || *gc.Peer != ref(ada) {
		t.Errorf("Grace's list entry = %+v; want unread 1 with Ada's message", gc)
	}

	// Ada's own sends never count for Ada.
	m2 := aws.sendMessage(t, id, "c2", "are you there?")
	if m2.Seq != 2 {
		t.Errorf("WS send seq = %d; want 2", m2.Seq)
	}
	if ac := ts.conversation(t, ada, id); ac.Unread != 0 || ac.ReadSeq != 2 {
		t.Errorf("Ada's entry = %+v; want unread 0", ac)
	}
	if gc := ts.conversation(t, grace, id); gc.Unread != 2 {
		t.Errorf("Grace's unread = %d; want 2", gc.Unread)
	}

	// Grace opens it on one device and marks it read there: the other
	// device is told, and the list shows 0.
	opened := g1.open(t, id, nil)
	if opened.Room.Kind != "direct" || opened.Room.LastSeq != 2 {
		t.Errorf("opened = %s; want the direct conversation at seq 2", opened)
	}
	g1.send(t, map[string]any{"type": "read", "room_id": id, "seq": 2, "ref": "r1"})
	g1.take(t, "read reply", func(f frame) bool { return f.Type == "read" && f.Ref == "r1" && f.Seq == 2 })
	g2.expectRead(t, id, 2)
	if gc := ts.conversation(t, grace, id); gc.Unread != 0 || gc.ReadSeq != 2 {
		t.Errorf("after read: Grace's entry = %+v; want unread 0", gc)
	}
	// Never back, and clamped to last_seq.
	if rs, unread := ts.markRead(t, grace, id, 1); rs != 2 || unread != 0 {
		t.Errorf("mark read 1 = %d, %d; want 2, 0", rs, unread)
	}
	if rs, _ := ts.markRead(t, grace, id, 99); rs != 2 {
		t.Errorf("mark read 99 = %d; want 2 (clamped)", rs)
	}
	// A reply from Grace arrives live in Ada's open conversation.
	aws.open(t, id, nil)
	m3 := g1.sendMessage(t, id, "g1", "yes!")
	aws.expectMessage(t, id, m3.Seq)

	// A third user can neither read nor write it, and cannot tell it exists.
	wantError(t, "Eve reads history", ts.do(t, eve, "GET", roomPath(id, "/messages"), nil), http.StatusNotFound, "not_found")
	wantError(t, "Eve reads conversation", ts.do(t, eve, "GET", "/api/conversations/"+strconv.FormatInt(id, 10), nil), http.StatusNotFound, "not_found")
	wantError(t, "Eve sends", ts.do(t, eve, "POST", roomPath(id, "/messages"), map[string]string{"client_id": "e1", "body": "hi"}), http.StatusNotFound, "not_found")
	wantError(t, "Eve marks read", ts.do(t, eve, "POST", "/api/conversations/"+strconv.FormatInt(id, 10)+"/read", map[string]int64{"seq": 1}), http.StatusNotFound, "not_found")
	ews := ts.connect(t, eve)
	for _, req := range []map[string]any{
		{"type": "open", "room_id": id, "ref": "o"},
		{"type": "sync", "room_id": id, "after": 0, "ref": "s"},
		{"type": "send", "room_id": id, "client_id": "e2", "body": "hi", "ref": "w"},
		{"type": "read", "room_id": id, "seq": 1, "ref": "r"},
	} {
		ews.send(t, req)
		if f := ews.expectError(t, req["ref"].(string)); f.Code != "not_found" {
			t.Errorf("Eve %s: %s; want not_found", req["type"], f)
		}
	}
	if cs := ts.conversations(t, eve); len(cs) != 0 {
		t.Errorf("Eve's conversations = %+v; want none", cs)
	}
	ews.barrier(t)
	for _, f := range ews.drain() {
		if f.Type == "message" || f.Type == "conversation" {
			t.Errorf("Eve received %s", f)
		}
	}

	// Messages while Grace is offline count as unread at her next sign-in.
	g1.conn.Close()
	g2.conn.Close()
	ts.sendDirect(t, ada, grace.ID, "c4", "one")
	ts.sendDirect(t, ada, grace.ID, "c5", "two")
	grace2 := ts.signIn(t, "grace@example.com", "Grace")
	if gc := ts.conversation(t, grace2, id); gc.Unread != 2 || gc.LastSeq != 5 || gc.LastMessage.Body != "two" {
		t.Errorf("after sign-in: Grace's entry = %+v; want 2 unread up to seq 5", gc)
	}
	// Room activity also lists, and the most recent comes first.
	room := ts.enterRoom(t, grace2, "general")
	cs := ts.conversations(t, grace2)
	if len(cs) != 2 || cs[0].ID != room.ID || cs[0].Kind != "room" || cs[0].Name != "general" || cs[0].Unread != 0 || cs[1].ID != id {
		t.Errorf("Grace's list = %+v; want general (own join, read) then the direct conversation", cs)
	}

	// Unfriended: Ada can no longer send, but both still read the history.
	ts.mustDo(t, grace2, "DELETE", "/api/contacts/"+strconv.FormatInt(ada.ID, 10), nil, http.StatusNoContent, nil)
	wantError(t, "send after unfriend", ts.do(t, ada, "POST", roomPath(id, "/messages"), map[string]string{"client_id": "c6", "body": "hey"}),
		http.StatusForbidden, "not_friends")
	wantError(t, "send by user id after unfriend", ts.do(t, ada, "POST", "/api/direct/"+strconv.FormatInt(grace.ID, 10)+"/messages",
		map[string]string{"client_id": "c7", "body": "hey"}), http.StatusForbidden, "not_friends")
	if ms := ts.allMessages(t, ada, id); len(ms) != 5 {
		t.Errorf("Ada's history after unfriend: %d messages; want 5", len(ms))
	}

	// Counts survive a restart.
	before := ts.conversations(t, grace2)
	ts.stop()
	ts2 := newTestServer(t, withDB(path))
	grace3 := ts2.signIn(t, "grace@example.com", "Grace")
	if diff := cmp.Diff(before, ts2.conversations(t, grace3)); diff != "" {
		t.Errorf("list after restart mismatch (-before +after):\n%s", diff)
	}
}

// TestLastMessageNamesTarget: a group event carries target_name wherever
// it is a Message (docs/protocol.md), the last_message of the
// conversation list and of a group's opened reply included, so that a
// member who never met the target reads "Ada added Bob".
func TestLastMessageNamesTarget(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	g := ts.createGroup(t, ada, "Crew", 0)
	ts.addMember(t, ada, g.ID, bob)

	for _, c := range []*client{ada, bob} {
		lm := ts.conversation(t, c, g.ID).LastMessage
		if lm == nil || lm.Kind != "added" || lm.TargetID != bob.ID || lm.TargetName != "Bob" {
			t.Errorf("%s: last_message of the group in GET /api/conversations = %+v; want added with target_name Bob", c.Name, lm)
		}
		var out struct {
			Conversation wireConversation `json:"conversation"`
		}
		ts.mustDo(t, c, "GET", "/api/conversations/"+strconv.FormatInt(g.ID, 10), nil, http.StatusOK, &out)
		if lm := out.Conversation.LastMessage; lm == nil || lm.TargetName != "Bob" {
			t.Errorf("%s: last_message in GET /api/conversations/{id} = %+v; want target_name Bob", c.Name, lm)
		}
	}
	w := ts.connect(t, bob)
	if lm := w.open(t, g.ID, nil).Room.LastMessage; lm == nil || lm.TargetName != "Bob" {
		t.Errorf("last_message in opened = %+v; want target_name Bob", lm)
	}
}

// TestAddedNamesTarget: the added event that reaches the new member as a
// conversation frame, the first entry of the group in their list, and
// the one the adder gets back, carry target_name as every other copy of
// it does.
func TestAddedNamesTarget(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	g := ts.createGroup(t, ada, "Crew", 0)
	wb := ts.connect(t, bob)
	if m := ts.addMember(t, ada, g.ID, bob); m.Kind != "added" || m.TargetName != "Bob" {
		t.Errorf("POST members = %+v; want added with target_name Bob", m)
	}
	f := wb.take(t, "conversation", func(f frame) bool { return f.Type == "conversation" && f.RoomID == g.ID })
	if f.Message == nil || f.Message.Kind != "added" || f.Message.TargetName != "Bob" {
		t.Errorf("conversation frame = %s; want the added event with target_name Bob", f)
	}
}

// holdRead is a broker that holds the publish of the read event of seq
// low back until that of seq high has been published (or a while has
// passed): two moves of one user's position, by two tabs, whose publishes
// are overtaken one by the other.
type holdRead struct {
	chat.Broker
	low, high int64
	published chan struct{} // closed once the read of high is published
}

func (b *holdRead) Publish(ctx context.Context, t chat.Topic, ev chat.Event) error {
	if ev.Type == chat.EventRead && ev.Seq == b.low {
		select {
		case <-b.published:
		case <-time.After(waitTimeout):
		}
	}
	err := b.Broker.Publish(ctx, t, ev)
	if ev.Type == chat.EventRead && ev.Seq == b.high {
		close(b.published)
	}
	return err
}

// TestReadFramesOnlyForward: a read frame says the user's read position
// "is now seq", and a client sets its badge to last_seq - seq. When two
// moves of one position (two tabs) are published out of order, a
// connection must not be told last of the older, lower one: it would
// show messages read as unread again.
func TestReadFramesOnlyForward(t *testing.T) {
	br := &holdRead{low: 5, high: 7, published: make(chan struct{})}
	ts := newTestServer(t, withBroker(func(b chat.Broker) chat.Broker { br.Broker = b; return br }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general") // seq 2
	for i := 3; i <= 8; i++ {
		ts.post(t, grace, room.ID, "g-"+strconv.Itoa(i), "hello")
	}
	w := ts.connect(t, ada)

	done := make(chan struct{})
	go func() {
		defer close(done)
		if r := ts.do(t, ada, "POST", "/api/conversations/"+strconv.FormatInt(room.ID, 10)+"/read", map[string]int64{"seq": 5}); r.Status != http.StatusOK {
			t.Errorf("read 5 = %s", r)
		}
	}()
	// The first move is stored before the second is asked for.
	deadline := time.Now().Add(waitTimeout)
	for ts.conversation(t, ada, room.ID).ReadSeq != 5 {
		if time.Now().After(deadline) {
			t.Fatal("read position not at 5")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ts.markRead(t, ada, room.ID, 7)
	<-done
	w.expectRead(t, room.ID, 7)
	w.barrier(t)
	for _, f := range w.drain() {
		if f.Type == "read" && f.RoomID == room.ID && f.Seq < 7 {
			t.Errorf("after read 7: %s; want no read frame going back", f)
		}
	}
}

// TestNoOwnReceipt: a receipt is another member's read position
// (docs/protocol.md, "receipt"); the reader's own connections learn of
// their own move from the read frame, and get no receipt of it, which a
// client taking every receipt of a direct chat for the peer's would show
// as "Read".
func TestNoOwnReceipt(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	ts.befriend(t, ada, grace)
	_, dm := ts.sendDirect(t, grace, ada.ID, "g-1", "hello")
	wa, wg := ts.connect(t, ada), ts.connect(t, grace)
	wa.open(t, dm.ID, nil)
	wg.open(t, dm.ID, nil)

	wa.send(t, map[string]any{"type": "read", "room_id": dm.ID, "seq": 1})
	wa.expectRead(t, dm.ID, 1)
	wg.take(t, "Ada's receipt", func(f frame) bool { return f.Type == "receipt" && f.UserID == ada.ID && f.Seq == 1 })
	wa.barrier(t) // Ada's copy, published with Grace's, is here by now
	for _, f := range wa.drain() {
		if f.Type == "receipt" || f.Type == "receipts" {
			t.Errorf("Ada got a receipt of her own read: %s", f)
		}
	}
}

// TestConversationOfRoomNotJoined: a room is shown to anyone, and one the
// user is not in has nothing unread for them: it counted every message
// of the room as unread (its last_seq), with no read position to count
// from.
func TestConversationOfRoomNotJoined(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	for i := range 3 {
		ts.post(t, ada, room.ID, fmt.Sprint("a", i), "hello")
	}
	var got struct {
		Conversation wireConversation `json:"conversation"`
	}
	ts.mustDo(t, grace, "GET", "/api/conversations/"+strconv.FormatInt(room.ID, 10), nil, http.StatusOK, &got)
	if c := got.Conversation; c.Unread != 0 || c.ReadSeq != c.LastSeq || c.LastSeq == 0 {
		t.Errorf("a room Grace is not in, as she sees it: last_seq %d, read_seq %d, unread %d; want nothing unread", c.LastSeq, c.ReadSeq, c.Unread)
	}
}
