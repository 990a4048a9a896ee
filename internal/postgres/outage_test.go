package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/testenv"
)

// TestReadAfterShortOutage: the network to the server broke for a moment
// (every connection cut, the server reachable again at once) less than a
// second after the pool's connections were last used, so the pool hands
// them out without a ping, and the first statement on each finds the
// connection gone ("unexpected EOF") after sending itself. A read changes
// nothing, so it runs again on another connection instead of failing with
// unavailable, by a statement of its own or in a read-only transaction. A
// write may have run before the connection went: it is not run again.
func TestReadAfterShortOutage(t *testing.T) {
	dsn := mustSchema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.StartProxy(t, u.Host)
	u.Host = p.Addr()
	db := mustOpen(t, u.String())
	ctx := t.Context()
	ann, general := annAndGeneral(t, db)
	if _, _, err := db.Append(ctx, chat.NewMessage{ConvID: general.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "hi", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	g, _, _, err := db.CreateGroup(ctx, chat.NewGroup{Name: "g", MaxMembers: 10, OwnerID: ann.ID, At: time.Now()},
		chat.Event{Type: chat.EventConversation, ConvKind: chat.ConvGroup})
	if err != nil {
		t.Fatal(err)
	}

	// outage cuts every connection of db's pool, some of them idle for
	// less than a second, and makes the server reachable again.
	outage := func(t *testing.T) {
		t.Helper()
		idleConns(t, db, 3)
		p.Cut()
		p.Restore(t)
	}
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"User", func(ctx context.Context) error {
			_, err := db.User(ctx, ann.ID)
			return err
		}},
		{"Messages", func(ctx context.Context) error {
			ms, err := db.Messages(ctx, general.ID, chat.Page{Limit: 10})
			if err == nil && len(ms) != 1 {
				err = fmt.Errorf("%d messages; want 1", len(ms))
			}
			return err
		}},
		{"UserGroups", func(ctx context.Context) error {
			gs, err := db.UserGroups(ctx, ann.ID)
			if err == nil && len(gs) != 1 {
				err = fmt.Errorf("%d groups; want 1", len(gs))
			}
			return err
		}},
		{"GroupMembers", func(ctx context.Context) error {
			ms, err := db.GroupMembers(ctx, g.ID)
			if err == nil && len(ms) != 1 {
				err = fmt.Errorf("%d members; want 1", len(ms))
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outage(t)
			if err := tc.run(ctx); err != nil {
				t.Errorf("%s right after a short outage: %v; want success", tc.name, err)
			}
		})
	}
	t.Run("write", func(t *testing.T) {
		outage(t)
		_, err := db.SetUserName(ctx, ann.ID, "ann")
		if !errors.Is(err, chat.ErrUnavailable) {
			t.Errorf("SetUserName right after a short outage: %v; want chat.ErrUnavailable (it may have run)", err)
		}
	})
}
