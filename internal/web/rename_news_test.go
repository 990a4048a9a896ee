package web_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// heldBroker holds the publishes of user events while held: a broker
// that does not answer, as far as rename news goes.
type heldBroker struct {
	chat.Broker
	mu   sync.Mutex
	held chan struct{} // closed by release; nil: nothing held
}

func (b *heldBroker) hold() {
	b.mu.Lock()
	b.held = make(chan struct{})
	b.mu.Unlock()
}

func (b *heldBroker) release() {
	b.mu.Lock()
	if b.held != nil {
		close(b.held)
		b.held = nil
	}
	b.mu.Unlock()
}

func (b *heldBroker) Publish(ctx context.Context, t chat.Topic, ev chat.Event) error {
	b.mu.Lock()
	h := b.held
	b.mu.Unlock()
	if h != nil && ev.Type == chat.EventUser {
		select {
		case <-h:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.Broker.Publish(ctx, t, ev)
}

// TestRenameAnswersBeforeItsNews: Ada renames herself twice while the
// news of renames cannot be published. Both PATCHes answer with the name
// stored; once the broker answers, the news goes out after them, and
// wherever Ada's name shows (her own connection, her friend's, her
// group's, a room where she is present) the last name is the second.
func TestRenameAnswersBeforeItsNews(t *testing.T) {
	hb := &heldBroker{}
	ts := newTestServer(t, withBroker(func(b chat.Broker) chat.Broker { hb.Broker = b; return hb }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	gr := ts.signIn(t, "grace@example.com", "Grace")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	ts.befriend(t, ada, gr)
	g := ts.createGroup(t, ada, "crew", 0)
	ts.addMember(t, ada, g.ID, bob)
	lobby := ts.enterRoom(t, ada, "lobby")
	ts.enterRoom(t, gr, "lobby")

	aw := ts.connect(t, ada)
	aw.open(t, lobby.ID, nil)
	gw := ts.connect(t, gr)
	gw.open(t, lobby.ID, nil)
	bw := ts.connect(t, bob)
	for _, w := range []*wsClient{aw, gw, bw} {
		w.barrier(t)
		w.drain()
	}

	hb.hold()
	defer hb.release()
	rename := func(name string) {
		t.Helper()
		req := ts.newRequest(t, "PATCH", "/api/me", map[string]string{"name": name})
		done := make(chan response, 1)
		go func() {
			r, err := ada.Client.Do(req)
			if err != nil {
				done <- response{Status: -1, Body: []byte(err.Error())}
				return
			}
			defer r.Body.Close()
			b, _ := io.ReadAll(r.Body)
			done <- response{Status: r.StatusCode, Body: b}
		}()
		select {
		case r := <-done:
			if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"`+name+`"`) {
				t.Errorf("PATCH /api/me %q = %d %s; want 200 with the new name", name, r.Status, r.Body)
			}
		case <-time.After(waitTimeout):
			t.Errorf("PATCH /api/me %q has not answered in %v while its news is held; want it answered once the name is stored", name, waitTimeout)
			hb.release()
			<-done
		}
	}
	rename("Ada L")
	rename("Ada Lovelace")
	var me struct {
		User    wireUser `json:"user"`
		RenewAt string   `json:"session_renew_at"`
		RenewBy string   `json:"session_renew_by"`
	}
	ts.mustDo(t, ada, "GET", "/api/me", nil, http.StatusOK, &me)
	if me.User.Name != "Ada Lovelace" {
		t.Errorf("GET /api/me = %+v; want the name stored", me.User)
	}
	hb.release()

	// Each client's user frames of Ada, in the order they came, per
	// topic: the last one names her by her second name.
	want := map[*wsClient][]int64{
		aw: {0},
		gw: {0, lobby.ID}, // a friend, and Ada is present in the room Grace has open
		bw: {g.ID},        // a member of Ada's group
	}
	for w, rooms := range want {
		for _, id := range rooms {
			w.find(t, "user frame of Ada's second name", func(f frame) bool {
				return f.Type == "user" && f.RoomID == id && f.User != nil && f.User.ID == ada.ID && f.User.Name == "Ada Lovelace"
			}, false)
		}
		w.barrier(t)
		lastName := map[int64]string{}
		for _, f := range w.drain() {
			if f.Type == "user" && f.User != nil && f.User.ID == ada.ID {
				lastName[f.RoomID] = f.User.Name
			}
		}
		for _, id := range rooms {
			if lastName[id] != "Ada Lovelace" {
				t.Errorf("%s: the last user frame of Ada on topic %d names her %q; want Ada Lovelace", w.name, id, lastName[id])
			}
		}
	}
}
