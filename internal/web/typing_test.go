package web_test

import (
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
