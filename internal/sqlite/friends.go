package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// publicUserCols selects a chat.User from users u without its email.
const publicUserCols = `u.id, '', u.name, u.created_at, u.name_version`

// nameKeyBackfill sets users.name_key with Go's case folding, which SQLite's
// lower() does for ASCII only (migration 0002).
func nameKeyBackfill(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, name FROM users WHERE name <> ''`)
	if err != nil {
		return err
	}
	type row struct {
		id   int64
		name string
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.name); err != nil {
			rows.Close()
			return err
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range all {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET name_key = ? WHERE id = ?`, nameKey(r.name), r.id); err != nil {
			return err
		}
	}
	return nil
}

// userExists returns chat.ErrNotFound unless user id exists.
func userExists(ctx context.Context, tx *sql.Tx, id int64) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return chat.ErrNotFound
	}
	return err
}

func isBlocked(ctx context.Context, tx querier, a, b int64) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM blocks
		WHERE (blocker_id = ? AND blocked_id = ?) OR (blocker_id = ? AND blocked_id = ?)`, a, b, b, a).Scan(&n)
	return n > 0, err
}

// contactState returns a's state towards b, "" if none.
func contactState(ctx context.Context, tx querier, a, b int64) (string, error) {
	var state string
	err := tx.QueryRowContext(ctx, `SELECT state FROM contacts WHERE user_id = ? AND other_id = ?`, a, b).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return state, err
}

// contact returns me's contact for other.
func contact(ctx context.Context, tx *sql.Tx, me, other int64) (chat.Contact, error) {
	return scanContact(tx.QueryRowContext(ctx, `SELECT `+publicUserCols+`, c.state, c.since
		FROM contacts c JOIN users u ON u.id = c.other_id
		WHERE c.user_id = ? AND c.other_id = ?`, me, other))
}

// scanContact scans a contact: publicUserCols, then the state and since.
func scanContact(s scanner) (chat.Contact, error) {
	var c chat.Contact
	var created, since int64
	if err := s.Scan(&c.User.ID, &c.User.Email, &c.User.Name, &created, &c.User.NameVersion, &c.State, &since); err != nil {
		return chat.Contact{}, err
	}
	c.User.CreatedAt, c.Since = fromMicros(created), fromMicros(since)
	return c, nil
}

// befriend makes a and b friends since at.
func befriend(ctx context.Context, tx *sql.Tx, a, b int64, at time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE contacts SET state = 'friends', since = ?
		WHERE (user_id = ? AND other_id = ?) OR (user_id = ? AND other_id = ?)`, micros(at), a, b, b, a)
	return err
}

// roomForFriends returns chat.ErrTooManyFriends if limit is positive and a
// or b has limit friends.
func roomForFriends(ctx context.Context, tx *sql.Tx, a, b int64, limit int) error {
	if limit <= 0 {
		return nil
	}
	var n int
	err := tx.QueryRowContext(ctx, `SELECT max(
		(SELECT count(*) FROM contacts WHERE user_id = ?1 AND state = 'friends'),
		(SELECT count(*) FROM contacts WHERE user_id = ?2 AND state = 'friends'))`, a, b).Scan(&n)
	if err != nil {
		return err
	}
	return chat.FriendLimits{MaxFriends: limit}.Check(n, 0)
}

// roomForRequest returns chat.ErrTooManyFriends or ErrTooManyRequests if
// a new request from user from would go past lim.
func roomForRequest(ctx context.Context, tx *sql.Tx, from int64, lim chat.FriendLimits) error {
	var friends, pending int
	err := tx.QueryRowContext(ctx, `SELECT
		count(*) FILTER (WHERE state = 'friends'), count(*) FILTER (WHERE state = 'request_sent')
		FROM contacts WHERE user_id = ?`, from).Scan(&friends, &pending)
	if err != nil {
		return err
	}
	return lim.Check(friends, pending)
}

// roomForBlock returns chat.ErrTooManyBlocks if limit is positive and
// blocker, who has not blocked blocked yet, has blocked limit users.
func roomForBlock(ctx context.Context, tx *sql.Tx, blocker, blocked int64, limit int) error {
	if limit <= 0 {
		return nil
	}
	var n, again int
	err := tx.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE blocked_id = ?)
		FROM blocks WHERE blocker_id = ?`, blocked, blocker).Scan(&n, &again)
	if err != nil {
		return err
	}
	if again == 0 && n >= limit {
		return chat.ErrTooManyBlocks
	}
	return nil
}

func unrelate(ctx context.Context, tx *sql.Tx, a, b int64) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM contacts
		WHERE (user_id = ? AND other_id = ?) OR (user_id = ? AND other_id = ?)`, a, b, b, a)
	return err
}

