package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Groups (docs/protocol.md, "Groups"). With Config.Groups a run spreads
// its connections over private groups instead of rooms. Before anything
// connects, makeGroups creates them over the REST API: each is owned by
// the user of its first connection, who adds the user of every other, so
// that the membership events are in the group's sequence before anyone
// opens it and a client's base sequence number counts only the run's
// messages. A group is named PREFIX-RUN-N, RUN being the run's ID: names
// are unique among a server's groups, and a run must not use another's.
// When the run is over, deleteGroups deletes them.

// makeGroups creates a group for each of r.rooms with the users of its
// clients as members, and sets the rooms' groupIDs.
func (r *runState) makeGroups(ctx context.Context) error {
	t0 := time.Now()
	// Who is each token? A token's user is in every group one of its
	// connections is in, once.
	var firsts []*client // the first client of each distinct token
	seen := make(map[string]bool)
	for _, c := range r.clients {
		if !seen[c.token] {
			seen[c.token] = true
			firsts = append(firsts, c)
		}
	}
	r.logf("creating %d groups: looking up the users of %d sessions", len(r.rooms), len(firsts))
	var mu sync.Mutex
	userOf := make(map[string]int64, len(firsts))
	err := forEach(ctx, len(firsts), func(ctx context.Context, i int) error {
		c := firsts[i]
		var me struct {
			User struct {
				ID int64 `json:"id"`
			} `json:"user"`
		}
		if err := apiCall(ctx, r.groupHTTP, http.MethodGet, c.target+"/api/me", c.token, nil, &me, http.StatusOK); err != nil {
			return fmt.Errorf("session of client %d: %w", c.id, err)
		}
		if me.User.ID <= 0 {
			return fmt.Errorf("session of client %d: GET /api/me gave no user ID", c.id)
		}
		mu.Lock()
		userOf[c.token] = me.User.ID
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}

	type add struct {
		rm   *room
		user int64
	}
	var adds []add
	members := make([]int, len(r.rooms)) // distinct users of each group
	for i, rm := range r.rooms {
		in := make(map[int64]bool)
		for _, c := range rm.clients {
			if u := userOf[c.token]; !in[u] {
				in[u] = true
				if c != rm.clients[0] {
					adds = append(adds, add{rm, u})
				}
			}
		}
		members[i] = len(in)
	}
	// A failure stops the creations not yet begun, not those under way (the
	// run's ctx, not forEach's): one cancelled after the server created its
	// group would leave that group behind, unknown to deleteGroups.
	err = forEach(ctx, len(r.rooms), func(_ context.Context, i int) error {
		rm := r.rooms[i]
		owner := rm.clients[0]
		n := members[i]
		req := map[string]any{"name": rm.name, "max_members": max(2, n)}
		var g struct {
			Group struct {
				ID int64 `json:"id"`
			} `json:"group"`
		}
		err := apiCall(ctx, r.groupHTTP, http.MethodPost, owner.target+"/api/groups", owner.token, req, &g, http.StatusCreated)
		var se *statusError
		if errors.As(err, &se) && se.code == "invalid_field" && n > 2 {
			return fmt.Errorf("create group %s: %w (a group of this run has %d members: start the server with --max-group-members %d or more)", rm.name, err, n, n)
		}
		if err != nil {
			return fmt.Errorf("create group %s: %w", rm.name, err)
		}
		if g.Group.ID <= 0 {
			return fmt.Errorf("create group %s: the answer has no group ID", rm.name)
		}
		rm.groupID = g.Group.ID
		return nil
	})
	if err != nil {
		return err
	}
	r.logf("adding %d members to %d groups", len(adds), len(r.rooms))
	err = forEach(ctx, len(adds), func(ctx context.Context, i int) error {
		a := adds[i]
		owner := a.rm.clients[0]
		path := owner.target + "/api/groups/" + strconv.FormatInt(a.rm.groupID, 10) + "/members"
		err := apiCall(ctx, r.groupHTTP, http.MethodPost, path, owner.token, map[string]int64{"user_id": a.user}, nil, http.StatusOK)
		var se *statusError
		if errors.As(err, &se) && se.status == http.StatusTooManyRequests {
			// Each add is one of the owner's REST sends: a large group
			// needs more of them than the server's defaults allow soon.
			// The run's users are not the owner's friends: each add also
			// counts, across the cluster, against the owner's adds of
			// strangers an hour and the user's adds by strangers a day.
			// The server's defaults, 200 and 20, allow groups of up to
			// 201 members, in up to 20 runs a day with the same users
			// (scripts/bench.sh starts a fresh server for each run).
			return fmt.Errorf("add user %d to group %s: %w (start the server with a higher --send-rate and --send-burst: each add is one of the owner's REST sends; "+
				"or, if the server says so, a higher --stranger-adds-per-hour or --adds-by-strangers-per-day: the run's users are not the owner's friends)", a.user, a.rm.name, err)
		}
		if err != nil {
			return fmt.Errorf("add user %d to group %s: %w", a.user, a.rm.name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.groupSetup = time.Since(t0)
	r.logf("created %d groups of %d members in all in %.1fs", len(r.rooms), len(adds)+len(r.rooms), r.groupSetup.Seconds())
	return nil
}

// deleteGroups deletes the groups makeGroups created, as their owners;
// a failure becomes a note. It has its own deadline: it runs when the
// run's context may have ended.
func (r *runState) deleteGroups() {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	var failed atomic.Int64
	var first atomic.Pointer[error]
	_ = forEach(ctx, len(r.rooms), func(ctx context.Context, i int) error {
		rm := r.rooms[i]
		id := rm.groupID
		if id == 0 {
			return nil
		}
		owner := rm.clients[0]
		if err := apiCall(ctx, r.groupHTTP, http.MethodDelete, owner.target+"/api/groups/"+strconv.FormatInt(id, 10), owner.token, nil, nil, http.StatusNoContent); err != nil {
			failed.Add(1)
			err = fmt.Errorf("group %s: %w", rm.name, err)
			first.CompareAndSwap(nil, &err)
		}
		return nil
	})
	if n := failed.Load(); n > 0 {
		r.note("%d groups of the run were not deleted; the first: %v", n, *first.Load())
	}
}

// forEach calls fn for 0 … n-1 from up to maxConnecting goroutines at
// once, and returns the first error, after which it starts no more calls.
func forEach(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, maxConnecting) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}
