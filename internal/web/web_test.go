package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/mailer/smtptest"
	"github.com/parley-chat/parley/internal/web"
)

var ignoreTimes = cmpopts.IgnoreFields(wireMessage{}, "CreatedAt")

func int64p(n int64) *int64 { return &n }

func TestTwoUsersChat(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")

	// hello tells the user and the limits.
	h := ts.connectWith(t, ada, dialOptions{}).readNow(t, "hello")
	wantLimits := map[string]float64{"max_message_len": 4000, "max_frame_bytes": 32 << 10, "send_rate": 10, "send_burst": 20,
		"max_group_members": 200, "default_group_members": 200}
	if diff := cmp.Diff(wantLimits, h.Limits); diff != "" {
		t.Errorf("hello.limits mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&wireUser{ID: ada.ID, Name: "Ada", Email: "ada@example.com", NameVersion: ada.NameVersion}, h.User); diff != "" {
		t.Errorf("hello.user mismatch (-want +got):\n%s", diff)
	}

	room := ts.enterRoom(t, ada, "general")
	if room.Name != "general" || room.LastSeq != 1 || room.Members != 1 {
		t.Fatalf("enter room = %+v; want general with last_seq 1 and 1 member", room)
	}
	wa := ts.connect(t, ada)
	op := wa.open(t, room.ID, nil)
	if diff := cmp.Diff([]wireUser{ref(ada)}, op.OnlineUsers); diff != "" || op.OnlineCount != 1 {
		t.Errorf("Ada's opened.online (count %d) mismatch (-want +got):\n%s", op.OnlineCount, diff)
	}

	// Grace enters: Ada sees her join notice.
	if r := ts.enterRoom(t, grace, "General"); r.ID != room.ID || r.Name != "general" || r.Members != 2 {
		t.Fatalf("enter General = %+v; want room %d, general, 2 members", r, room.ID)
	}
	join := wa.expectMessage(t, room.ID, 2)
	want := wireMessage{RoomID: room.ID, Seq: 2, Kind: "join", SenderID: grace.ID, SenderName: "Grace"}
	if diff := cmp.Diff(want, join, ignoreTimes); diff != "" {
		t.Errorf("join notice mismatch (-want +got):\n%s", diff)
	}

	// Grace opens the room: Ada sees her come online.
	wg := ts.connect(t, grace)
	op = wg.open(t, room.ID, nil)
	if diff := cmp.Diff([]wireUser{ref(ada), ref(grace)}, op.OnlineUsers); diff != "" || op.OnlineCount != 2 {
		t.Errorf("Grace's opened.online (count %d) mismatch (-want +got):\n%s", op.OnlineCount, diff)
	}
	if op.Room.LastSeq != 2 || op.Room.Members != 2 {
		t.Errorf("opened.room = %+v; want last_seq 2, 2 members", op.Room)
	}
	wa.expectPresence(t, room.ID, grace, true)

	// They chat; each gets both messages live, the sender included.
	m := wa.sendMessage(t, room.ID, "a-1", "hello Grace")
	want = wireMessage{RoomID: room.ID, Seq: 3, Kind: "text", SenderID: ada.ID, SenderName: "Ada", ClientID: "a-1", Body: "hello Grace"}
	if diff := cmp.Diff(want, m, ignoreTimes); diff != "" {
		t.Errorf("ack mismatch (-want +got):\n%s", diff)
	}
	if m.CreatedAt.IsZero() {
		t.Errorf("ack message has no created_at")
	}
	for _, w := range []*wsClient{wa, wg} {
		if diff := cmp.Diff(m, w.expectMessage(t, room.ID, 3)); diff != "" {
			t.Errorf("%s: message event mismatch (-want +got):\n%s", w.name, diff)
		}
	}
	m = wg.sendMessage(t, room.ID, "g-1", "hi Ada")
	for _, w := range []*wsClient{wa, wg} {
		if diff := cmp.Diff(m, w.expectMessage(t, room.ID, 4)); diff != "" {
			t.Errorf("%s: message event mismatch (-want +got):\n%s", w.name, diff)
		}
	}

	// Grace closes the room, opens it again, then disconnects.
	ref := wg.newRef()
	wg.send(t, map[string]any{"type": "close", "room_id": room.ID, "ref": ref})
	if f := wg.expect(t, "closed"); f.RoomID != room.ID || f.Ref != ref {
		t.Errorf("closed = %s; want room %d, ref %q", f, room.ID, ref)
	}
	wa.expectPresence(t, room.ID, grace, false)
	wg.open(t, room.ID, nil)
	wa.expectPresence(t, room.ID, grace, true)
	wg.conn.Close()
	wa.expectPresence(t, room.ID, grace, false)

	var online struct {
		Users []wireUser `json:"users"`
		Count int        `json:"count"`
	}
	ts.mustDo(t, grace, "GET", roomPath(room.ID, "/online"), nil, http.StatusOK, &online)
	if diff := cmp.Diff([]wireUser{{ID: ada.ID, Name: "Ada", NameVersion: ada.NameVersion}}, online.Users); diff != "" || online.Count != 1 {
		t.Errorf("GET online (count %d) mismatch (-want +got):\n%s", online.Count, diff)
	}

	// Ada saw exactly these events, nothing more.
	wa.barrier(t)
	if fs := wa.drain(); len(fs) != 0 {
		t.Errorf("Ada has unexpected frames: %v", fs)
	}

	// The room lists.
	var rooms struct {
		Joined []wireRoom `json:"joined"`
		Active []wireRoom `json:"active"`
	}
	ts.mustDo(t, ada, "GET", "/api/rooms", nil, http.StatusOK, &rooms)
	if len(rooms.Joined) != 1 || rooms.Joined[0].ID != room.ID || rooms.Joined[0].LastSeq != 4 {
		t.Errorf("joined rooms = %+v; want room %d with last_seq 4", rooms.Joined, room.ID)
	}
	if len(rooms.Active) != 1 || rooms.Active[0].Recent != 2 {
		t.Errorf("active rooms = %+v; want room %d with 2 recent messages", rooms.Active, room.ID)
	}
	var got struct {
		Room   wireRoom `json:"room"`
		Member bool     `json:"member"`
	}
	ts.mustDo(t, grace, "GET", roomPath(room.ID, ""), nil, http.StatusOK, &got)
	if got.Room.ID != room.ID || !got.Member {
		t.Errorf("GET room = %+v; want room %d, member", got, room.ID)
	}

	// Grace leaves: Ada sees the leave notice.
	ts.mustDo(t, grace, "DELETE", roomPath(room.ID, "/members/me"), nil, http.StatusNoContent, nil)
	leave := wa.expectMessage(t, room.ID, 5)
	if leave.Kind != "leave" || leave.SenderID != grace.ID || leave.Body != "" {
		t.Errorf("leave notice = %+v; want kind leave from Grace", leave)
	}
	wantError(t, "DELETE members/me again", ts.do(t, grace, "DELETE", roomPath(room.ID, "/members/me"), nil), http.StatusForbidden, "not_member")
}

func TestHistoryPaging(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendBurst = 1000 })) // 249 REST sends at once
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace") // not a member: rooms are public
	room := ts.enterRoom(t, ada, "history")
	const total = 250 // the join notice and 249 messages
	for i := 2; i <= total; i++ {
		m := ts.post(t, ada, room.ID, "c-"+strconv.Itoa(i), "message "+strconv.Itoa(i))
		if m.Seq != int64(i) {
			t.Fatalf("message %d got seq %d", i, m.Seq)
		}
	}

	tests := []struct {
		query    string
		from, to int64 // to < from: no messages
		hasMore  bool
	}{
		{"", 151, 250, true},
		{"limit=50", 201, 250, true},
		{"limit=1000", 151, 250, true},
		{"limit=0", 151, 250, true},
		{"before=201&limit=50", 151, 200, true},
		{"before=52&limit=50", 2, 51, true},
		{"before=51&limit=50", 1, 50, false},
		{"before=2", 1, 1, false},
		{"before=1", 1, 0, false},
		{"before=1000&limit=10", 241, 250, true},
		{"after=0&limit=50", 1, 50, true},
		{"after=0", 1, 100, true},
		{"after=199&limit=50", 200, 249, true},
		{"after=200&limit=50", 201, 250, false},
		{"after=240", 241, 250, false},
		{"after=250", 1, 0, false},
	}
	for _, tt := range tests {
		p := ts.history(t, grace, room.ID, tt.query)
		if diff := cmp.Diff(seqRange(tt.from, tt.to), seqs(p.Messages)); diff != "" {
			t.Errorf("history?%s seqs mismatch (-want +got):\n%s", tt.query, diff)
		}
		if p.HasMore != tt.hasMore {
			t.Errorf("history?%s has_more = %v; want %v", tt.query, p.HasMore, tt.hasMore)
		}
	}

	// Scrolling up from the newest page and catching up from the start
	// both read every message once, in order.
	var up []wireMessage
	for q := "limit=30"; ; {
		p := ts.history(t, ada, room.ID, q)
		up = append(p.Messages, up...)
		if !p.HasMore {
			break
		}
		q = fmt.Sprintf("limit=30&before=%d", p.Messages[0].Seq)
	}
	if diff := cmp.Diff(seqRange(1, total), seqs(up)); diff != "" {
		t.Errorf("scrolling up: seqs mismatch (-want +got):\n%s", diff)
	}
	all := ts.allMessages(t, grace, room.ID)
	if diff := cmp.Diff(up, all); diff != "" {
		t.Errorf("catching up differs from scrolling up (-up +catch-up):\n%s", diff)
	}
	for _, m := range all[1:] {
		if want := "message " + strconv.FormatInt(m.Seq, 10); m.Body != want || m.Kind != "text" || m.SenderName != "Ada" {
			t.Errorf("message %d = %+v; want text %q from Ada", m.Seq, m, want)
		}
	}

	for _, q := range []string{"before=-1", "after=x", "limit=-5", "limit=1.5"} {
		wantError(t, "history?"+q, ts.do(t, ada, "GET", roomPath(room.ID, "/messages?"+q), nil), http.StatusBadRequest, "invalid_field")
	}
}

