package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
)

// SetLastSeen records when userID was last connected.
func (db *DB) SetLastSeen(ctx context.Context, userID int64, at time.Time) error {
	if _, err := db.pool.Exec(ctx, `UPDATE users SET last_seen_at = $1 WHERE id = $2 AND (last_seen_at IS NULL OR last_seen_at < $1)`, ts(at), userID); err != nil {
		return fmt.Errorf("set last seen of user %d: %w", userID, mapErr(ctx, err))
	}
	return nil
}

// LastSeen returns the last-seen times of those of ids that have one.
func (db *DB) LastSeen(ctx context.Context, ids []int64) (map[int64]time.Time, error) {
	seen := make(map[int64]time.Time)
	if len(ids) == 0 {
		return seen, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT id, last_seen_at FROM users
		WHERE id = ANY($1) AND last_seen_at IS NOT NULL`, ids)
	if err == nil {
		_, err = collectRows(rows, func(s scanner) (struct{}, error) {
			var id int64
			var at time.Time
			err := s.Scan(&id, &at)
			seen[id] = utc(at)
			return struct{}{}, err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("load last seen: %w", mapErr(ctx, err))
	}
	return seen, nil
}

// ReadPositions lists the read positions of convID's members by user id.
func (db *DB) ReadPositions(ctx context.Context, convID int64) ([]chat.ReadPosition, error) {
	rows, err := db.pool.Query(ctx, `SELECT user_id, read_seq FROM members WHERE conv_id = $1 ORDER BY user_id`, convID)
	var ps []chat.ReadPosition
	if err == nil {
		ps, err = collectRows(rows, func(s scanner) (chat.ReadPosition, error) {
			var p chat.ReadPosition
			err := s.Scan(&p.UserID, &p.Seq)
			return p, err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("load read positions of conversation %d: %w", convID, mapErr(ctx, err))
	}
	return ps, nil
}

// AppendUserEvent stores ev as userID's next event. Incrementing the
// user's event_seq locks the user's row until the commit, so concurrent
// appends number their events one after another.
func (db *DB) AppendUserEvent(ctx context.Context, userID int64, ev chat.Event, at time.Time) (logged chat.Event, err error) {
	err = db.write(ctx, func(tx pgx.Tx) error {
		logged, err = appendUserEvent(ctx, tx, userID, ev, at)
		return err
	})
	if err != nil {
		return chat.Event{}, fmt.Errorf("append event of user %d: %w", userID, err)
	}
	return logged, nil
}

// AppendMemberEvent stores ev as userID's next event if userID is a
// member of conversation convID. It locks the conversation's row first,
// as every change of its membership does (qLockRoom, lockGroup), so the
// check that follows, a statement of its own, sees the last change made.
func (db *DB) AppendMemberEvent(ctx context.Context, userID, convID int64, ev chat.Event, at time.Time) (logged chat.Event, member bool, err error) {
	err = db.write(ctx, func(tx pgx.Tx) error {
		logged, member = chat.Event{}, false
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM conversations WHERE id = $1 FOR NO KEY UPDATE`, convID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // gone: no member
		}
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM members WHERE conv_id = $1 AND user_id = $2)`,
			convID, userID).Scan(&member); err != nil || !member {
			return err
		}
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
func appendUserEvent(ctx context.Context, tx pgx.Tx, userID int64, ev chat.Event, at time.Time) (chat.Event, error) {
	err := tx.QueryRow(ctx, `UPDATE users SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq`, userID).Scan(&ev.UserSeq)
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Event{}, fmt.Errorf("user %d: %w", userID, chat.ErrNotFound)
	}
	if err != nil {
		return chat.Event{}, err
	}
	p, err := json.Marshal(ev)
	if err != nil {
		return chat.Event{}, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO user_events (user_id, seq, payload, created_at) VALUES ($1, $2, $3, $4)`,
		userID, ev.UserSeq, string(p), ts(at)); err != nil {
		return chat.Event{}, err
	}
	return ev, nil
}

// payloadOf is ev as user_events stores it from a statement that numbers
// it: without a UserSeq, which UserEvents reads from the seq column.
func payloadOf(ev chat.Event) (string, error) {
	ev.UserSeq = 0
	p, err := json.Marshal(ev)
	return string(p), err
}

// UserEvents returns up to limit of userID's events after after.
func (db *DB) UserEvents(ctx context.Context, userID, after int64, limit int) ([]chat.Event, error) {
	var lim *int // NULL: no limit, as SQLite's LIMIT -1
	if limit >= 0 {
		lim = &limit
	}
	rows, err := db.pool.Query(ctx, `SELECT seq, payload FROM user_events WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		userID, after, lim)
	var evs []chat.Event
	if err == nil {
		evs, err = collectRows(rows, func(s scanner) (chat.Event, error) {
			var seq int64
			var payload string
			if err := s.Scan(&seq, &payload); err != nil {
				return chat.Event{}, err
			}
			var ev chat.Event
			if err := json.Unmarshal([]byte(payload), &ev); err != nil {
				return chat.Event{}, fmt.Errorf("decode stored event: %w", err)
			}
			ev.UserSeq = seq // the column is the number; a payload need not hold it (payloadOf)
			return ev, nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("load events of user %d: %w", userID, mapErr(ctx, err))
	}
	return evs, nil
}

// LastUserEvent returns the UserSeq of userID's newest event.
func (db *DB) LastUserEvent(ctx context.Context, userID int64) (int64, error) {
	var seq int64
	err := db.pool.QueryRow(ctx, `SELECT event_seq FROM users WHERE id = $1`, userID).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		err = chat.ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("load last event of user %d: %w", userID, mapErr(ctx, err))
	}
	return seq, nil
}

// TrimUserEvents removes up to limit of the events older than their
// user's newest keep: per user (LATERAL), a range of the primary key that
// holds only those to remove, so the events kept are never scanned, as
// a join of the two tables would. Two nodes trimming at once may pick the
// same events; each is removed once. The rows are locked in the order of
// (user, seq) first, so that two such trims never wait for each other's
// rows in a cycle.
func (db *DB) TrimUserEvents(ctx context.Context, keep, limit int) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM user_events d USING (
			SELECT user_id, seq FROM user_events WHERE (user_id, seq) IN (
				SELECT u.id, e.seq FROM users u CROSS JOIN LATERAL (
					SELECT seq FROM user_events WHERE user_id = u.id AND seq <= u.event_seq - $1 ORDER BY seq LIMIT $2) e
				WHERE u.event_seq > $1 LIMIT $2)
			ORDER BY user_id, seq FOR UPDATE) l
		WHERE d.user_id = l.user_id AND d.seq = l.seq`, keep, limit)
	if err != nil {
		return 0, fmt.Errorf("trim user events: %w", mapErr(ctx, err))
	}
	return int(tag.RowsAffected()), nil
}
