package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// kindRoom is the conversations.kind of rooms.
const kindRoom = "room"

// roomCols selects a chat.Room from conversations c. member_count is
// kept by triggers (migration 0006), so that loading a room, as every send
// does, costs the same whatever its size.
const roomCols = `c.id, c.name, c.created_at, c.last_seq, c.last_active_at, c.member_count`

// scanRoom scans roomCols, then extra.
func scanRoom(s scanner, extra ...any) (chat.Room, error) {
	var r chat.Room
	var created, active int64
	dest := append([]any{&r.ID, &r.Name, &created, &r.LastSeq, &active, &r.Members}, extra...)
	if err := s.Scan(dest...); err != nil {
		return chat.Room{}, err
	}
	r.CreatedAt, r.LastActiveAt = fromMicros(created), fromMicros(active)
	return r, nil
}

// nameKey is the form of a room name that is unique: names that differ
// only in case name one room (chat.NameKey).
func nameKey(name string) string { return chat.NameKey(name) }

// nameClash returns the conflict of giving name to a conversation of
// kind (not id): ErrNameTaken if another's name differs from it at most
// in case, a *chat.LookAlikeError if another's has its skeleton
// (chat.NameSkeleton, the column name_skel, unique per kind); nil if
// none.
func nameClash(ctx context.Context, tx *sql.Tx, kind, name string, id int64) error {
	var same bool
	var other string
	err := tx.QueryRowContext(ctx, `SELECT name_key = ?, name FROM conversations
		WHERE kind = ? AND id <> ? AND (name_key = ? OR name_skel = ?)
		ORDER BY name_key = ? DESC LIMIT 1`,
		nameKey(name), kind, id, nameKey(name), chat.NameSkeleton(name), nameKey(name)).Scan(&same, &other)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	return chat.NameClash(same, other)
}

// EnsureRoom returns the room called name, or whose name differs from it
// only in case, creating it when absent (created); a *chat.LookAlikeError
// if it is absent and another room's name has its skeleton.
func (db *DB) EnsureRoom(ctx context.Context, name string, at time.Time) (r chat.Room, created bool, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		created = false
		// Without a target: a name taken (name_key) and a look-alike
		// (name_skel) both leave the row out.
		n, err := affected(tx.ExecContext(ctx, `INSERT INTO conversations (kind, name, name_key, name_skel, created_at, last_active_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`,
			kindRoom, name, nameKey(name), chat.NameSkeleton(name), micros(at), micros(at)))
		if err != nil {
			return err
		}
		r, err = roomByName(ctx, tx, name)
		if errors.Is(err, chat.ErrNotFound) {
			if clash := nameClash(ctx, tx, kindRoom, name, 0); clash != nil {
				return clash
			}
		}
		created = err == nil && n > 0
		return err
	})
	if err != nil {
		return chat.Room{}, false, fmt.Errorf("ensure room %q: %w", name, err)
	}
	return r, created, nil
}

// Room returns room id.
func (db *DB) Room(ctx context.Context, id int64) (chat.Room, error) {
	r, err := scanRoom(db.ro.QueryRowContext(ctx, `SELECT `+roomCols+` FROM conversations c WHERE c.id = ? AND c.kind = ?`, id, kindRoom))
	if errors.Is(err, sql.ErrNoRows) {
		err = chat.ErrNotFound
	}
	if err != nil {
		return chat.Room{}, fmt.Errorf("load room %d: %w", id, err)
	}
	return r, nil
}

// RoomByName returns the room called name, ignoring case.
func (db *DB) RoomByName(ctx context.Context, name string) (chat.Room, error) {
	r, err := roomByName(ctx, db.ro, name)
	if err != nil {
		return chat.Room{}, fmt.Errorf("load room %q: %w", name, err)
	}
	return r, nil
}