func TestReconnectResync(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 1000, 1000 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")

	wg := ts.connect(t, grace)
	wg.open(t, room.ID, nil)
	wa := ts.connect(t, ada)
	wa.open(t, room.ID, nil)
	last := wg.expectMessage(t, room.ID, wa.sendMessage(t, room.ID, "a-0", "before").Seq).Seq
	wg.conn.Close()
	wa.expectPresence(t, room.ID, grace, false)

	const missed = 230
	var want []wireMessage
	for i := range missed {
		want = append(want, wa.sendMessage(t, room.ID, fmt.Sprintf("a-%d", i+1), fmt.Sprintf("while away %d", i+1)))
	}

	// Grace reconnects and opens the room with after: last, following
	// has_more with sync.
	wg = ts.connect(t, grace)
	wg.open(t, room.ID, &last)
	var got []wireMessage
	f := wg.expect(t, "sync")
	for {
		if f.RoomID != room.ID {
			t.Fatalf("sync frame %s: want room_id %d", f, room.ID)
		}
		got = append(got, f.Messages...)
		if !f.HasMore {
			break
		}
		if len(f.Messages) == 0 {
			t.Fatalf("sync frame %s: has_more without messages", f)
		}
		ref := wg.newRef()
		wg.send(t, map[string]any{"type": "sync", "room_id": room.ID, "after": got[len(got)-1].Seq, "ref": ref})
		f = wg.take(t, "sync "+ref, func(f frame) bool { return (f.Type == "sync" || f.Type == "error") && f.Ref == ref })
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resync mismatch (-want +got):\n%s", diff)
	}
	wg.barrier(t)
	for _, f := range wg.drain() {
		if f.Type == "message" {
			t.Errorf("unexpected live message after resync: %s", f)
		}
	}

	// A sync on its own: from the start, and past the end.
	ref := wg.newRef()
	wg.send(t, map[string]any{"type": "sync", "room_id": room.ID, "after": 0, "ref": ref})
	f = wg.expect(t, "sync")
	if f.Ref != ref || !f.HasMore {
		t.Errorf("sync after 0 = ref %q, has_more %v; want ref %q, has_more", f.Ref, f.HasMore, ref)
	}
	if diff := cmp.Diff(seqRange(1, 100), seqs(f.Messages)); diff != "" {
		t.Errorf("sync after 0: seqs mismatch (-want +got):\n%s", diff)
	}
	end := want[len(want)-1].Seq
	wg.send(t, map[string]any{"type": "sync", "room_id": room.ID, "after": end - 3})
	if f := wg.expect(t, "sync"); f.HasMore || cmp.Diff(seqRange(end-2, end), seqs(f.Messages)) != "" {
		t.Errorf("sync after %d = %s; want seqs %d..%d, no more", end-3, f, end-2, end)
	}
	wg.send(t, map[string]any{"type": "sync", "room_id": room.ID, "after": end})
	if f := wg.expect(t, "sync"); f.HasMore || len(f.Messages) != 0 || !strings.Contains(f.Raw, `"messages":[]`) {
		t.Errorf("sync after the end = %s; want no messages ([]), no more", f)
	}
}

func TestIdempotentSend(t *testing.T) {
	ts := newTestServer(t)
	ada, grace, room, wa, wg := ts.adaAndGrace(t)

	first := wa.sendMessage(t, room.ID, "c-1", "hello")
	again := wa.sendMessage(t, room.ID, "c-1", "hello, edited") // a retry returns the stored message
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("WebSocket retry ack mismatch (-first +retry):\n%s", diff)
	}
	if got := ts.post(t, ada, room.ID, "c-1", "hello"); !cmp.Equal(first, got) {
		t.Errorf("REST retry = %+v; want %+v", got, first)
	}
	rest := ts.post(t, ada, room.ID, "r-1", "over REST")
	if got := ts.post(t, ada, room.ID, "r-1", "over REST"); !cmp.Equal(rest, got) {
		t.Errorf("REST retry = %+v; want %+v", got, rest)
	}
	if got := wa.sendMessage(t, room.ID, "r-1", "over REST"); !cmp.Equal(rest, got) {
		t.Errorf("WebSocket retry of a REST send = %+v; want %+v", got, rest)
	}
	// client_id is unique per sender: Grace may use c-1 too.
	theirs := wg.sendMessage(t, room.ID, "c-1", "hello")
	if theirs.Seq != rest.Seq+1 || theirs.SenderID != grace.ID {
		t.Errorf("Grace's c-1 = %+v; want a new message, seq %d", theirs, rest.Seq+1)
	}

	// One message event per stored message, on each connection.
	wantSeqs := []int64{first.Seq, rest.Seq, theirs.Seq}
	for _, w := range []*wsClient{wa, wg} {
		w.barrier(t)
		var got []int64
		for _, f := range w.drain() {
			if f.Type == "message" {
				got = append(got, f.Message.Seq)
			}
		}
		if diff := cmp.Diff(wantSeqs, got); diff != "" {
			t.Errorf("%s: message events mismatch (-want +got):\n%s", w.name, diff)
		}
	}
	if got := seqs(ts.allMessages(t, ada, room.ID)); !cmp.Equal(got, seqRange(1, theirs.Seq)) {
		t.Errorf("history seqs = %v; want 1..%d", got, theirs.Seq)
	}
}

