package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
)

// sendBytes sends b as one frame, as is: a text message, or a POST.
func (w *wsClient) sendBytes(tb testing.TB, b []byte) {
	tb.Helper()
	if w.poll != nil {
		w.poll.post(tb, w, b)
		return
	}
	w.sendRaw(tb, websocket.TextMessage, b)
}

// waitFor waits until a frame that match accepts is queued, and leaves it
// there.
func (w *wsClient) waitFor(tb testing.TB, what string, match func(frame) bool) {
	tb.Helper()
	w.find(tb, what, match, false)
}

// transcript is what one client received in a scenario, transport aside:
// the answers to its frames, in order, and the events, in order, each
// as JSON without the fields that differ from run to run (times) or by
// transport (a long-poll hello's channel).
type transcript struct {
	Replies []string
	Events  []string
}

// replyTypes are the frames that answer a client's own frames.
var replyTypes = map[string]bool{"pong": true, "opened": true, "closed": true, "sync": true, "ack": true, "error": true}

func normalizeFrame(tb testing.TB, raw string) (string, bool) {
	tb.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		tb.Fatalf("frame %s: %v", raw, err)
	}
	var strip func(any)
	strip = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, e := range x {
				if strings.HasSuffix(k, "_at") || strings.HasSuffix(k, "_by") || k == "last_seen" || k == "since" || k == "channel" {
					delete(x, k)
					continue
				}
				strip(e)
			}
		case []any:
			for _, e := range x {
				strip(e)
			}
		}
	}
	strip(v)
	b, _ := json.Marshal(v)
	_, hasRef := v["ref"]
	typ, _ := v["type"].(string)
	return string(b), hasRef || replyTypes[typ]
}

// TestTransportParity drives the same story over WebSocket and over
// long-polling and compares, frame by frame, what the user on that
// transport received: "the long-polling fallback delivers the same
// events", and answers the same frames the same way.
func TestTransportParity(t *testing.T) {
	results := map[string]transcript{}
	for _, transport := range []string{"ws", "poll"} {
		t.Run(transport, func(t *testing.T) { results[transport] = runParity(t, transport) })
	}
	if t.Failed() {
		return
	}
	if diff := cmp.Diff(results["ws"], results["poll"]); diff != "" {
		t.Errorf("WebSocket and long-poll transcripts differ (-ws +poll):\n%s", diff)
	}
}

