package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestServerTimeouts: a statement that the server cancels because of a
// timeout the operator set in the URL (statement_timeout, lock_timeout),
// here a send waiting for a room's row that another transaction holds,
// fails with chat.ErrUnavailable, which tells the user to try again
// later, not with an error of no kind shown as an internal error.
func TestServerTimeouts(t *testing.T) {
	dsn := mustSchema(t)
	// Migrated first: the nodes under test find nothing to migrate.
	mustOpen(t, dsn)
	for _, setting := range []string{"statement_timeout", "lock_timeout"} {
		t.Run(setting, func(t *testing.T) {
			// 1 s, not less: Open runs the group commit's statements once
			// under it, which a loaded machine can take over 100 ms to do.
			db := mustOpen(t, dsn+"&"+setting+"=1s")
			ctx := t.Context()
			ann, r := annAndGeneral(t, db)
			holdRow(t, db, r.ID)
			_, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "hi", At: time.Now()})
			if !errors.Is(err, chat.ErrUnavailable) {
				t.Errorf("Append cancelled by the server's %s = %v; want chat.ErrUnavailable", setting, err)
			}
			_, _, err = db.JoinRoom(ctx, r.ID, ann.ID, time.Now(), true)
			if !errors.Is(err, chat.ErrUnavailable) {
				t.Errorf("JoinRoom cancelled by the server's %s = %v; want chat.ErrUnavailable", setting, err)
			}
		})
	}
}