func TestWebSocketErrors(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 1000, 1000 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	other := ts.enterRoom(t, grace, "other") // Ada is no member
	w := ts.connect(t, ada)
	w.open(t, room.ID, nil)
	const missing = 999999

	long := strings.Repeat("é", 4001)
	tests := []struct {
		name  string
		frame string
		ref   string // the ref the error must carry
		code  string
		field string
	}{
		{"not JSON", `hello`, "", "bad_json", ""},
		{"truncated JSON", `{"type":"send"`, "", "bad_json", ""},
		{"array", `[1,2]`, "", "bad_json", ""},
		{"room_id as string", fmt.Sprintf(`{"type":"send","room_id":"%d","client_id":"x","body":"hi"}`, room.ID), "", "bad_json", ""},
		{"type as number", `{"type":5}`, "", "bad_json", ""},
		{"body as number", fmt.Sprintf(`{"type":"send","room_id":%d,"client_id":"x","body":5}`, room.ID), "", "bad_json", ""},
		{"unknown type", `{"type":"shout","ref":"r1"}`, "r1", "unknown_type", ""},
		{"no type", `{"ref":"r2"}`, "r2", "missing_field", "type"},
		{"send without room_id", `{"type":"send","client_id":"x3","body":"hi"}`, "x3", "missing_field", "room_id"},
		{"open without room_id", `{"type":"open","ref":"r4"}`, "r4", "missing_field", "room_id"},
		{"send without client_id", fmt.Sprintf(`{"type":"send","room_id":%d,"body":"hi","ref":"r5"}`, room.ID), "r5", "missing_field", "client_id"},
		{"send without body", fmt.Sprintf(`{"type":"send","room_id":%d,"client_id":"x6"}`, room.ID), "x6", "missing_field", "body"},
		{"sync without after", fmt.Sprintf(`{"type":"sync","room_id":%d,"ref":"r7"}`, room.ID), "r7", "missing_field", "after"},
		{"negative room_id", `{"type":"open","room_id":-3,"ref":"r8"}`, "r8", "invalid_field", "room_id"},
		{"client_id with a space", fmt.Sprintf(`{"type":"send","room_id":%d,"client_id":"a b","body":"hi"}`, room.ID), "a b", "invalid_field", "client_id"},
		{"negative after", fmt.Sprintf(`{"type":"sync","room_id":%d,"after":-1,"ref":"r9"}`, room.ID), "r9", "invalid_field", "after"},
		{"body too long", fmt.Sprintf(`{"type":"send","room_id":%d,"client_id":"x10","body":%q}`, room.ID, long), "x10", "too_long", "body"},
		{"ref too long", fmt.Sprintf(`{"type":"ping","ref":%q}`, strings.Repeat("r", 65)), "", "too_long", "ref"},
		{"client_id too long", fmt.Sprintf(`{"type":"send","room_id":%d,"client_id":%q,"body":"hi"}`, room.ID, strings.Repeat("c", 65)), strings.Repeat("c", 65), "too_long", "client_id"},
		{"empty body", fmt.Sprintf(`{"type":"send","room_id":%d,"client_id":"x11","body":""}`, room.ID), "x11", "empty", "body"},
		{"white space body", fmt.Sprintf(`{"type":"send","room_id":%d,"client_id":"x12","body":" \n\t "}`, room.ID), "x12", "empty", "body"},
		{"send to a room not joined", fmt.Sprintf(`{"type":"send","room_id":%d,"client_id":"x13","body":"hi"}`, other.ID), "x13", "not_member", ""},
		{"open a room not joined", fmt.Sprintf(`{"type":"open","room_id":%d,"ref":"r14"}`, other.ID), "r14", "not_member", ""},
		{"send to no room", fmt.Sprintf(`{"type":"send","room_id":%d,"client_id":"x15","body":"hi"}`, missing), "x15", "not_found", ""},
		{"open no room", fmt.Sprintf(`{"type":"open","room_id":%d,"ref":"r16"}`, missing), "r16", "not_found", ""},
		{"sync no room", fmt.Sprintf(`{"type":"sync","room_id":%d,"after":0,"ref":"r17"}`, missing), "r17", "not_found", ""},
	}
	seq := room.LastSeq
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.sendRaw(t, websocket.TextMessage, []byte(tt.frame))
			f := w.expectError(t, tt.ref)
			if f.Code != tt.code || f.Field != tt.field || f.Text == "" {
				t.Errorf("error = %s; want code %q, field %q and a message", f, tt.code, tt.field)
			}
			// The connection still works and nothing was stored.
			seq++
			if m := w.sendMessage(t, room.ID, fmt.Sprintf("ok-%d", i), "still here"); m.Seq != seq {
				t.Errorf("next message got seq %d; want %d (the failed request stored something?)", m.Seq, seq)
			}
			w.expectMessage(t, room.ID, seq)
		})
	}

	t.Run("binary frame", func(t *testing.T) {
		w.sendRaw(t, websocket.BinaryMessage, []byte(`{"type":"ping"}`))
		if f := w.expectError(t, ""); f.Code != "bad_json" {
			t.Errorf("error = %s; want bad_json", f)
		}
		w.barrier(t)
	})

	for _, m := range ts.allMessages(t, ada, room.ID)[1:] {
		if m.Body != "still here" {
			t.Errorf("stored %+v; want only the valid messages", m)
		}
	}
	if got := ts.allMessages(t, grace, other.ID); len(got) != 1 {
		t.Errorf("room other holds %d messages; want only the join notice", len(got))
	}
}

func TestWebSocketRateLimit(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 2, 2 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	w := ts.connect(t, ada)

	// Three sends in a row: the burst allows two.
	for i := 1; i <= 3; i++ {
		w.send(t, map[string]any{"type": "send", "room_id": room.ID, "client_id": fmt.Sprintf("c-%d", i), "body": "hi"})
	}
	w.take(t, "ack c-1", func(f frame) bool { return f.Type == "ack" && f.ClientID == "c-1" })
	w.take(t, "ack c-2", func(f frame) bool { return f.Type == "ack" && f.ClientID == "c-2" })
	f := w.expectError(t, "c-3")
	if f.Code != "rate_limited" || f.RetryAfterMS <= 0 || f.RoomID != room.ID {
		t.Fatalf("third send = %s; want rate_limited with retry_after_ms", f)
	}
	// Nothing was stored; after the pause the server asks for, the same
	// send succeeds.
	if got := seqs(ts.allMessages(t, ada, room.ID)); !cmp.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("history seqs = %v; want [1 2 3]", got)
	}
	time.Sleep(time.Duration(f.RetryAfterMS) * time.Millisecond)
	if m := w.sendMessage(t, room.ID, "c-3", "hi"); m.Seq != 4 {
		t.Errorf("retried c-3 got seq %d; want 4", m.Seq)
	}
}

func TestFrameTooLarge(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	w := ts.connect(t, ada)
	const limit = 32 << 10

	// A frame of exactly the limit is read (and refused for its body).
	pre := fmt.Sprintf(`{"type":"send","room_id":%d,"client_id":"big","body":"`, room.ID)
	frame := pre + strings.Repeat("x", limit-len(pre)-2) + `"}`
	if len(frame) != limit {
		t.Fatalf("frame is %d bytes; want %d", len(frame), limit)
	}
	w.sendRaw(t, websocket.TextMessage, []byte(frame))
	if f := w.expectError(t, "big"); f.Code != "too_long" {
		t.Fatalf("frame of %d bytes: %s; want too_long", limit, f)
	}
	w.barrier(t)

	// One byte more closes the connection with 1009.
	frame = pre + strings.Repeat("x", limit-len(pre)-1) + `"}`
	w.sendRaw(t, websocket.TextMessage, []byte(frame))
	w.expectClose(t, websocket.CloseMessageTooBig)
	if got := seqs(ts.allMessages(t, ada, room.ID)); !cmp.Equal(got, []int64{1}) {
		t.Errorf("history seqs = %v; want [1]", got)
	}
}

