package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
)

// publicUserCols selects a chat.User from users u without its email.
const publicUserCols = `u.id, '', u.name, u.created_at, u.name_version`

// lockPair locks the rows of users a and b, in id order, until the
// transaction ends, so that the changes of one relation serialize (SQLite
// gets this from its single writer); chat.ErrNotFound unless both exist.
func lockPair(ctx context.Context, tx pgx.Tx, a, b int64) error {
	var n int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT 1 FROM users WHERE id = $1 OR id = $2 ORDER BY id FOR NO KEY UPDATE) l`, a, b).Scan(&n)
	if err == nil && n != 2 {
		return chat.ErrNotFound
	}
	return err
}

func isBlocked(ctx context.Context, q querier, a, b int64) (bool, error) {
	var blocked bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM blocks
		WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1))`, a, b).Scan(&blocked)
	return blocked, err
}

// contactState returns a's state towards b, "" if none.
func contactState(ctx context.Context, q querier, a, b int64) (string, error) {
	var state string
	err := q.QueryRow(ctx, `SELECT state FROM contacts WHERE user_id = $1 AND other_id = $2`, a, b).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return state, err
}

func scanContact(s scanner) (chat.Contact, error) {
	var c chat.Contact
	if err := s.Scan(&c.User.ID, &c.User.Email, &c.User.Name, &c.User.CreatedAt, &c.User.NameVersion, &c.State, &c.Since); err != nil {
		return chat.Contact{}, err
	}
	c.User.CreatedAt, c.Since = utc(c.User.CreatedAt), utc(c.Since)
	return c, nil
}

// contact returns me's contact for other.
func contact(ctx context.Context, q querier, me, other int64) (chat.Contact, error) {
	return scanContact(q.QueryRow(ctx, `SELECT `+publicUserCols+`, c.state, c.since
		FROM contacts c JOIN users u ON u.id = c.other_id
		WHERE c.user_id = $1 AND c.other_id = $2`, me, other))
}

// befriend makes a and b friends since at.
func befriend(ctx context.Context, tx pgx.Tx, a, b int64, at time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE contacts SET state = 'friends', since = $1
		WHERE (user_id = $2 AND other_id = $3) OR (user_id = $3 AND other_id = $2)`, ts(at), a, b)
	return err
}

// roomForFriends returns chat.ErrTooManyFriends if limit is positive and a
// or b has limit friends. The rows of both users are locked (lockPair), as
// every change of their relations locks them: the counts hold until the
// commit.
func roomForFriends(ctx context.Context, tx pgx.Tx, a, b int64, limit int) error {
	if limit <= 0 {
		return nil
	}
	var n int
	err := tx.QueryRow(ctx, `SELECT greatest(
		(SELECT count(*) FROM contacts WHERE user_id = $1 AND state = 'friends'),
		(SELECT count(*) FROM contacts WHERE user_id = $2 AND state = 'friends'))`, a, b).Scan(&n)
	if err != nil {
		return err
	}
	return chat.FriendLimits{MaxFriends: limit}.Check(n, 0)
}

// roomForRequest returns chat.ErrTooManyFriends or ErrTooManyRequests if
// a new request from user from would go past lim. from's row is locked
// (lockPair), as every change of from's relations locks it.
func roomForRequest(ctx context.Context, tx pgx.Tx, from int64, lim chat.FriendLimits) error {
	var friends, pending int
	err := tx.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE state = 'friends'), count(*) FILTER (WHERE state = 'request_sent')
		FROM contacts WHERE user_id = $1`, from).Scan(&friends, &pending)
	if err != nil {
		return err
	}
	return lim.Check(friends, pending)
}