func roomByName(ctx context.Context, tx querier, name string) (chat.Room, error) {
	r, err := scanRoom(tx.QueryRowContext(ctx, `SELECT `+roomCols+` FROM conversations c WHERE c.kind = ? AND c.name_key = ?`,
		kindRoom, nameKey(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return chat.Room{}, chat.ErrNotFound
	}
	return r, err
}

// checkRoom returns chat.ErrNotFound unless room id exists.
func checkRoom(ctx context.Context, tx *sql.Tx, id int64) error {
	var ok bool
	err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE id = ? AND kind = ?)`, id, kindRoom).Scan(&ok)
	if err == nil && !ok {
		return fmt.Errorf("room %d: %w", id, chat.ErrNotFound)
	}
	return err
}

// JoinRoom makes userID a member of room roomID and, if announce, appends
// a KindJoin message; joined is false if userID was a member already. It
// returns chat.ErrNotFound if the room or the user does not exist.
func (db *DB) JoinRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool) (m chat.Message, joined bool, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		m, joined = chat.Message{}, false
		if err := checkRoom(ctx, tx, roomID); err != nil {
			return err
		}
		if _, err := userByID(ctx, tx, userID); err != nil {
			return fmt.Errorf("user %d: %w", userID, err)
		}
		// Read up to the last message: what the join message would do.
		res, err := tx.ExecContext(ctx, `INSERT INTO members (conv_id, user_id, joined_at, read_seq)
			VALUES (?, ?, ?, (SELECT last_seq FROM conversations WHERE id = ?))
			ON CONFLICT (conv_id, user_id) DO NOTHING`, roomID, userID, micros(at), roomID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 { // n == 0: a member already
			return err
		}
		if !announce {
			joined = true
			return nil
		}
		m, _, err = appendMessage(ctx, tx, chat.NewMessage{ConvID: roomID, Kind: chat.KindJoin, SenderID: userID, At: at})
		joined = err == nil
		return err
	})
	if err != nil {
		return chat.Message{}, false, fmt.Errorf("join room %d as user %d: %w", roomID, userID, err)
	}
	return m, joined, nil
}

// LeaveRoom ends the membership of userID in room roomID and, if
// announce, appends a KindLeave message; left is false if userID was not a
// member. It returns chat.ErrNotFound if the room does not exist.
func (db *DB) LeaveRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool, removed chat.Event) (m chat.Message, logged chat.Event, left bool, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		m, logged, left = chat.Message{}, chat.Event{}, false
		if err := checkRoom(ctx, tx, roomID); err != nil {
			return err
		}
		n, err := affected(tx.ExecContext(ctx, `DELETE FROM members WHERE conv_id = ? AND user_id = ?`, roomID, userID))
		if err != nil || n == 0 { // n == 0: not a member
			return err
		}
		if announce {
			if m, _, err = appendMessage(ctx, tx, chat.NewMessage{ConvID: roomID, Kind: chat.KindLeave, SenderID: userID, At: at}); err != nil {
				return err
			}
		}
		logged, err = appendUserEvent(ctx, tx, userID, removed, at)
		left = err == nil
		return err
	})
	if err != nil {
		return chat.Message{}, chat.Event{}, false, fmt.Errorf("leave room %d as user %d: %w", roomID, userID, err)
	}
	return m, logged, left, nil
}

// IsMember reports whether userID is a member of room roomID.
func (db *DB) IsMember(ctx context.Context, roomID, userID int64) (bool, error) {
	var ok bool
	err := db.ro.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM members WHERE conv_id = ? AND user_id = ?)`,
		roomID, userID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check member %d of room %d: %w", userID, roomID, err)
	}
	return ok, nil
}

// UserRooms lists the rooms userID belongs to, most recently active first.
func (db *DB) UserRooms(ctx context.Context, userID int64) ([]chat.Room, error) {
	rs, err := db.queryRooms(ctx, `SELECT `+roomCols+`
		FROM members m JOIN conversations c ON c.id = m.conv_id
		WHERE m.user_id = ? AND c.kind = ?
		ORDER BY c.last_active_at DESC, c.id DESC`, false, userID, kindRoom)
	if err != nil {
		return nil, fmt.Errorf("list rooms of user %d: %w", userID, err)
	}
	return rs, nil
}

// ActiveRooms lists up to limit rooms with text messages since since, most
// such messages first (Room.Recent), then most recently active first.
func (db *DB) ActiveRooms(ctx context.Context, since time.Time, limit int) ([]chat.Room, error) {
	if limit <= 0 {
		limit = chat.DefaultActiveRooms
	}
	// kind = 'text' and +conv_id let SQLite count from the index
	// messages_text_created_at instead of scanning every message;
	// CROSS JOIN makes it look up only the rooms it counted.
	rs, err := db.queryRooms(ctx, `SELECT `+roomCols+`, a.recent
		FROM (
			SELECT conv_id, count(*) AS recent FROM messages
			WHERE kind = 'text' AND created_at >= ?
			GROUP BY +conv_id
		) a CROSS JOIN conversations c ON c.id = a.conv_id
		WHERE c.kind = ?
		ORDER BY a.recent DESC, c.last_active_at DESC, c.id DESC
		LIMIT ?`, true, micros(since), kindRoom, limit)
	if err != nil {
		return nil, fmt.Errorf("list active rooms: %w", err)
	}
	return rs, nil
}

// queryRooms runs a query selecting roomCols and, if recent, a count for
// Room.Recent, on a read connection.
func (db *DB) queryRooms(ctx context.Context, query string, recent bool, args ...any) ([]chat.Room, error) {
	return queryAll(ctx, db.ro, query, args, func(s scanner) (chat.Room, error) {
		var n int
		var extra []any
		if recent {
			extra = append(extra, &n)
		}
		r, err := scanRoom(s, extra...)
		r.Recent = n
		return r, err
	})
}