func TestRESTErrors(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.Origins = []string{"https://chat.example.com"} }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	other := ts.enterRoom(t, grace, "other")
	msgs := roomPath(room.ID, "/messages")
	long := strings.Repeat("é", 4001)

	tests := []struct {
		name         string
		anon         bool // without the session cookie
		method, path string
		body         any
		header       map[string]string
		status       int
		code, field  string
	}{
		{"not JSON", false, "POST", "/api/rooms", `{"name":`, nil, 400, "bad_json", ""},
		{"wrong type", false, "POST", "/api/rooms", `{"name":5}`, nil, 400, "bad_json", ""},
		{"body as number", false, "POST", msgs, `{"client_id":"c","body":5}`, nil, 400, "bad_json", ""},
		{"two JSON values", false, "POST", msgs, `{"client_id":"c-1","body":"one"} {"client_id":"c-2","body":"two"}`, nil, 400, "bad_json", ""},
		{"more after the JSON", false, "PATCH", "/api/me", `{"name":"Eve"}x`, nil, 400, "bad_json", ""},
		{"no room name", false, "POST", "/api/rooms", map[string]string{}, nil, 400, "missing_field", "name"},
		{"no client_id", false, "POST", msgs, map[string]string{"body": "hi"}, nil, 400, "missing_field", "client_id"},
		{"no body", false, "POST", msgs, map[string]string{"client_id": "c"}, nil, 400, "missing_field", "body"},
		{"blank name", false, "PATCH", "/api/me", map[string]string{"name": "  "}, nil, 400, "missing_field", "name"},
		{"no email", false, "POST", "/api/auth/code", map[string]string{}, nil, 400, "missing_field", "email"},
		{"no code", false, "POST", "/api/auth/verify", map[string]string{"email": "ada@example.com"}, nil, 400, "missing_field", "code"},
		{"text/plain body", false, "POST", "/api/rooms", `{"name":"x"}`, map[string]string{"Content-Type": "text/plain"}, 415, "invalid_field", "Content-Type"},
		{"form body", false, "POST", msgs, "client_id=c&body=hi", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "invalid_field", "Content-Type"},
		{"room id not a number", false, "GET", "/api/rooms/abc", nil, nil, 400, "invalid_field", "id"},
		{"room id zero", false, "GET", "/api/rooms/0/messages", nil, nil, 400, "invalid_field", "id"},
		{"bad room name", false, "POST", "/api/rooms", map[string]string{"name": "no spaces"}, nil, 400, "invalid_field", "name"},
		{"bad email", false, "POST", "/api/auth/code", map[string]string{"email": "ada"}, nil, 400, "invalid_field", "email"},
		{"bad client_id", false, "POST", msgs, map[string]string{"client_id": "a b", "body": "hi"}, nil, 400, "invalid_field", "client_id"},
		{"body too long", false, "POST", msgs, map[string]string{"client_id": "c", "body": long}, nil, 400, "too_long", "body"},
		{"client_id too long", false, "POST", msgs, map[string]string{"client_id": strings.Repeat("c", 65), "body": "hi"}, nil, 400, "too_long", "client_id"},
		{"name too long", false, "PATCH", "/api/me", map[string]string{"name": strings.Repeat("n", 41)}, nil, 400, "too_long", "name"},
		{"name with a zero-width space", false, "PATCH", "/api/me", map[string]string{"name": "A\u200bda"}, nil, 400, "invalid_field", "name"},
		{"group name with a word joiner", false, "POST", "/api/groups", map[string]string{"name": "Te\u2060am"}, nil, 400, "invalid_field", "name"},
		{"room name too long", false, "POST", "/api/rooms", map[string]string{"name": strings.Repeat("r", 65)}, nil, 400, "too_long", "name"},
		{"empty body", false, "POST", msgs, map[string]string{"client_id": "c", "body": " \n "}, nil, 400, "empty", "body"},
		{"send to a room not joined", false, "POST", roomPath(other.ID, "/messages"), map[string]string{"client_id": "c", "body": "hi"}, nil, 403, "not_member", ""},
		{"leave a room not joined", false, "DELETE", roomPath(other.ID, "/members/me"), nil, nil, 403, "not_member", ""},
		{"no such room", false, "GET", "/api/rooms/999999", nil, nil, 404, "not_found", ""},
		{"history of no room", false, "GET", "/api/rooms/999999/messages", nil, nil, 404, "not_found", ""},
		{"send to no room", false, "POST", "/api/rooms/999999/messages", map[string]string{"client_id": "c", "body": "hi"}, nil, 404, "not_found", ""},
		{"online of no room", false, "GET", "/api/rooms/999999/online", nil, nil, 404, "not_found", ""},
		{"unknown endpoint", false, "GET", "/api/nope", nil, nil, 404, "not_found", ""},
		{"unknown room endpoint", false, "GET", roomPath(room.ID, "/nope"), nil, nil, 404, "not_found", ""},
		{"me without a session", true, "GET", "/api/me", nil, nil, 401, "unauthorized", ""},
		{"rooms without a session", true, "GET", "/api/rooms", nil, nil, 401, "unauthorized", ""},
		{"send without a session", true, "POST", msgs, map[string]string{"client_id": "c", "body": "hi"}, nil, 401, "unauthorized", ""},
		{"sign out without a session", true, "POST", "/api/auth/signout", nil, nil, 401, "unauthorized", ""},
		{"bad session cookie", true, "GET", "/api/me", nil, map[string]string{"Cookie": web.CookieName + "=forged"}, 401, "unauthorized", ""},
		{"body too large", false, "POST", "/api/rooms", `{"name":"` + strings.Repeat("x", 65<<10) + `"}`, nil, 413, "too_large", ""},
		{"cross-origin POST", false, "POST", "/api/rooms", map[string]string{"name": "evil"}, map[string]string{"Origin": "http://evil.example"}, 403, "forbidden", ""},
		{"cross-site fetch", false, "POST", msgs, map[string]string{"client_id": "c", "body": "hi"}, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "forbidden", ""},
		{"same-site fetch", false, "PATCH", "/api/me", map[string]string{"name": "Eve"}, map[string]string{"Sec-Fetch-Site": "same-site"}, 403, "forbidden", ""},
		{"cross-origin sign-out", false, "POST", "/api/auth/signout", nil, map[string]string{"Origin": "http://evil.example"}, 403, "forbidden", ""},
		{"cross-origin code request", true, "POST", "/api/auth/code", map[string]string{"email": "ada@example.com"}, map[string]string{"Origin": "http://evil.example"}, 403, "forbidden", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ts.newRequest(t, tt.method, tt.path, tt.body)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			var hc *http.Client
			if !tt.anon {
				hc = ada.Client
			}
			e := wantError(t, tt.method+" "+tt.path, send(t, hc, req), tt.status, tt.code)
			if e.Field != tt.field {
				t.Errorf("field = %q; want %q", e.Field, tt.field)
			}
		})
	}

	// Allowed origins pass the CSRF check.
	for _, origin := range []string{ts.URL, "https://chat.example.com"} {
		req := ts.newRequest(t, "POST", msgs, map[string]string{"client_id": "o-" + origin, "body": "from " + origin})
		req.Header.Set("Origin", origin)
		if r := send(t, ada.Client, req); r.Status != http.StatusOK {
			t.Errorf("POST with Origin %s = %s; want 200", origin, r)
		}
	}
	// Nothing else was stored; Ada is still signed in with her name.
	if got := seqs(ts.allMessages(t, ada, room.ID)); !cmp.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("history seqs = %v; want [1 2 3]", got)
	}
	var me wireMe
	ts.mustDo(t, ada, "GET", "/api/me", nil, http.StatusOK, &me)
	if me.User.Name != "Ada" {
		t.Errorf("name = %q; want Ada", me.User.Name)
	}
	var rooms struct {
		Joined []wireRoom `json:"joined"`
		Active []wireRoom `json:"active"`
	}
	ts.mustDo(t, ada, "GET", "/api/rooms", nil, http.StatusOK, &rooms)
	if len(rooms.Joined) != 1 {
		t.Errorf("Ada's rooms = %+v; want general only", rooms.Joined)
	}
	if r := ts.do(t, nil, "GET", "/healthz", nil); r.Status != http.StatusOK {
		t.Errorf("GET /healthz = %s; want 200", r)
	}
	if r := ts.do(t, nil, "GET", "/", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Parley") {
		t.Errorf("GET / = %s; want the UI", r)
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.Origins = []string{"https://chat.example.com"} }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	tests := []struct {
		name   string
		c      *client
		origin string
		status int
		code   string
	}{
		{"cross-origin", ada, "http://evil.example", http.StatusForbidden, "forbidden"},
		{"listed origin", ada, "https://chat.example.com", http.StatusSwitchingProtocols, ""},
		{"own origin", ada, ts.URL, http.StatusSwitchingProtocols, ""},
		{"no origin", ada, "", http.StatusSwitchingProtocols, ""},
		{"no cookie", nil, "", http.StatusUnauthorized, "unauthorized"},
		{"no cookie, cross-origin", nil, "http://evil.example", http.StatusUnauthorized, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			conn, resp, err := ts.dial(t, tt.c, "/api/ws", dialOptions{header: h})
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("dial: %s (%v); want status %d", resp.Status, err, tt.status)
			}
			if tt.code == "" {
				w := newWSClient(t, "ws", conn)
				w.startReading()
				w.expect(t, "hello")
				w.barrier(t)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			wantError(t, "upgrade", response{Status: resp.StatusCode, Header: resp.Header, Body: body}, tt.status, tt.code)
		})
	}
}

// TestSlowReader: clients that read nothing are cut off for being slow,
// and meanwhile everyone else gets every message. There are more of them
// than the server has writers: a congested socket holds up none.
func TestSlowReader(t *testing.T) {
	ts := newTestServer(t, func(c *testConfig) {
		c.web.Outbox = 8
		c.web.SendRate, c.web.SendBurst = 1000, 1000
		c.web.WriteWait = time.Minute // the slow client must be cut off for being slow, not by a write timeout
		c.sndbuf = 8 << 10
	})
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")

	type slowClient struct {
		user *client
		ws   *wsClient
		last int64
	}
	slows := make([]slowClient, runtime.GOMAXPROCS(0)+1)
	for i := range slows {
		slows[i].user = ts.signIn(t, fmt.Sprintf("slow%d@example.com", i), fmt.Sprintf("Slowpoke %d", i))
		ts.enterRoom(t, slows[i].user, "general")
	}
	for i := range slows {
		ws := ts.connectWith(t, slows[i].user, dialOptions{rcvbuf: 64 << 10})
		ws.readNow(t, "hello")
		ws.send(t, map[string]any{"type": "open", "room_id": room.ID})
		slows[i].ws, slows[i].last = ws, ws.readNow(t, "opened").Room.LastSeq
		ws.drain()
	}

	wg := ts.connect(t, grace)
	wg.open(t, room.ID, nil)

	// Ada floods the room while the slow clients read nothing; Grace
	// receives every message, in order (and, once a slow client is cut
	// off, its presence).
	const n = 200
	body := strings.Repeat("flood ", 400)
	var sent []wireMessage
	for i := range n {
		m := ts.post(t, ada, room.ID, fmt.Sprintf("f-%d", i), body)
		sent = append(sent, m)
		if got := wg.expect(t, "message"); got.Message == nil || got.Message.Seq != m.Seq {
			t.Fatalf("Grace got %.200s; want message %d", got.Raw, m.Seq)
		}
	}

	// Each slow client gets what was queued for it, then close code 4000.
	var got []wireMessage
	for i := range slows {
		slow := &slows[i]
		slow.ws.startReading()
		got = nil
		for _, f := range slow.ws.expectClose(t, web.CloseTooSlow) {
			switch f.Type {
			case "message":
				got = append(got, *f.Message)
			case "presence": // others came online
			default:
				t.Fatalf("slow client %d got %.200s; want messages", i, f.Raw)
			}
		}
		t.Logf("slow client %d got %d of %d messages before it was closed", i, len(got), n)
		if len(got) >= n {
			t.Fatalf("slow client %d got all %d messages before it was closed; want it cut off", i, len(got))
		}
		if len(got) > 0 {
			if diff := cmp.Diff(sent[:len(got)], got); diff != "" {
				t.Fatalf("slow client %d's messages mismatch (-want +got):\n%s", i, diff)
			}
			slow.last = got[len(got)-1].Seq
		}
	}
	slowpoke, last := slows[len(slows)-1].user, slows[len(slows)-1].last

	// Grace is still connected.
	wg.barrier(t)
	if m := wg.sendMessage(t, room.ID, "g-1", "still here"); m.Seq != sent[n-1].Seq+1 {
		t.Errorf("Grace's message got seq %d; want %d", m.Seq, sent[n-1].Seq+1)
	}

	// The last slow client reconnects and resyncs to the complete history.
	slow := ts.connect(t, slowpoke)
	slow.open(t, room.ID, &last)
	for f := slow.expect(t, "sync"); ; {
		got = append(got, f.Messages...)
		if !f.HasMore {
			break
		}
		slow.send(t, map[string]any{"type": "sync", "room_id": room.ID, "after": got[len(got)-1].Seq})
		f = slow.expect(t, "sync")
	}
	want := append(sent, ts.history(t, ada, room.ID, "limit=1").Messages...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slow client's resync mismatch (-want +got):\n%s", diff)
	}
}

