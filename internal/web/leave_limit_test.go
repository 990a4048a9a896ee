package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestFailedLeaveNotCounted: a leave that fails (not a member, no such
// room) leaves the user's hourly leaves as they were.
func TestFailedLeaveNotCounted(t *testing.T) {
	ts := newTestServer(t, withChat(func(c *chat.Config) { c.RoomLeavesPerHour = 2 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	other := ts.enterRoom(t, ada, "other")
	ts.mustDo(t, ada, "DELETE", roomPath(other.ID, "/members/me"), nil, http.StatusNoContent, nil)
	for i := range 3 {
		r := ts.do(t, ada, "DELETE", roomPath(other.ID, "/members/me"), nil)
		wantError(t, fmt.Sprintf("leave %d of a room left", i), r, http.StatusForbidden, chat.CodeNotMember)
		r = ts.do(t, ada, "DELETE", roomPath(999999, "/members/me"), nil)
		wantError(t, fmt.Sprintf("leave %d of no room", i), r, http.StatusNotFound, chat.CodeNotFound)
	}
	// One leave of two counted: the second still goes through.
	ts.mustDo(t, ada, "DELETE", roomPath(room.ID, "/members/me"), nil, http.StatusNoContent, nil)
	ts.enterRoom(t, ada, "general")
	r := ts.do(t, ada, "DELETE", roomPath(room.ID, "/members/me"), nil)
	wantError(t, "third leave in the hour", r, http.StatusTooManyRequests, chat.CodeRateLimited)
}

// failingLeaves is a store whose LeaveRoom fails while down is set.
type failingLeaves struct {
	chat.Store
	down atomic.Bool
}

func (s *failingLeaves) LeaveRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool, removed chat.Event) (chat.Message, chat.Event, bool, error) {
	if s.down.Load() {
		return chat.Message{}, chat.Event{}, false, errors.New("disk on fire")
	}
	return s.Store.LeaveRoom(ctx, roomID, userID, at, announce, removed)
}

// TestFailedLeaveNotCountedStoreError: a leave the store fails to make
// does not count either.
func TestFailedLeaveNotCountedStoreError(t *testing.T) {
	st := &failingLeaves{}
	ts := newTestServer(t, withChat(func(c *chat.Config) { c.RoomLeavesPerHour = 1 }),
		withStore(func(s chat.Store) chat.Store { st.Store = s; return st }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	st.down.Store(true)
	for i := range 3 {
		r := ts.do(t, ada, "DELETE", roomPath(room.ID, "/members/me"), nil)
		wantError(t, fmt.Sprintf("leave %d with the store failing", i), r, http.StatusInternalServerError, chat.CodeInternal)
	}
	st.down.Store(false)
	ts.mustDo(t, ada, "DELETE", roomPath(room.ID, "/members/me"), nil, http.StatusNoContent, nil)
}