// RequestFriend asks to for friendship on behalf of from, or accepts to's
// request to from.
func (db *DB) RequestFriend(ctx context.Context, from, to int64, at time.Time, lim chat.FriendLimits) (c chat.Contact, changed bool, err error) {
	if from == to {
		return chat.Contact{}, false, fmt.Errorf("request friend %d → %d: %w", from, to, chat.ErrInvalid)
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		if err := userExists(ctx, tx, to); err != nil {
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
			if _, err := tx.ExecContext(ctx, `INSERT INTO contacts (user_id, other_id, state, since)
				VALUES (?, ?, 'request_sent', ?), (?, ?, 'request_received', ?)`,
				from, to, micros(at), to, from, micros(at)); err != nil {
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
	err := db.write(ctx, func(tx *sql.Tx) error {
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
	err := db.write(ctx, func(tx *sql.Tx) error {
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
	cs, err := queryAll(ctx, db.ro, `SELECT `+publicUserCols+`, c.state, c.since
		FROM contacts c JOIN users u ON u.id = c.other_id
		WHERE c.user_id = ?
		ORDER BY u.name_key, u.id`, []any{me}, scanContact)
	if err != nil {
		return nil, fmt.Errorf("list contacts of %d: %w", me, err)
	}
	return cs, nil
}

// Block records that blocker blocks blocked and ends their relation. A
// block already recorded answers chat.StateBlocked.
func (db *DB) Block(ctx context.Context, blocker, blocked int64, at time.Time, maxBlocks int) (string, error) {
	if blocker == blocked {
		return "", fmt.Errorf("block %d → %d: %w", blocker, blocked, chat.ErrInvalid)
	}
	var prev string
	err := db.write(ctx, func(tx *sql.Tx) error {
		if err := userExists(ctx, tx, blocked); err != nil {
			return err
		}
		if err := roomForBlock(ctx, tx, blocker, blocked, maxBlocks); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, blocker, blocked, micros(at))
		if err != nil {
			return err
		}
		added, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if prev, err = contactState(ctx, tx, blocker, blocked); err != nil {
			return err
		}
		if prev == "" && added == 0 {
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
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?`, blocker, blocked)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("unblock %d → %d: %w", blocker, blocked, err)
	}
	return n > 0, nil
}

// Blocked lists the users me blocked, by name.
func (db *DB) Blocked(ctx context.Context, me int64) ([]chat.User, error) {
	us, err := db.queryUsers(ctx, `SELECT `+publicUserCols+`
		FROM blocks b JOIN users u ON u.id = b.blocked_id
		WHERE b.blocker_id = ?
		ORDER BY u.name_key, u.id`, me)
	if err != nil {
		return nil, fmt.Errorf("list users blocked by %d: %w", me, err)
	}
	return us, nil
}

// acquaintancesSQL selects the contacts of user $1, the peers of their $3
// most recently active direct conversations and the $5 users who blocked
// them last; UNION keeps each once.
const acquaintancesSQL = `SELECT other_id FROM contacts WHERE user_id = ?
	UNION
	SELECT user_id FROM (SELECT pm.user_id
		FROM members m JOIN conversations c ON c.id = m.conv_id
		JOIN members pm ON pm.conv_id = c.id AND pm.user_id <> m.user_id
		WHERE m.user_id = ? AND c.kind = 'direct'
		ORDER BY c.last_active_at DESC, c.id DESC LIMIT ?) d
	UNION
	SELECT blocker_id FROM (SELECT blocker_id FROM blocks WHERE blocked_id = ?
		ORDER BY created_at DESC, blocker_id DESC LIMIT ?) b`

// Acquaintances lists the users whose lists show userID's name, in one
// statement.
func (db *DB) Acquaintances(ctx context.Context, userID int64, limit int) ([]int64, error) {
	ids, err := queryAll(ctx, db.ro, acquaintancesSQL, []any{userID, userID, limit, userID, limit},
		func(s scanner) (int64, error) {
			var id int64
			err := s.Scan(&id)
			return id, err
		})
	if err != nil {
		return nil, fmt.Errorf("list acquaintances of %d: %w", userID, err)
	}
	return ids, nil
}

// IsBlocked reports whether a blocked b or b blocked a.
func (db *DB) IsBlocked(ctx context.Context, a, b int64) (bool, error) {
	blocked, err := isBlocked(ctx, db.ro, a, b)
	if err != nil {
		return false, fmt.Errorf("check block %d – %d: %w", a, b, err)
	}
	return blocked, nil
}

// AreFriends reports whether a and b are friends.
func (db *DB) AreFriends(ctx context.Context, a, b int64) (bool, error) {
	state, err := contactState(ctx, db.ro, a, b)
	if err != nil {
		return false, fmt.Errorf("check friends %d – %d: %w", a, b, err)
	}
	return state == chat.StateFriends, nil
}

// maxRune is the greatest code point: key + maxRune bounds, in SQLite's
// binary (byte-wise UTF-8) order, every key that starts with key.
const maxRune = "\U0010FFFF"

// SearchUsers finds users by exact email or name prefix, leaving out the
// viewer and users blocked either way.
func (db *DB) SearchUsers(ctx context.Context, q chat.UserSearch) ([]chat.User, error) {
	if q.Limit <= 0 {
		q.Limit = chat.SearchLimit
	}
	lo := nameKey(q.NamePrefix)
	us, err := db.queryUsers(ctx, `SELECT `+publicUserCols+` FROM users u
		WHERE (u.email = ?1 OR (?2 <> '' AND u.name_key >= ?2 AND u.name_key < ?3))
		AND u.id <> ?4
		AND NOT EXISTS (SELECT 1 FROM blocks b
			WHERE (b.blocker_id = ?4 AND b.blocked_id = u.id) OR (b.blocker_id = u.id AND b.blocked_id = ?4))
		ORDER BY u.email = ?1 DESC, u.name_key, u.id
		LIMIT ?5`, q.Email, lo, lo+maxRune, q.Viewer, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	return us, nil
}

// queryUsers runs a query of users on a read connection.
func (db *DB) queryUsers(ctx context.Context, query string, args ...any) ([]chat.User, error) {
	return queryAll(ctx, db.ro, query, args, scanUser)
}
