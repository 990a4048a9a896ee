package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// SetLastSeen records when userID was last connected.
func (db *DB) SetLastSeen(ctx context.Context, userID int64, at time.Time) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE users SET last_seen_at = ?1 WHERE id = ?2 AND (last_seen_at IS NULL OR last_seen_at < ?1)`, micros(at), userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("set last seen of user %d: %w", userID, err)
	}
	return nil
}

// LastSeen returns the last-seen times of those of ids that have one.
func (db *DB) LastSeen(ctx context.Context, ids []int64) (map[int64]time.Time, error) {
	seen := make(map[int64]time.Time)
	if len(ids) == 0 {
		return seen, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("load last seen: %w", err)
	}
	rows, err := db.ro.QueryContext(ctx, `SELECT id, last_seen_at FROM users
		WHERE id IN (SELECT value FROM json_each(?)) AND last_seen_at IS NOT NULL`, string(list))
	if err == nil {
		defer rows.Close()
		for rows.Next() {
			var id, at int64
			if err = rows.Scan(&id, &at); err != nil {
				break
			}
			seen[id] = fromMicros(at)
		}
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load last seen: %w", err)
	}
	return seen, nil
}

// ReadPositions lists the read positions of convID's members by user id.
func (db *DB) ReadPositions(ctx context.Context, convID int64) ([]chat.ReadPosition, error) {
	ps, err := queryAll(ctx, db.ro, `SELECT user_id, read_seq FROM members WHERE conv_id = ? ORDER BY user_id`, []any{convID},
		func(s scanner) (chat.ReadPosition, error) {
			var p chat.ReadPosition
			err := s.Scan(&p.UserID, &p.Seq)
			return p, err
		})
	if err != nil {
		return nil, fmt.Errorf("load read positions of conversation %d: %w", convID, err)
	}
	return ps, nil
}

// AppendUserEvent stores ev as userID's next event.
func (db *DB) AppendUserEvent(ctx context.Context, userID int64, ev chat.Event, at time.Time) (chat.Event, error) {
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		ev, err = appendUserEvent(ctx, tx, userID, ev, at)
		return err
	})
	if err != nil {
		return chat.Event{}, fmt.Errorf("append event of user %d: %w", userID, err)
	}
	return ev, nil
}

// AppendMemberEvent stores ev as userID's next event if userID is a
// member of conversation convID; the write transaction holds SQLite's
// write lock from its start, so no membership change comes in between.
func (db *DB) AppendMemberEvent(ctx context.Context, userID, convID int64, ev chat.Event, at time.Time) (logged chat.Event, member bool, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		logged, member = chat.Event{}, false
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM members WHERE conv_id = ? AND user_id = ?)`,
			convID, userID).Scan(&member); err != nil || !member {
			return err
		}
		var err error
		logged, err = appendUserEvent(ctx, tx, userID, ev, at)
		return err
	})
	if err != nil {
		return chat.Event{}, false, fmt.Errorf("append event of member %d of conversation %d: %w", userID, convID, err)
	}
	return logged, member, nil
}

// appendUserEvent stores ev as userID's next event in tx and returns it
// with UserSeq set; chat.ErrNotFound if the user does not exist.
func appendUserEvent(ctx context.Context, tx *sql.Tx, userID int64, ev chat.Event, at time.Time) (chat.Event, error) {
	err := tx.QueryRowContext(ctx, `UPDATE users SET event_seq = event_seq + 1 WHERE id = ? RETURNING event_seq`, userID).Scan(&ev.UserSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return chat.Event{}, fmt.Errorf("user %d: %w", userID, chat.ErrNotFound)
	}
	if err != nil {
		return chat.Event{}, err
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return chat.Event{}, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO user_events (user_id, seq, payload, created_at) VALUES (?, ?, ?, ?)`,
		userID, ev.UserSeq, string(payload), micros(at)); err != nil {
		return chat.Event{}, err
	}
	return ev, nil
}

// UserEvents returns up to limit of userID's events after after.
func (db *DB) UserEvents(ctx context.Context, userID, after int64, limit int) ([]chat.Event, error) {
	evs, err := queryAll(ctx, db.ro, `SELECT seq, payload FROM user_events WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		[]any{userID, after, limit}, func(s scanner) (chat.Event, error) {
			var seq int64
			var payload string
			var ev chat.Event
			if err := s.Scan(&seq, &payload); err != nil {
				return ev, err
			}
			if err := json.Unmarshal([]byte(payload), &ev); err != nil {
				return ev, fmt.Errorf("decode stored event: %w", err)
			}
			ev.UserSeq = seq // the column is the number; a payload need not hold it
			return ev, nil
		})
	if err != nil {
		return nil, fmt.Errorf("load events of user %d: %w", userID, err)
	}
	return evs, nil
}

// LastUserEvent returns the UserSeq of userID's newest event.
func (db *DB) LastUserEvent(ctx context.Context, userID int64) (int64, error) {
	var seq int64
	err := db.ro.QueryRowContext(ctx, `SELECT event_seq FROM users WHERE id = ?`, userID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		err = chat.ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("load last event of user %d: %w", userID, err)
	}
	return seq, nil
}

// TrimUserEvents removes up to limit of the events older than their
// user's newest keep. The users are the outer loop (CROSS JOIN keeps
// SQLite from reordering it): each one's events are found by a range of
// the primary key that holds only those to remove, so the events kept
// are never scanned.
func (db *DB) TrimUserEvents(ctx context.Context, keep, limit int) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = affected(tx.ExecContext(ctx, `DELETE FROM user_events WHERE (user_id, seq) IN (
			SELECT e.user_id, e.seq FROM users AS u CROSS JOIN user_events AS e
			WHERE u.event_seq > ?1 AND e.user_id = u.id AND e.seq <= u.event_seq - ?1
			LIMIT ?2)`, keep, limit))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("trim user events: %w", err)
	}
	return int(n), nil
}