// roomForBlock returns chat.ErrTooManyBlocks if limit is positive and
// blocker, who has not blocked blocked yet, has blocked limit users.
// blocker's row is locked (lockPair), as every block by blocker locks it:
// the count holds until the commit.
func roomForBlock(ctx context.Context, tx pgx.Tx, blocker, blocked int64, limit int) error {
	if limit <= 0 {
		return nil
	}
	var n, again int
	err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE blocked_id = $1)
		FROM blocks WHERE blocker_id = $2`, blocked, blocker).Scan(&n, &again)
	if err != nil {
		return err
	}
	if again == 0 && n >= limit {
		return chat.ErrTooManyBlocks
	}
	return nil
}

func unrelate(ctx context.Context, tx pgx.Tx, a, b int64) error {
	_, err := tx.Exec(ctx, `DELETE FROM contacts
		WHERE (user_id = $1 AND other_id = $2) OR (user_id = $2 AND other_id = $1)`, a, b)
	return err
}

// RequestFriend asks to for friendship on behalf of from, or accepts to's
// request to from.
func (db *DB) RequestFriend(ctx context.Context, from, to int64, at time.Time, lim chat.FriendLimits) (c chat.Contact, changed bool, err error) {
	if from == to {
		return chat.Contact{}, false, fmt.Errorf("request friend %d → %d: %w", from, to, chat.ErrInvalid)
	}
	err = db.write(ctx, func(tx pgx.Tx) error {
		changed = false
		if err := lockPair(ctx, tx, from, to); err != nil {
			return err
		}
		blocked, err := isBlocked(ctx, tx, from, to)
		if err != nil {
			return err
		}
		if blocked {
			return chat.ErrForbidden
		}
		state, err := contactState(ctx, tx, from, to)
		if err != nil {
			return err
		}
		switch state {
		case "":
			if err := roomForRequest(ctx, tx, from, lim); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO contacts (user_id, other_id, state, since)
				VALUES ($1, $2, 'request_sent', $3), ($2, $1, 'request_received', $3)`,
				from, to, ts(at)); err != nil {
				return err
			}
			changed = true
		case chat.StateRequestReceived:
			if err := roomForFriends(ctx, tx, from, to, lim.MaxFriends); err != nil {
				return err
			}
			if err := befriend(ctx, tx, from, to, at); err != nil {
				return err
			}
			changed = true
		}
		c, err = contact(ctx, tx, from, to)
		return err
	})
	if err != nil {
		return chat.Contact{}, false, fmt.Errorf("request friend %d → %d: %w", from, to, err)
	}
	return c, changed, nil
}

// AcceptFriend accepts from's request to me.
func (db *DB) AcceptFriend(ctx context.Context, me, from int64, at time.Time, maxFriends int) (chat.Contact, error) {
	var c chat.Contact
	err := db.write(ctx, func(tx pgx.Tx) error {
		if err := lockPair(ctx, tx, me, from); err != nil {
			return err
		}
		state, err := contactState(ctx, tx, me, from)
		if err != nil {
			return err
		}
		if state != chat.StateRequestReceived {
			return chat.ErrNotFound
		}
		if err := roomForFriends(ctx, tx, me, from, maxFriends); err != nil {
			return err
		}
		if err := befriend(ctx, tx, me, from, at); err != nil {
			return err
		}
		c, err = contact(ctx, tx, me, from)
		return err
	})
	if err != nil {
		return chat.Contact{}, fmt.Errorf("accept friend %d → %d: %w", from, me, err)
	}
	return c, nil
}

// RemoveContact ends any relation between a and b.
func (db *DB) RemoveContact(ctx context.Context, a, b int64) (string, error) {
	var prev string
	err := db.write(ctx, func(tx pgx.Tx) error {
		prev = ""
		if err := lockPair(ctx, tx, a, b); errors.Is(err, chat.ErrNotFound) {
			return nil // no user, no relation
		} else if err != nil {
			return err
		}
		var err error
		if prev, err = contactState(ctx, tx, a, b); err != nil {
			return err
		}
		return unrelate(ctx, tx, a, b)
	})
	if err != nil {
		return "", fmt.Errorf("remove contact %d – %d: %w", a, b, err)
	}
	return prev, nil
}

// Contacts lists me's friends and requests by name.
func (db *DB) Contacts(ctx context.Context, me int64) ([]chat.Contact, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+publicUserCols+`, c.state, c.since
		FROM contacts c JOIN users u ON u.id = c.other_id
		WHERE c.user_id = $1
		ORDER BY u.name_key, u.id`, me)
	var cs []chat.Contact
	if err == nil {
		cs, err = collectRows(rows, scanContact)
	}
	if err != nil {
		return nil, fmt.Errorf("list contacts of %d: %w", me, mapErr(ctx, err))
	}
	return cs, nil
}

// Block records that blocker blocks blocked and ends their relation.
func (db *DB) Block(ctx context.Context, blocker, blocked int64, at time.Time, maxBlocks int) (string, error) {
	if blocker == blocked {
		return "", fmt.Errorf("block %d → %d: %w", blocker, blocked, chat.ErrInvalid)
	}
	var prev string
	err := db.write(ctx, func(tx pgx.Tx) error {
		prev = ""
		if err := lockPair(ctx, tx, blocker, blocked); err != nil {
			return err
		}
		if err := roomForBlock(ctx, tx, blocker, blocked, maxBlocks); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, blocker, blocked, ts(at))
		if err != nil {
			return err
		}
		if prev, err = contactState(ctx, tx, blocker, blocked); err != nil {
			return err
		}
		if prev == "" && tag.RowsAffected() == 0 {
			prev = chat.StateBlocked
		}
		return unrelate(ctx, tx, blocker, blocked)
	})
	if err != nil {
		return "", fmt.Errorf("block %d → %d: %w", blocker, blocked, err)
	}
	return prev, nil
}