func TestSignOut(t *testing.T) {
	ts := newTestServer(t)
	phone := ts.signIn(t, "ada@example.com", "Ada")
	laptop := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, phone, "general")
	wp := ts.connect(t, phone)
	wp.open(t, room.ID, nil)
	wl := ts.connect(t, laptop)
	wl.open(t, room.ID, nil)

	u := mustParseURL(t, ts.URL)
	cookies := phone.Jar.Cookies(u)
	if len(cookies) != 1 || cookies[0].Name != web.CookieName {
		t.Fatalf("phone's cookies = %v; want the session cookie", cookies)
	}
	old := cookies[0].Value

	r := ts.do(t, phone, "POST", "/api/auth/signout", nil)
	if r.Status != http.StatusNoContent {
		t.Fatalf("sign out = %s; want 204", r)
	}
	if c := findCookie(r.Header, web.CookieName); c == nil || c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("sign out Set-Cookie = %v; want the cookie cleared", c)
	}
	wp.expectClose(t, web.CloseSessionEnded)

	// The old cookie no longer works, over REST or WebSocket.
	req := ts.newRequest(t, "GET", "/api/me", nil)
	req.AddCookie(&http.Cookie{Name: web.CookieName, Value: old})
	wantError(t, "GET /api/me with the old cookie", send(t, nil, req), http.StatusUnauthorized, "unauthorized")
	_, resp, err := ts.dial(t, nil, "/api/ws", dialOptions{header: http.Header{"Cookie": {web.CookieName + "=" + old}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("dial with the old cookie: %v (%s); want 401", err, statusOf(resp))
	}

	// The laptop's session goes on.
	wl.barrier(t)
	if m := wl.sendMessage(t, room.ID, "l-1", "still here"); m.Seq != 2 {
		t.Errorf("laptop's message got seq %d; want 2", m.Seq)
	}
	wl.expectMessage(t, room.ID, 2)
	ts.mustDo(t, laptop, "GET", "/api/me", nil, http.StatusOK, nil)
}

func TestChannelsCompat(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true }))
	compat := ts.connectCompat(t, "general") // creates the room
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	if room.LastSeq != 1 {
		t.Fatalf("room general = %+v; want it created by the compat client, with Ada's join as seq 1", room)
	}
	wa := ts.connect(t, ada)
	wa.open(t, room.ID, nil)
	compat2 := ts.connectCompat(t, "General")

	// A compat message reaches every compat client as is, and the native
	// client as an anonymous message.
	compat.send(t, map[string]string{"message": "hi"})
	for _, c := range []*wsClient{compat, compat2} {
		if f := c.next(t); f.Raw != `{"message":"hi"}` {
			t.Errorf("compat client got %s; want {\"message\":\"hi\"}", f.Raw)
		}
	}
	m := wa.expectMessage(t, room.ID, 2)
	want := wireMessage{RoomID: room.ID, Seq: 2, Kind: "text", SenderID: 0, SenderName: "anonymous", Body: "hi"}
	if diff := cmp.Diff(want, m, ignoreTimes); diff != "" {
		t.Errorf("native client's message mismatch (-want +got):\n%s", diff)
	}

	// A native message reaches the compat clients.
	wa.sendMessage(t, room.ID, "a-1", "hello \"compat\"\nclients")
	for _, c := range []*wsClient{compat, compat2} {
		if f := c.next(t); f.Raw != `{"message":"hello \"compat\"\nclients"}` {
			t.Errorf("compat client got %s; want Ada's message", f.Raw)
		}
	}

	// Bad frames get an error and change nothing.
	bad := []struct{ frame, code string }{
		{`hello`, "bad_json"},
		{`{"message":5}`, "bad_json"},
		{`{}`, "missing_field"},
		{`{"message":null}`, "missing_field"},
		{`{"message":""}`, "empty"},
		{`{"message":"  "}`, "empty"},
		{fmt.Sprintf(`{"message":%q}`, strings.Repeat("x", 4001)), "too_long"},
	}
	for _, b := range bad {
		compat.sendRaw(t, websocket.TextMessage, []byte(b.frame))
		f := compat.next(t)
		if f.Error == nil || f.Error.Code != b.code || f.Error.Message == "" || f.Type != "" {
			t.Errorf("frame %.40s: got %s; want {\"error\": {\"code\": %q, ...}}", b.frame, f.Raw, b.code)
		}
	}
	compat.send(t, map[string]string{"message": "bye"})
	for _, c := range []*wsClient{compat, compat2} {
		if f := c.next(t); f.Raw != `{"message":"bye"}` {
			t.Errorf("compat client got %s; want {\"message\":\"bye\"}", f.Raw)
		}
	}
	wa.expectMessage(t, room.ID, 4)

	// Ada leaving and closing shows nothing to compat clients.
	ts.mustDo(t, ada, "DELETE", roomPath(room.ID, "/members/me"), nil, http.StatusNoContent, nil)
	wa.conn.Close()
	compat2.send(t, map[string]string{"message": "anyone?"})
	for _, c := range []*wsClient{compat, compat2} {
		if f := c.next(t); f.Raw != `{"message":"anyone?"}` {
			t.Errorf("compat client got %s; want {\"message\":\"anyone?\"}", f.Raw)
		}
	}

	// Everything is in the room's history with its seq.
	grace := ts.signIn(t, "grace@example.com", "Grace")
	got := ts.allMessages(t, grace, room.ID)
	wantAll := []wireMessage{
		{RoomID: room.ID, Seq: 1, Kind: "join", SenderID: ada.ID, SenderName: "Ada"},
		{RoomID: room.ID, Seq: 2, Kind: "text", SenderName: "anonymous", Body: "hi"},
		{RoomID: room.ID, Seq: 3, Kind: "text", SenderID: ada.ID, SenderName: "Ada", ClientID: "a-1", Body: "hello \"compat\"\nclients"},
		{RoomID: room.ID, Seq: 4, Kind: "text", SenderName: "anonymous", Body: "bye"},
		{RoomID: room.ID, Seq: 5, Kind: "leave", SenderID: ada.ID, SenderName: "Ada"},
		{RoomID: room.ID, Seq: 6, Kind: "text", SenderName: "anonymous", Body: "anyone?"},
	}
	if diff := cmp.Diff(wantAll, got, ignoreTimes); diff != "" {
		t.Errorf("history mismatch (-want +got):\n%s", diff)
	}

	// The Origin check applies; bad room names are refused.
	_, resp, err := ts.dial(t, nil, "/ws/chat/general/", dialOptions{header: http.Header{"Origin": {"http://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin compat dial: %v (%s); want 403", err, statusOf(resp))
	}
	_, resp, err = ts.dial(t, nil, "/ws/chat/bad%20name/", dialOptions{})
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("compat dial of a bad room name: %v (%s); want 400", err, statusOf(resp))
	}

	// Without ChannelsCompat the path does not exist.
	off := newTestServer(t)
	if r := off.do(t, nil, "GET", "/ws/chat/general/", nil); r.Status != http.StatusNotFound {
		t.Errorf("GET /ws/chat/general/ without compat = %s; want 404", r)
	}
	_, resp, err = off.dial(t, nil, "/ws/chat/general/", dialOptions{})
	if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("compat dial without compat: %v (%s); want 404", err, statusOf(resp))
	}
}

func mustParseURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// findCookie returns the cookie called name that h sets, or nil.
func findCookie(h http.Header, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// otherCode returns a six-digit code that is not code.
func otherCode(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n+1)%1_000_000)
}

func (ts *testServer) verify(tb testing.TB, c *client, email, code string) response {
	tb.Helper()
	var hc *http.Client
	if c != nil {
		hc = c.Client
	}
	return send(tb, hc, ts.newRequest(tb, "POST", "/api/auth/verify", map[string]string{"email": email, "code": code}))
}

func TestSignInByMail(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do(t, nil, "POST", "/api/auth/code", map[string]string{"email": "  Ada@Example.COM "})
	if r.Status != http.StatusAccepted || strings.TrimSpace(string(r.Body)) != `{"sent":true}` {
		t.Fatalf("POST /api/auth/code = %s; want 202 {\"sent\":true}", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	m, err := ts.mail.WaitFor(ctx, "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	code := smtptest.ExtractCode(m.Text)
	if code == "" {
		t.Fatalf("no code in the text part:\n%s", m.Text)
	}
	if !strings.Contains(m.HTML, ">"+code+"<") {
		t.Errorf("HTML part does not show code %s:\n%s", code, m.HTML)
	}
	if !strings.Contains(m.Subject, code) || !cmp.Equal(m.To, []string{"ada@example.com"}) {
		t.Errorf("mail to %v, subject %q; want to ada@example.com with the code", m.To, m.Subject)
	}

	c := &client{Client: newHTTPClient(t)}
	wantError(t, "verify with a wrong code", ts.verify(t, c, "ada@example.com", otherCode(code)), http.StatusUnauthorized, "bad_code")
	wantError(t, "verify for another address", ts.verify(t, c, "grace@example.com", code), http.StatusUnauthorized, "bad_code")
	r = ts.verify(t, c, "Ada@example.com", " "+code+" ")
	var v verifyAnswer
	if r.Status != http.StatusOK {
		t.Fatalf("verify = %s; want 200", r)
	}
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatal(err)
	}
	if !v.NewUser || v.User.Email != "ada@example.com" || v.User.Name != "" || v.User.ID == 0 {
		t.Errorf("verify = %s; want a new user ada@example.com without a name", r)
	}
	ts.mustDo(t, c, "GET", "/api/me", nil, http.StatusOK, nil)
	// A used code is dead.
	wantError(t, "verify with a used code", ts.verify(t, nil, "ada@example.com", code), http.StatusUnauthorized, "bad_code")

	// Until the user has a name, new_user stays true.
	code = ts.requestCode(t, "ada@example.com")
	ts.mustDo(t, nil, "POST", "/api/auth/verify", map[string]string{"email": "ada@example.com", "code": code}, http.StatusOK, &v)
	if !v.NewUser {
		t.Errorf("second sign-in without a name: new_user = false; want true")
	}
	var me struct {
		User wireUser `json:"user"`
	}
	ts.mustDo(t, c, "PATCH", "/api/me", map[string]string{"name": "  Ada \t Lovelace "}, http.StatusOK, &me)
	if me.User.Name != "Ada Lovelace" {
		t.Errorf("name = %q; want white space collapsed, %q", me.User.Name, "Ada Lovelace")
	}
	code = ts.requestCode(t, "ada@example.com")
	ts.mustDo(t, nil, "POST", "/api/auth/verify", map[string]string{"email": "ada@example.com", "code": code}, http.StatusOK, &v)
	if v.NewUser || v.User.Name != "Ada Lovelace" {
		t.Errorf("sign-in with a name = %+v; want new_user false, name Ada Lovelace", v)
	}
	wantError(t, "verify without a pending code", ts.verify(t, nil, "nobody@example.com", "123456"), http.StatusUnauthorized, "bad_code")
}

func TestSignInCodeTries(t *testing.T) {
	ts := newTestServer(t)
	// The fifth try may still be the right one.
	code := ts.requestCode(t, "ada@example.com")
	for i := 1; i <= 4; i++ {
		wantError(t, fmt.Sprintf("wrong try %d", i), ts.verify(t, nil, "ada@example.com", otherCode(code)), http.StatusUnauthorized, "bad_code")
	}
	if r := ts.verify(t, nil, "ada@example.com", code); r.Status != http.StatusOK {
		t.Fatalf("right code on the fifth try = %s; want 200", r)
	}
	// Five wrong tries kill the code.
	code = ts.requestCode(t, "ada@example.com")
	for i := 1; i <= 5; i++ {
		wantError(t, fmt.Sprintf("wrong try %d", i), ts.verify(t, nil, "ada@example.com", otherCode(code)), http.StatusUnauthorized, "bad_code")
	}
	wantError(t, "right code after five wrong tries", ts.verify(t, nil, "ada@example.com", code), http.StatusUnauthorized, "bad_code")
}

func TestSignInCodeExpiry(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.requestCode(t, "ada@example.com")
	grace := ts.requestCode(t, "grace@example.com")
	ts.clock.Advance(10*time.Minute - time.Second)
	if r := ts.verify(t, nil, "ada@example.com", ada); r.Status != http.StatusOK {
		t.Errorf("verify after 9m59s = %s; want 200", r)
	}
	ts.clock.Advance(time.Second)
	wantError(t, "verify after 10m", ts.verify(t, nil, "grace@example.com", grace), http.StatusUnauthorized, "bad_code")
}

// TestSignInEarlierCodeWorks: asking again does not end the code mailed
// before (mail arrives out of order); a sign-in with it ends the newer.
func TestSignInEarlierCodeWorks(t *testing.T) {
	ts := newTestServer(t)
	first := ts.requestCode(t, "ada@example.com")
	second := ts.requestCode(t, "ada@example.com")
	for first == second { // one chance in a million
		second = ts.requestCode(t, "ada@example.com")
	}
	if r := ts.verify(t, nil, "ada@example.com", first); r.Status != http.StatusOK {
		t.Errorf("verify with the code mailed first = %s; want 200", r)
	}
	wantError(t, "verify with the newer code, after a sign-in", ts.verify(t, nil, "ada@example.com", second), http.StatusUnauthorized, "bad_code")
}

func TestSignInSameAnswer(t *testing.T) {
	ts := newTestServer(t)
	ts.signIn(t, "ada@example.com", "Ada")
	known := ts.do(t, nil, "POST", "/api/auth/code", map[string]string{"email": "ada@example.com"})
	unknown := ts.do(t, nil, "POST", "/api/auth/code", map[string]string{"email": "nobody@example.com"})
	if known.Status != unknown.Status || string(known.Body) != string(unknown.Body) || known.Header.Get("Content-Type") != unknown.Header.Get("Content-Type") {
		t.Errorf("known address: %s; unknown address: %s; want the same answer", known, unknown)
	}
	if known.Status != http.StatusAccepted {
		t.Errorf("POST /api/auth/code = %s; want 202", known)
	}
	// Both got a code that works.
	for _, email := range []string{"ada@example.com", "nobody@example.com"} {
		if r := ts.verify(t, nil, email, ts.readCode(t, email)); r.Status != http.StatusOK {
			t.Errorf("verify %s = %s; want 200", email, r)
		}
	}
}

func TestSignInThrottle(t *testing.T) {
	ts := newTestServer(t, func(c *testConfig) {
		c.chat.CodesPerIP = 8
		c.web.BehindProxy = true // the client IP comes from X-Forwarded-For
	})
	ask := func(email, ip string) response {
		req := ts.newRequest(t, "POST", "/api/auth/code", map[string]string{"email": email})
		req.Header.Set("X-Forwarded-For", "198.51.100.1, "+ip)
		return send(t, nil, req)
	}
	wantLimited := func(what string, r response) {
		t.Helper()
		e := wantError(t, what, r, http.StatusTooManyRequests, "rate_limited")
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || ra < 1 || ra > 15*60 {
			t.Errorf("%s: Retry-After = %q; want 1 to 900 seconds", what, r.Header.Get("Retry-After"))
		}
		if e.RetryAfterMS <= 0 || e.RetryAfterMS > 15*60*1000 {
			t.Errorf("%s: retry_after_ms = %d; want 1 to 900000", what, e.RetryAfterMS)
		}
	}

	// Five codes per address per 15 minutes.
	for i := 1; i <= 5; i++ {
		if r := ask("ada@example.com", "192.0.2.1"); r.Status != http.StatusAccepted {
			t.Fatalf("code %d for ada = %s; want 202", i, r)
		}
	}
	wantLimited("sixth code for ada", ask("ada@example.com", "192.0.2.2"))
	wantLimited("sixth code for ADA", ask("ADA@example.com", "192.0.2.3"))

	// CodesPerIP (8) per client IP: 192.0.2.1 has asked 5 times.
	for i := 1; i <= 3; i++ {
		if r := ask(fmt.Sprintf("user%d@example.com", i), "192.0.2.1"); r.Status != http.StatusAccepted {
			t.Fatalf("code %d from 192.0.2.1 = %s; want 202", i+5, r)
		}
	}
	wantLimited("ninth code from 192.0.2.1", ask("grace@example.com", "192.0.2.1"))
	if r := ask("grace@example.com", "192.0.2.9"); r.Status != http.StatusAccepted {
		t.Errorf("code from another IP = %s; want 202", r)
	}

	// The latest of Ada's codes still works; after the window she may ask again.
	for range 5 {
		ts.readCode(t, "ada@example.com")
	}
	ts.clock.Advance(15 * time.Minute)
	if r := ask("ada@example.com", "192.0.2.1"); r.Status != http.StatusAccepted {
		t.Errorf("code for ada after 15 minutes = %s; want 202", r)
	}
	if r := ts.verify(t, nil, "ada@example.com", ts.readCode(t, "ada@example.com")); r.Status != http.StatusOK {
		t.Errorf("verify = %s; want 200", r)
	}
}

// TestSignInThrottleForwardedLines checks that the per-IP limit keys on
// the hop the proxy adds, also when the proxy adds its own
// X-Forwarded-For line (as HAProxy's option forwardfor does) after the
// client's: the client's lines are the client's to forge.
func TestSignInThrottleForwardedLines(t *testing.T) {
	ts := newTestServer(t, func(c *testConfig) {
		c.chat.CodesPerIP = 2
		c.web.BehindProxy = true
	})
	for i := 1; i <= 3; i++ {
		req := ts.newRequest(t, "POST", "/api/auth/code", map[string]string{"email": fmt.Sprintf("user%d@example.com", i)})
		req.Header.Add("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)) // forged by the client
		req.Header.Add("X-Forwarded-For", "192.0.2.1")                    // added by the proxy
		r := send(t, nil, req)
		if i <= 2 {
			if r.Status != http.StatusAccepted {
				t.Fatalf("code %d from 192.0.2.1 = %s; want 202", i, r)
			}
			continue
		}
		wantError(t, "third code from 192.0.2.1 behind forged X-Forwarded-For lines", r, http.StatusTooManyRequests, "rate_limited")
	}
}

// TestSignInThrottleIPv6 checks that the per-IP limit counts an IPv6
// client by its /64, the least a site is given: one client has all of
// it to pick addresses from. Addresses the proxy writes with a port, or
// IPv4 mapped into IPv6, count as the address.
func TestSignInThrottleIPv6(t *testing.T) {
	for _, tt := range []struct {
		name       string
		first, hop func(i int) string
	}{
		{"one /64", func(int) string { return "2001:db8:1:2::1" }, func(i int) string { return fmt.Sprintf("2001:db8:1:2::%x", i+1) }},
		{"with ports", func(int) string { return "192.0.2.1" }, func(i int) string { return fmt.Sprintf("192.0.2.1:%d", 40000+i) }},
		{"mapped", func(int) string { return "192.0.2.1" }, func(int) string { return "::ffff:192.0.2.1" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *testConfig) {
				c.chat.CodesPerIP = 2
				c.web.BehindProxy = true
			})
			ask := func(i int, ip string) response {
				req := ts.newRequest(t, "POST", "/api/auth/code", map[string]string{"email": fmt.Sprintf("user%d@example.com", i)})
				req.Header.Set("X-Forwarded-For", ip)
				return send(t, nil, req)
			}
			if r := ask(0, tt.first(0)); r.Status != http.StatusAccepted {
				t.Fatalf("first code from %s = %s; want 202", tt.first(0), r)
			}
			if r := ask(1, tt.hop(1)); r.Status != http.StatusAccepted {
				t.Fatalf("second code, from %s = %s; want 202", tt.hop(1), r)
			}
			wantError(t, "third code, from "+tt.hop(2), ask(2, tt.hop(2)), http.StatusTooManyRequests, "rate_limited")
			if r := ask(3, "2001:db8:1:3::1"); r.Status != http.StatusAccepted {
				t.Errorf("code from another /64 = %s; want 202", r)
			}
		})
	}
}

func TestSignInMailDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ts := newTestServer(t, func(c *testConfig) { c.mailURL = "smtp://" + addr + "?tls=none" })
	wantError(t, "code without a mail server", ts.do(t, nil, "POST", "/api/auth/code", map[string]string{"email": "ada@example.com"}), http.StatusServiceUnavailable, "unavailable")
}

