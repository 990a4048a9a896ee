package web_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// meetLastUserEvent is a store whose LastUserEvent, once armed, waits
// until two calls are under way (or waitTimeout passed): a channel
// rebuilt from a cursor reads it before the channel is registered.
type meetLastUserEvent struct {
	chat.Store
	armed atomic.Bool
	n     atomic.Int32
	both  chan struct{}
}

func (s *meetLastUserEvent) LastUserEvent(ctx context.Context, userID int64) (int64, error) {
	if s.armed.Load() {
		if s.n.Add(1) == 2 {
			s.armed.Store(false)
			close(s.both)
		}
		select {
		case <-s.both:
		case <-time.After(waitTimeout):
		}
	}
	return s.Store.LastUserEvent(ctx, userID)
}

// TestPollConcurrentRebuildOneChannel: two polls with the cursor of a
// channel this node does not hold (it restarted), under way at once,
// rebuild one channel. Each rebuilt its own and registered it under the
// cursor's name, the second in the place of the first: the first, which
// no request could reach any more, stayed in the hub, a connection of the
// user's and their presence, until it idled out.
func TestPollConcurrentRebuildOneChannel(t *testing.T) {
	st := &meetLastUserEvent{both: make(chan struct{})}
	ts := newTestServer(t, withStore(func(s chat.Store) chat.Store { st.Store = s; return st }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	token := ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value

	// The cursor of a channel of an earlier run of the server: "lost",
	// one answer given, no logged event, nothing open.
	name := "lost"
	cur := base64.RawURLEncoding.EncodeToString(append(append([]byte{1, byte(len(name))}, name...), 1, 0, 0))

	st.armed.Store(true)
	var wg sync.WaitGroup
	var rs [2]response
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i] = pollAs(t, ts, "GET", token, cur, "")
		}()
	}
	wg.Wait()
	for i, r := range rs {
		if r.Status != http.StatusOK {
			t.Fatalf("poll %d = %s; want 200", i, r)
		}
	}
	if n := ts.hub.UserClients(ada.ID); n != 1 {
		t.Errorf("after two polls rebuilding one channel, the user has %d connections in the hub; want 1", n)
	}
}