// Unblock removes blocker's block of blocked.
func (db *DB) Unblock(ctx context.Context, blocker, blocked int64) (bool, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2`, blocker, blocked)
	if err != nil {
		return false, fmt.Errorf("unblock %d → %d: %w", blocker, blocked, mapErr(ctx, err))
	}
	return tag.RowsAffected() > 0, nil
}

// Blocked lists the users me blocked, by name.
func (db *DB) Blocked(ctx context.Context, me int64) ([]chat.User, error) {
	us, err := db.queryUsers(ctx, `SELECT `+publicUserCols+`
		FROM blocks b JOIN users u ON u.id = b.blocked_id
		WHERE b.blocker_id = $1
		ORDER BY u.name_key, u.id`, me)
	if err != nil {
		return nil, fmt.Errorf("list users blocked by %d: %w", me, err)
	}
	return us, nil
}

// acquaintancesSQL selects the contacts of user $1, the peers of their $2
// most recently active direct conversations and the $2 users who blocked
// them last; UNION keeps each once.
const acquaintancesSQL = `SELECT other_id FROM contacts WHERE user_id = $1
	UNION
	SELECT user_id FROM (SELECT pm.user_id
		FROM members m JOIN conversations c ON c.id = m.conv_id
		JOIN members pm ON pm.conv_id = c.id AND pm.user_id <> m.user_id
		WHERE m.user_id = $1 AND c.kind = 'direct'
		ORDER BY c.last_active_at DESC, c.id DESC LIMIT $2) d
	UNION
	SELECT blocker_id FROM (SELECT blocker_id FROM blocks WHERE blocked_id = $1
		ORDER BY created_at DESC, blocker_id DESC LIMIT $2) b`

// Acquaintances lists the users whose lists show userID's name, in one
// statement.
func (db *DB) Acquaintances(ctx context.Context, userID int64, limit int) ([]int64, error) {
	rows, err := db.pool.Query(ctx, acquaintancesSQL, userID, limit)
	var ids []int64
	if err == nil {
		ids, err = collectRows(rows, func(s scanner) (int64, error) {
			var id int64
			err := s.Scan(&id)
			return id, err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("list acquaintances of %d: %w", userID, mapErr(ctx, err))
	}
	return ids, nil
}

// IsBlocked reports whether a blocked b or b blocked a.
func (db *DB) IsBlocked(ctx context.Context, a, b int64) (bool, error) {
	blocked, err := isBlocked(ctx, db.pool, a, b)
	if err != nil {
		return false, fmt.Errorf("check block %d – %d: %w", a, b, mapErr(ctx, err))
	}
	return blocked, nil
}

// AreFriends reports whether a and b are friends.
func (db *DB) AreFriends(ctx context.Context, a, b int64) (bool, error) {
	state, err := contactState(ctx, db.pool, a, b)
	if err != nil {
		return false, fmt.Errorf("check friends %d – %d: %w", a, b, mapErr(ctx, err))
	}
	return state == chat.StateFriends, nil
}

// maxRune is the greatest code point: key + maxRune bounds, in byte-wise
// (COLLATE "C") UTF-8 order, every key that starts with key.
const maxRune = "\U0010FFFF"

// SearchUsers finds users by exact email or name prefix, leaving out the
// viewer and users blocked either way.
func (db *DB) SearchUsers(ctx context.Context, q chat.UserSearch) ([]chat.User, error) {
	if q.Limit <= 0 {
		q.Limit = chat.SearchLimit
	}
	if storable(q.Email) != nil || storable(q.NamePrefix) != nil {
		return []chat.User{}, nil // no stored user has such an email or name
	}
	lo := nameKey(q.NamePrefix)
	us, err := db.queryUsers(ctx, `SELECT `+publicUserCols+` FROM users u
		WHERE (u.email = $1 OR ($2 <> '' AND u.name_key >= $2 AND u.name_key < $3))
		AND u.id <> $4
		AND NOT EXISTS (SELECT 1 FROM blocks b
			WHERE (b.blocker_id = $4 AND b.blocked_id = u.id) OR (b.blocker_id = u.id AND b.blocked_id = $4))
		ORDER BY u.email = $1 DESC, u.name_key, u.id
		LIMIT $5`, q.Email, lo, lo+maxRune, q.Viewer, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	return us, nil
}