func runParity(t *testing.T, transport string) transcript {
	ts := newTestServer(t, withWeb(fastPoll), withChat(func(c *chat.Config) {
		c.PresenceGrace = 50 * time.Millisecond
		c.OnlineMax = 2
	}))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")
	ts.enterRoom(t, bob, "general")
	var (
		aw    *wsClient
		hello frame
	)
	if transport == "poll" {
		aw = ts.connectPoll(t, ada, "")
		hello = aw.hello
	} else {
		aw = ts.connectWith(t, ada, dialOptions{})
		aw.startReading()
		hello = aw.expect(t, "hello")
	}
	var tr transcript
	h, _ := normalizeFrame(t, hello.Raw)
	tr.Events = append(tr.Events, h)
	is := func(typ string) func(frame) bool { return func(f frame) bool { return f.Type == typ } }
	ref := func(r string) func(frame) bool { return func(f frame) bool { return f.Ref == r } }
	step := func(what string, until func(frame) bool) {
		t.Helper()
		aw.waitFor(t, what, until)
	}

	// Friendship.
	ts.requestFriend(t, grace, ada.ID)
	step("friend request", is("contact"))
	ts.mustDo(t, ada, "POST", "/api/contacts/"+strconv.FormatInt(grace.ID, 10)+"/accept", nil, http.StatusOK, nil)
	step("friends", func(f frame) bool { return f.Type == "contact" && f.State == "friends" })

	// Grace comes online: a friend's presence.
	gw := ts.connect(t, grace)
	step("grace online", is("presence"))

	// A room: open, presence, typing, messages, reads.
	aw.send(t, map[string]any{"type": "open", "room_id": room.ID, "ref": "o1"})
	step("opened", ref("o1"))
	gw.open(t, room.ID, nil)
	step("grace in the room", func(f frame) bool { return f.Type == "presence" && f.RoomID == room.ID })
	gw.send(t, map[string]any{"type": "typing", "room_id": room.ID})
	step("typing", is("typing"))
	g1 := gw.sendMessage(t, room.ID, "g1", "hello Ada")
	step("grace's message", func(f frame) bool { return f.Type == "message" && f.Message.Seq == g1.Seq })
	aw.send(t, map[string]any{"type": "send", "room_id": room.ID, "client_id": "a1", "body": "hello Grace", "ref": "s1"})
	step("ack", ref("s1"))
	step("own message", func(f frame) bool { return f.Type == "message" && f.Message.ClientID == "a1" })
	aw.send(t, map[string]any{"type": "send", "room_id": room.ID, "client_id": "a1", "body": "hello Grace"}) // a retry
	step("ack of the retry", func(f frame) bool { return f.Type == "ack" && f.Ref == "" })
	g2 := gw.sendMessage(t, room.ID, "g1b", "are you there?")
	step("grace's second message", func(f frame) bool { return f.Type == "message" && f.Message.Seq == g2.Seq })
	aw.send(t, map[string]any{"type": "read", "room_id": room.ID, "seq": g2.Seq, "ref": "r1"})
	step("read reply", ref("r1"))
	step("read event", func(f frame) bool { return f.Type == "read" && f.Ref == "" })
	g3 := gw.sendMessage(t, room.ID, "g1c", "hello?")
	step("grace's third message", func(f frame) bool { return f.Type == "message" && f.Message.Seq == g3.Seq })
	ts.markRead(t, ada, room.ID, g3.Seq)
	step("read by REST", func(f frame) bool { return f.Type == "read" && f.Ref == "" && f.Seq == g3.Seq })
	aw.send(t, map[string]any{"type": "sync", "room_id": room.ID, "after": 0, "ref": "y1"})
	step("sync", ref("y1"))

	// Errors, answered alike.
	aw.sendBytes(t, []byte("not json"))
	step("bad json", func(f frame) bool { return f.Type == "error" && f.Code == "bad_json" })
	for i, f := range []map[string]any{
		{"type": "send", "room_id": room.ID, "client_id": "x", "ref": "e0"},
		{"type": "send", "room_id": room.ID, "client_id": "y", "body": "  ", "ref": "e1"},
		{"type": "send", "room_id": 999, "client_id": "z", "body": "hi", "ref": "e2"},
		{"type": "nope", "ref": "e3"},
		{"type": "open", "room_id": 999, "ref": "e4"},
		{"type": "read", "room_id": room.ID, "ref": "e5"},
		{"type": "sync", "room_id": room.ID, "ref": "e6"},
		{"ref": "e7"},
		{"type": "ping", "ref": strings.Repeat("r", 65)},
	} {
		aw.send(t, f)
		if i < 8 {
			step("error", ref(fmt.Sprint("e", i)))
		} else {
			step("error of a long ref", func(f frame) bool { return f.Type == "error" && f.Code == "too_long" })
		}
	}

	// A direct conversation.
	ts.sendDirect(t, grace, ada.ID, "d1", "psst")
	step("direct conversation", func(f frame) bool { return f.Type == "conversation" && f.Kind == "direct" })
	dc := ts.conversation(t, ada, func() int64 {
		aw.mu.Lock()
		defer aw.mu.Unlock()
		for _, f := range aw.queue {
			if f.Type == "conversation" && f.Kind == "direct" {
				return f.RoomID
			}
		}
		return 0
	}())
	aw.send(t, map[string]any{"type": "open", "room_id": dc.ID, "ref": "o2"})
	step("direct opened", ref("o2"))
	aw.send(t, map[string]any{"type": "send", "room_id": dc.ID, "client_id": "a2", "body": "yes?", "ref": "s2"})
	step("direct ack", ref("s2"))
	ts.markRead(t, grace, dc.ID, dc.LastSeq+1)
	step("receipt", is("receipt"))

	// A group: added, messages while not open, renamed, removed.
	g := ts.createGroup(t, grace, "crew", 0)
	ts.addMember(t, grace, g.ID, ada)
	step("group conversation", func(f frame) bool { return f.Type == "conversation" && f.RoomID == g.ID })
	gw.sendMessage(t, g.ID, "g2", "welcome")
	step("group message", func(f frame) bool { return f.Type == "message" && f.RoomID == g.ID && f.Message.ClientID == "g2" })
	aw.send(t, map[string]any{"type": "open", "room_id": g.ID, "ref": "o3"})
	step("group opened", ref("o3"))
	ts.mustDo(t, grace, "PATCH", groupPath(g.ID, ""), map[string]any{"name": "crew2"}, http.StatusOK, nil)
	step("rename", func(f frame) bool { return f.Type == "message" && f.RoomID == g.ID && f.Message.Kind == "renamed" })
	ts.mustDo(t, grace, "DELETE", memberPath(g.ID, ada, ""), nil, http.StatusNoContent, nil)
	step("removed", is("removed"))

	// Removed: the group's messages no more.
	gw.sendMessage(t, g.ID, "g4", "gone?")
	gw.barrier(t)

	// Past OnlineMax, counts; Bob leaves, Grace comes back to the group.
	bw := ts.connect(t, bob)
	bw.open(t, room.ID, nil)
	step("bob in the room", func(f frame) bool { return f.Type == "online_count" || (f.Type == "presence" && f.User.ID == bob.ID) })
	bw.sendMessage(t, room.ID, "b1", "hi all")
	step("bob's message", func(f frame) bool { return f.Type == "message" && f.Message.ClientID == "b1" })
	_ = bw.conn.Close()
	// Bob's own news: Grace's earlier presence in the room has a count of
	// 2 too, and matching it would not wait for Bob's, which comes after
	// PresenceGrace, on the room's topic, in no order with the group's
	// news on Ada's topic that follows.
	step("bob gone", func(f frame) bool {
		return f.RoomID == room.ID && f.OnlineCount == 2 &&
			(f.Type == "online_count" || f.Type == "presence" && !f.Online && f.User != nil && f.User.ID == bob.ID)
	})

	// Added again, messages while not open, then opened with after.
	ts.addMember(t, grace, g.ID, ada)
	step("group again", func(f frame) bool { return f.Type == "conversation" && f.RoomID == g.ID && f.UserSeq > 3 })
	m5 := gw.sendMessage(t, g.ID, "g5", "back")
	step("group message again", func(f frame) bool { return f.Type == "message" && f.Message.ClientID == "g5" })
	gw.sendMessage(t, g.ID, "g6", "and again")
	step("group message g6", func(f frame) bool { return f.Type == "message" && f.Message.ClientID == "g6" })
	after := m5.Seq - 3
	aw.send(t, map[string]any{"type": "open", "room_id": g.ID, "after": after, "ref": "o4"})
	step("group opened with after", func(f frame) bool { return f.Type == "sync" && f.Ref == "o4" })
	gw.sendMessage(t, g.ID, "g7", "open now")
	step("group message g7", func(f frame) bool { return f.Type == "message" && f.Message.ClientID == "g7" })

	// Close the room; Grace types there no more to Ada.
	aw.send(t, map[string]any{"type": "close", "room_id": room.ID, "ref": "c1"})
	step("closed", ref("c1"))
	gw.sendMessage(t, room.ID, "g3", "still there?")
	ts.sendDirect(t, grace, ada.ID, "d2", "end")
	step("end", func(f frame) bool { return f.Type == "message" && f.Message.ClientID == "d2" })
	// Grace goes: offline.
	_ = gw.conn.Close()
	step("grace offline", func(f frame) bool { return f.Type == "presence" && !f.Online && f.User.ID == grace.ID && f.RoomID == 0 })
	aw.send(t, map[string]any{"type": "ping", "ref": "end"})
	step("pong", ref("end"))
	for _, f := range aw.drain() {
		s, reply := normalizeFrame(t, f.Raw)
		if reply {
			tr.Replies = append(tr.Replies, s)
		} else {
			tr.Events = append(tr.Events, s)
		}
	}
	return tr
}