// stallRooms is a store whose UserRooms and RoomByName do not answer (a
// database that stopped answering) until their context ends, or for 20 s.
type stallRooms struct{ chat.Store }

func stall(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Second):
		return errors.New("the database did not answer")
	}
}

func (s stallRooms) UserRooms(ctx context.Context, userID int64) ([]chat.Room, error) {
	return nil, stall(ctx)
}

func (s stallRooms) RoomByName(ctx context.Context, name string) (chat.Room, error) {
	return chat.Room{}, stall(ctx)
}

// TestRESTStoreStalled: a REST request whose database does not answer gets
// 503 unavailable within the server's 15 s for an operation
// (docs/protocol.md, "Error codes"), as a WebSocket frame does, instead of
// waiting on it for as long as the database takes.
func TestRESTStoreStalled(t *testing.T) {
	ts := newTestServer(t, withStore(func(s chat.Store) chat.Store { return stallRooms{s} }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	hc := &http.Client{Jar: ada.Jar, Timeout: 30 * time.Second}
	wantError(t, "GET /api/rooms while the database stalls", send(t, hc, ts.newRequest(t, "GET", "/api/rooms", nil)),
		http.StatusServiceUnavailable, "unavailable")
}

// TestChannelsCompatStoreStalled: the Django Channels endpoint, too, answers
// 503 unavailable when the database does not answer within the server's
// 15 s, before the upgrade, instead of holding the request for as long as
// the database takes.
func TestChannelsCompatStoreStalled(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true }),
		withStore(func(s chat.Store) chat.Store { return stallRooms{s} }))
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	conn, resp, err := d.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/ws/chat/lobby/", nil)
	if err == nil {
		conn.Close()
		t.Fatal("the upgrade succeeded while the database stalls")
	}
	if resp == nil {
		t.Fatalf("dial /ws/chat/lobby/: %v; want 503 unavailable", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, "upgrade while the database stalls", response{Status: resp.StatusCode, Header: resp.Header, Body: body},
		http.StatusServiceUnavailable, "unavailable")
}

// TestHealthStalled: a health check whose database does not answer fails
// within the server's 15 s, 503, so that a load balancer waiting for it
// takes the node out rather than waiting as long as the database does.
func TestHealthStalled(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) {
		c.Health = func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	}))
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz while the database stalls: %v; want 503", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz while the database stalls = %d; want 503", resp.StatusCode)
	}
}

func TestSessionRenewal(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	const day = 24 * time.Hour
	me := func() response {
		t.Helper()
		return ts.do(t, ada, "GET", "/api/me", nil)
	}

	ts.clock.Advance(14 * day)
	if r := me(); r.Status != http.StatusOK || findCookie(r.Header, web.CookieName) != nil {
		t.Errorf("GET /api/me after 14 days = %s, Set-Cookie %q; want 200 and no new cookie", r, r.Header.Values("Set-Cookie"))
	}
	ts.clock.Advance(2 * day) // 14 days left: renewed
	r := me()
	c := findCookie(r.Header, web.CookieName)
	const month = 30 * 24 * 60 * 60
	if r.Status != http.StatusOK || c == nil || c.MaxAge < month-5 || c.MaxAge > month {
		t.Fatalf("GET /api/me after 16 days = %s, Set-Cookie %q; want 200 and a cookie for 30 more days", r, r.Header.Values("Set-Cookie"))
	}
	// Using the session only over the WebSocket renews the cookie too.
	ts.clock.Advance(15*day + time.Second)
	conn, resp, err := ts.dial(t, ada, "/api/ws", dialOptions{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.Close()
	if c := findCookie(resp.Header, web.CookieName); c == nil || c.MaxAge < month-5 || c.MaxAge > month {
		t.Fatalf("upgrade 15 days after renewal: Set-Cookie %q; want a cookie for 30 more days", resp.Header.Values("Set-Cookie"))
	}

	ts.clock.Advance(29 * day) // within the renewed 30 days
	if r := me(); r.Status != http.StatusOK {
		t.Errorf("GET /api/me 29 days after renewal = %s; want 200", r)
	}
	ts.clock.Advance(30*day + time.Second) // unused for 30 days
	wantError(t, "GET /api/me after the session expired", me(), http.StatusUnauthorized, "unauthorized")
	_, resp, err = ts.dial(t, ada, "/api/ws", dialOptions{})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("dial with an expired session: %v (%s); want 401", err, statusOf(resp))
	}
}

func TestKeepAlive(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) {
		// Ada's pongs must come within PongWait on a machine busy with
		// other tests: a second leaves room, and Grace is dropped after
		// about as long.
		c.PingInterval = 100 * time.Millisecond
		c.PongWait = time.Second
	}))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")
	wa := ts.connect(t, ada) // reads, so it answers the server's pings
	wa.open(t, room.ID, nil)

	// Grace reads nothing after opening the room, so she answers no ping:
	// the server drops her connection.
	wg := ts.connectWith(t, grace, dialOptions{})
	wg.readNow(t, "hello")
	wg.send(t, map[string]any{"type": "open", "room_id": room.ID})
	wg.readNow(t, "opened")
	wa.expectPresence(t, room.ID, grace, true)
	wa.expectPresence(t, room.ID, grace, false)
	wg.startReading()
	err := wg.waitEnd(t, "the connection dropped")
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseServiceRestart, web.CloseTooSlow, web.CloseSessionEnded) {
		t.Errorf("Grace's connection ended with %v; want it dropped without a close frame", err)
	}

	// Ada, connected for longer than PongWait, is still there.
	wa.barrier(t)
	wa.sendMessage(t, room.ID, "a-1", "still here")
}

