package web_test

import (
	"net/http"
	"strconv"
	"testing"
)

func TestTyping(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	eve := ts.signIn(t, "eve@example.com", "Eve")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")
	wa, wg := ts.connect(t, ada), ts.connect(t, grace)
	wa.open(t, room.ID, nil)
	wg.open(t, room.ID, nil)
	wa.expectPresence(t, room.ID, grace, true)

	wa.send(t, map[string]any{"type": "typing", "room_id": room.ID})
	f := wg.expect(t, "typing")
	if f.RoomID != room.ID || f.User == nil || f.User.ID != ada.ID || f.User.Name != "Ada" {
		t.Errorf("Grace got %s; want Ada typing in room %d", f, room.ID)
	}
	// A second one within the interval is not forwarded; the typist never
	// hears of their own typing.
	wa.send(t, map[string]any{"type": "typing", "room_id": room.ID})
	wa.barrier(t)
	wg.barrier(t)
	for _, c := range []*wsClient{wa, wg} {
		for _, f := range c.drain() {
			if f.Type == "typing" {
				t.Errorf("%s got an unexpected %s", c.name, f)
			}
		}
	}
	// Nothing is stored.
	if ms := ts.allMessages(t, ada, room.ID); len(ms) != 2 {
		t.Errorf("room holds %d messages; want the 2 joins only", len(ms))
	}
	// A non-member may not type there.
	we := ts.connect(t, eve)
	we.send(t, map[string]any{"type": "typing", "room_id": room.ID, "ref": "t1"})
	if e := we.expectError(t, "t1"); e.Code != "not_member" {
		t.Errorf("non-member typing: error %s; want not_member", e)
	}
}

// TestBlockedTyping: after Ada blocks Mallory, Mallory can no longer
// message Ada, nor show Ada that they are typing: typing in a direct
// conversation is refused as a send is.
func TestBlockedTyping(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	mallory := ts.signIn(t, "mallory@example.com", "Mallory")
	ts.befriend(t, ada, mallory)
	_, conv := ts.sendDirect(t, mallory, ada.ID, "m1", "hi")
	ts.mustDo(t, ada, "POST", "/api/blocks", map[string]int64{"user_id": mallory.ID}, http.StatusNoContent, nil)
	wantError(t, "Mallory messages Ada after the block", ts.do(t, mallory, "POST", "/api/direct/"+strconv.FormatInt(ada.ID, 10)+"/messages",
		map[string]string{"client_id": "m2", "body": "hi again"}), http.StatusForbidden, "not_friends")

	aws := ts.connect(t, ada)
	aws.open(t, conv.ID, nil)
	mws := ts.connect(t, mallory)
	mws.open(t, conv.ID, nil)
	mws.send(t, map[string]any{"type": "typing", "room_id": conv.ID, "ref": "t"})
	mws.barrier(t) // answered after the typing frame
	aws.barrier(t) // and anything published for Ada is queued by now
	for _, f := range aws.drain() {
		if f.Type == "typing" {
			t.Errorf("Ada, who blocked Mallory, received from Mallory: %s", f)
		}
	}
	refused := false
	for _, f := range mws.drain() {
		refused = refused || (f.Type == "error" && f.Ref == "t" && f.Code == "not_friends")
	}
	if !refused {
		t.Errorf("Mallory's typing after the block was accepted; want not_friends, as a send")
	}
}

// TestGroupEphemeralWhereOpen: a connection receives the messages of every
// group its user belongs to, opened or not, but typing and presence only
// of the conversations it has open (docs/protocol.md, "Server → client"),
// over WebSocket and long-polling alike.
func TestGroupEphemeralWhereOpen(t *testing.T) {
	for _, transport := range []string{"ws", "poll"} {
		t.Run(transport, func(t *testing.T) {
			ts := newTestServer(t, withWeb(fastPoll))
			ada := ts.signIn(t, "ada@example.com", "Ada")
			grace := ts.signIn(t, "grace@example.com", "Grace")
			g := ts.createGroup(t, ada, "crew", 0)
			ts.addMember(t, ada, g.ID, grace)
			wa := ts.connect(t, ada)
			var wg *wsClient
			if transport == "poll" {
				wg = ts.connectPoll(t, grace, "")
			} else {
				wg = ts.connect(t, grace)
			}

			// Grace has the group in her list, not open: Ada's arrival and
			// typing are not hers to show; the message is.
			wa.open(t, g.ID, nil)
			wa.send(t, map[string]any{"type": "typing", "room_id": g.ID})
			m := wa.sendMessage(t, g.ID, "a-1", "hello")
			wg.expectMessage(t, g.ID, m.Seq)
			for _, f := range wg.drain() {
				if f.Type == "typing" || f.Type == "presence" || f.Type == "online_count" {
					t.Errorf("%s, without the group open, got %s", wg.name, f)
				}
			}

			// Once she opens it, she gets them.
			wg.open(t, g.ID, nil)
			wa.send(t, map[string]any{"type": "typing", "room_id": g.ID})
			if f := wg.expect(t, "typing"); f.RoomID != g.ID || f.User == nil || f.User.ID != ada.ID {
				t.Errorf("%s got %s; want Ada typing in group %d", wg.name, f, g.ID)
			}
			wa.send(t, map[string]any{"type": "close", "room_id": g.ID})
			wg.expectPresence(t, g.ID, ada, false)
		})
	}
}

// TestTypingLimitManyConversations: a connection forwards at most one
// typing per conversation every 2 seconds however many conversations it
// types in: typing in many others in between does not make the first's
// news again.
func TestTypingLimitManyConversations(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")
	others := make([]int64, 70)
	for i := range others {
		others[i] = ts.enterRoom(t, ada, "room"+strconv.Itoa(i)).ID
	}
	wa, wg := ts.connect(t, ada), ts.connect(t, grace)
	wg.open(t, room.ID, nil)

	wa.send(t, map[string]any{"type": "typing", "room_id": room.ID})
	wg.expect(t, "typing")
	for _, id := range others {
		wa.send(t, map[string]any{"type": "typing", "room_id": id})
	}
	wa.send(t, map[string]any{"type": "typing", "room_id": room.ID})
	wa.barrier(t)
	wg.barrier(t)
	for _, f := range wg.drain() {
		if f.Type == "typing" {
			t.Errorf("Grace got a second typing of Ada's within the interval: %s", f)
		}
	}
}