func TestConcurrentSenders(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 1000, 1000 }))
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, grace, "busy")
	var senders []*wsClient
	for i := range 4 {
		u := ts.signIn(t, fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("User %d", i))
		ts.enterRoom(t, u, "busy")
		senders = append(senders, ts.connect(t, u))
	}
	wg := ts.connect(t, grace)
	last := wg.open(t, room.ID, nil).Room.LastSeq
	start := last

	// Every sender sends without waiting for acks, so the server appends
	// concurrently; Grace follows the protocol's rules to stay in sync.
	const each = 40
	for j := range each {
		for i, w := range senders {
			w.send(t, map[string]any{"type": "send", "room_id": room.ID, "client_id": fmt.Sprintf("s%d-%d", i, j), "body": fmt.Sprintf("%d says %d", i, j)})
		}
	}
	total := start + int64(len(senders)*each)
	var got []wireMessage
	syncing, gaps, dups := false, 0, 0
	requestSync := func() {
		wg.send(t, map[string]any{"type": "sync", "room_id": room.ID, "after": last})
		syncing = true
	}
	for last < total {
		f := wg.take(t, fmt.Sprintf("message or sync after %d", last), func(f frame) bool { return f.Type == "message" || f.Type == "sync" })
		switch {
		case f.Type == "sync":
			syncing = false
			for _, m := range f.Messages {
				if m.Seq == last+1 {
					got, last = append(got, m), m.Seq
				}
			}
			if f.HasMore {
				requestSync()
			}
		case f.Message.Seq <= last:
			dups++
		case f.Message.Seq == last+1:
			got, last = append(got, *f.Message), f.Message.Seq
		default:
			gaps++
			if !syncing {
				requestSync()
			}
		}
	}
	t.Logf("Grace saw %d gaps and %d duplicates", gaps, dups)
	history := ts.allMessages(t, grace, room.ID)
	if diff := cmp.Diff(history[start:], got); diff != "" {
		t.Errorf("Grace's messages differ from the history (-history +got):\n%s", diff)
	}
	if diff := cmp.Diff(seqRange(1, total), seqs(history)); diff != "" {
		t.Errorf("history seqs mismatch (-want +got):\n%s", diff)
	}
	// Every ack is what was stored.
	stored := make(map[string]wireMessage)
	for _, m := range history {
		stored[fmt.Sprintf("%d/%s", m.SenderID, m.ClientID)] = m
	}
	for i, w := range senders {
		for j := range each {
			id := fmt.Sprintf("s%d-%d", i, j)
			f := w.take(t, "ack "+id, func(f frame) bool { return f.Type == "ack" && f.ClientID == id })
			if want := stored[fmt.Sprintf("%d/%s", f.Message.SenderID, id)]; !cmp.Equal(want, *f.Message) {
				t.Errorf("ack of %s = %+v; stored %+v", id, *f.Message, want)
			}
		}
	}
}

func TestChannelsCompatRateLimit(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) {
		c.ChannelsCompat = true
		// No token comes back during the test: at 2/s, one would if the
		// server took half a second between the first and third frame.
		c.SendRate, c.SendBurst = 0.001, 2
	}))
	compat := ts.connectCompat(t, "general")
	for _, body := range []string{"one", "two", "three"} {
		compat.send(t, map[string]string{"message": body})
	}
	var got []string
	for range 3 {
		f := compat.next(t)
		switch {
		case f.Error != nil && f.Error.Code == "rate_limited":
			got = append(got, "rate_limited")
		case f.Error == nil:
			got = append(got, f.Text)
		default:
			t.Fatalf("got %s; want a message or rate_limited", f.Raw)
		}
	}
	if diff := cmp.Diff([]string{"one", "two", "rate_limited"}, got); diff != "" {
		t.Errorf("frames mismatch (-want +got):\n%s", diff)
	}
}

// TestChannelsCompatRefusedMakesNoRoom: a request to the Django Channels
// endpoint that is refused (another site's Origin, or no WebSocket at all,
// as an <img> on any page makes) creates no room.
func TestChannelsCompatRefusedMakesNoRoom(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true }))
	_, resp, err := ts.dial(t, nil, "/ws/chat/crossorigin/", dialOptions{header: http.Header{"Origin": {"http://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin compat dial: %v (%s); want 403", err, statusOf(resp))
	}
	if r := ts.do(t, nil, "GET", "/ws/chat/plainget/", nil); r.Status < 400 {
		t.Errorf("GET /ws/chat/plainget/ without an upgrade = %s; want it refused", r)
	}
	for _, name := range []string{"crossorigin", "plainget"} {
		if r, err := ts.svc.RoomByName(context.Background(), name); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("room %q after a refused compat request: %+v, %v; want none", name, r, err)
		}
	}
}

// TestChannelsCompatNewRoomsLimited: anonymous clients make rooms under
// the limit of a user (Config.NewConvsPerHour), counted per client
// address: without it, anyone could fill the database with rooms. Rooms
// that exist are entered as before.
func TestChannelsCompatNewRoomsLimited(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true }),
		withChat(func(c *chat.Config) { c.NewConvsPerHour = 2 }))
	ts.connectCompat(t, "one")
	ts.connectCompat(t, "two")
	_, resp, err := ts.dial(t, nil, "/ws/chat/three/", dialOptions{})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("compat dial of a third new room: %v (%s); want 429", err, statusOf(resp))
	}
	if r, err := ts.svc.RoomByName(context.Background(), "three"); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("room three after a refused dial: %+v, %v; want none", r, err)
	}
	c := ts.connectCompat(t, "one") // exists: entered
	c.send(t, map[string]string{"message": "still here"})
	if f := c.next(t); f.Text != "still here" {
		t.Errorf("compat client of an existing room got %s; want its message", f.Raw)
	}
}

// TestDeliveryAfterWritersIdle: the server's writers end once idle, and a
// later message starts them again.
func TestDeliveryAfterWritersIdle(t *testing.T) {
	ts := newTestServer(t)
	_, _, room, wa, wg := ts.adaAndGrace(t)
	wa.barrier(t)
	for i := range 2 {
		if i > 0 {
			time.Sleep(web.WriterIdle + 200*time.Millisecond) // every writer has ended
		}
		m := wa.sendMessage(t, room.ID, fmt.Sprintf("m-%d", i), "hello")
		if got := wg.next(t); got.Type != "message" || got.Message == nil || got.Message.Seq != m.Seq {
			t.Fatalf("message %d: Grace got %.200s; want message %d", i, got.Raw, m.Seq)
		}
	}
}

// TestRESTSendLimited: a user's REST sends are bound by the send-rate
// limit of a connection: the rest of a burst is refused as too many, with
// nothing stored. The rate is so low that no token comes back during the
// test: at 10/s, the 60 sends of a loaded -race run may take seconds, and
// refill more than a few.
func TestRESTSendLimited(t *testing.T) {
	const burst = 20
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 0.001, burst }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	ok := 0
	var refused response
	for i := range 60 {
		r := ts.do(t, ada, "POST", roomPath(room.ID, "/messages"), map[string]string{"client_id": "r" + strconv.Itoa(i), "body": "spam"})
		switch r.Status {
		case http.StatusOK:
			ok++
		default:
			refused = r
		}
	}
	if ok != burst {
		t.Errorf("%d of 60 back-to-back REST sends stored; want the burst of %d", ok, burst)
	}
	wantError(t, "a REST send past the limit", refused, http.StatusTooManyRequests, "rate_limited")
	if n := len(ts.allMessages(t, ada, room.ID)); n > ok+1 { // the join message, and what was accepted
		t.Errorf("%d messages stored; want at most %d", n, ok+1)
	}
}
