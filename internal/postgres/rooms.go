package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
)

// kindRoom is the conversations.kind of rooms.
const kindRoom = "room"

// roomCols selects a chat.Room from conversations c. member_count is
// kept by a trigger (migration 0004), so that loading a room, as every
// send does, costs the same whatever its size.
const roomCols = `c.id, c.name, c.created_at, c.last_seq, c.last_active_at, c.member_count`

// scanRoom scans roomCols, then extra.
func scanRoom(s scanner, extra ...any) (chat.Room, error) {
	var r chat.Room
	dest := append([]any{&r.ID, &r.Name, &r.CreatedAt, &r.LastSeq, &r.LastActiveAt, &r.Members}, extra...)
	if err := s.Scan(dest...); err != nil {
		return chat.Room{}, err
	}
	r.CreatedAt, r.LastActiveAt = utc(r.CreatedAt), utc(r.LastActiveAt)
	return r, nil
}

// nameClash returns the conflict of giving name to a conversation of
// kind (not id): ErrNameTaken if another's name differs from it at most
// in case, a *chat.LookAlikeError if another's has its skeleton
// (chat.NameSkeleton, the column name_skel, unique per kind); nil if none
// that the statement sees.
func nameClash(ctx context.Context, tx pgx.Tx, kind, name string, id int64) error {
	var same bool
	var other string
	err := tx.QueryRow(ctx, `SELECT name_key = $3, name FROM conversations
		WHERE kind = $1 AND id <> $2 AND (name_key = $3 OR name_skel = $4)
		ORDER BY name_key = $3 DESC LIMIT 1`,
		kind, id, nameKey(name), chat.NameSkeleton(name)).Scan(&same, &other)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
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
	if err := storable(name); err != nil {
		return chat.Room{}, false, fmt.Errorf("ensure room %q: %w", name, err)
	}
	err = db.write(ctx, func(tx pgx.Tx) error {
		created = false
		// Without a target: a name taken (name_key) and a look-alike
		// (name_skel) both leave the row out. The insert waits for one
		// being made at once, and the reads after it see it (READ
		// COMMITTED reads what was committed when each statement starts).
		tag, err := tx.Exec(ctx, `INSERT INTO conversations (kind, name, name_key, name_skel, created_at, last_active_at)
			VALUES ($1, $2, $3, $4, $5, $5)
			ON CONFLICT DO NOTHING`,
			kindRoom, name, nameKey(name), chat.NameSkeleton(name), ts(at))
		if err != nil {
			return err
		}
		r, err = roomByName(ctx, tx, name)
		if errors.Is(err, chat.ErrNotFound) {
			if clash := nameClash(ctx, tx, kindRoom, name, 0); clash != nil {
				return clash
			}
		}
		created = err == nil && tag.RowsAffected() > 0
		return err
	})
	if err != nil {
		return chat.Room{}, false, fmt.Errorf("ensure room %q: %w", name, err)
	}
	return r, created, nil
}

// Room returns room id.
func (db *DB) Room(ctx context.Context, id int64) (chat.Room, error) {
	r, err := scanRoom(db.pool.QueryRow(ctx, `SELECT `+roomCols+` FROM conversations c WHERE c.id = $1 AND c.kind = $2`, id, kindRoom))
	if errors.Is(err, pgx.ErrNoRows) {
		err = chat.ErrNotFound
	}
	if err != nil {
		return chat.Room{}, fmt.Errorf("load room %d: %w", id, mapErr(ctx, err))
	}
	return r, nil
}

// RoomByName returns the room called name, ignoring case.
func (db *DB) RoomByName(ctx context.Context, name string) (chat.Room, error) {
	r, err := roomByName(ctx, db.pool, name)
	if err != nil {
		return chat.Room{}, fmt.Errorf("load room %q: %w", name, mapErr(ctx, err))
	}
	return r, nil
}

func roomByName(ctx context.Context, q querier, name string) (chat.Room, error) {
	r, err := scanRoom(q.QueryRow(ctx, `SELECT `+roomCols+` FROM conversations c WHERE c.kind = $1 AND c.name_key = $2`,
		kindRoom, nameKey(name)))
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Room{}, chat.ErrNotFound
	}
	return r, err
}

// qLockRoom locks the row of room $1 ($2 is the kind of rooms) until the
// transaction ends, as appends do (lockConvs), so that membership changes
// and messages of the room serialize.
const qLockRoom = `SELECT 1 FROM conversations WHERE id = $1 AND kind = $2 FOR NO KEY UPDATE`

// membershipSQL changes the membership of user $2 in room $1 at $3 with
// the statement changed, which returns a row if it changed anything, and
// then, if $4, appends a message of kind $6 from the user ($5 is the kind
// of rooms). It must run after qLockRoom in the same transaction: as a new
// statement it sees the last_seq that the lock's previous holder left. It
// returns whether the room exists, the user's name (NULL if there is no
// such user), whether the membership changed, the message's seq (0 if
// none), and, with logs, the UserSeq of the event $7 (a payloadOf) that it
// keeps in the user's log if the membership changed (0 if none).
func membershipSQL(changed string, logs bool) string {
	q := `WITH room AS (
	SELECT id, last_seq FROM conversations WHERE id = $1 AND kind = $5
), usr AS (
	SELECT id, name FROM users WHERE id = $2
), changed AS (
	` + changed + `
), msg AS (
	INSERT INTO messages (conv_id, seq, kind, sender_id, created_at)
	SELECT r.id, r.last_seq + 1, $6, $2, $3 FROM room r, changed WHERE $4
	RETURNING seq
), bumped AS (
	UPDATE conversations c SET last_seq = m.seq, last_active_at = greatest(c.last_active_at, $3)
	FROM msg m WHERE c.id = $1
)`
	logged := `0`
	if logs {
		q += `, ev AS (
	UPDATE users SET event_seq = event_seq + 1 WHERE id = $2 AND EXISTS (SELECT 1 FROM changed)
	RETURNING event_seq
), logged AS (
	INSERT INTO user_events (user_id, seq, payload, created_at)
	SELECT $2, event_seq, $7::text, $3 FROM ev
)`
		logged = `coalesce((SELECT event_seq FROM ev), 0)`
	}
	return q + `
SELECT EXISTS (SELECT 1 FROM room), (SELECT name FROM usr), EXISTS (SELECT 1 FROM changed),
	coalesce((SELECT seq FROM msg), 0), ` + logged
}

// joinSQL and leaveSQL are membershipSQL for JoinRoom and LeaveRoom. A
// newcomer has read up to the room's last message, its join message
// included. A leave keeps its removed in the user's log, in the
// transaction that ends the membership: an open whose check finds the
// user a member again reads a log that has it (chat.Mark).
var (
	joinSQL = membershipSQL(`INSERT INTO members (conv_id, user_id, joined_at, read_seq)
	SELECT r.id, u.id, $3, r.last_seq + CASE WHEN $4 THEN 1 ELSE 0 END FROM room r, usr u
	ON CONFLICT (conv_id, user_id) DO NOTHING
	RETURNING conv_id`, false)
	leaveSQL = membershipSQL(`DELETE FROM members WHERE conv_id = (SELECT id FROM room) AND user_id = $2
	RETURNING conv_id`, true)
)

// JoinRoom makes userID a member of room roomID and, if announce, appends
// a KindJoin message; joined is false if userID was a member already. It
// returns chat.ErrNotFound if the room or the user does not exist.
func (db *DB) JoinRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool) (m chat.Message, joined bool, err error) {
	m, _, joined, err = db.changeMembership(ctx, joinSQL, chat.KindJoin, roomID, userID, at, announce)
	if err != nil {
		return chat.Message{}, false, fmt.Errorf("join room %d as user %d: %w", roomID, userID, err)
	}
	return m, joined, nil
}

// LeaveRoom ends the membership of userID in room roomID and, if
// announce, appends a KindLeave message; left is false if userID was not a
// member. It keeps removed in the user's log, numbered (logged). It
// returns chat.ErrNotFound if the room does not exist.
func (db *DB) LeaveRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool, removed chat.Event) (m chat.Message, logged chat.Event, left bool, err error) {
	payload, err := payloadOf(removed)
	if err == nil {
		var seq int64
		m, seq, left, err = db.changeMembership(ctx, leaveSQL, chat.KindLeave, roomID, userID, at, announce, payload)
		if left {
			logged = removed
			logged.UserSeq = seq
		}
	}
	if errors.Is(err, errNoUser) {
		return chat.Message{}, chat.Event{}, false, nil // no such user: not a member
	}
	if err != nil {
		return chat.Message{}, chat.Event{}, false, fmt.Errorf("leave room %d as user %d: %w", roomID, userID, err)
	}
	return m, logged, left, nil
}

// errNoUser is changeMembership's error for a user that does not exist.
var errNoUser = fmt.Errorf("no such user: %w", chat.ErrNotFound)

// changeMembership runs q, a membershipSQL, for userID in room roomID and
// returns the message of kind it appended, if announce, the UserSeq of
// the event it logged (with logs, whose payload is extra), and whether
// the membership changed.
//
// The room's lock and q go to the server together, without BEGIN: one
// implicit transaction and one round trip, so that the room's row stays
// locked only while the server runs them. A crowd entering one room queues
// on that row; when each join was a transaction of its own statements, it
// held the row over five round trips.
func (db *DB) changeMembership(ctx context.Context, q string, kind chat.MessageKind, roomID, userID int64, at time.Time, announce bool, extra ...any) (m chat.Message, userSeq int64, changed bool, err error) {
	at = ts(at)
	err = retrying(ctx, db.pool.conns, func() (err error) {
		m, userSeq, changed, err = db.membershipOnce(ctx, q, kind, roomID, userID, at, announce, extra)
		return err
	})
	return m, userSeq, changed, err
}

func (db *DB) membershipOnce(ctx context.Context, q string, kind chat.MessageKind, roomID, userID int64, at time.Time, announce bool, extra []any) (chat.Message, int64, bool, error) {
	b := &pgx.Batch{}
	b.Queue(qLockRoom, roomID, kindRoom)
	b.Queue(q, append([]any{roomID, userID, at, announce, kindRoom, string(kind)}, extra...)...)
	br := db.pool.SendBatch(ctx, b)
	defer br.Close()
	if err := execFirst(br); err != nil {
		return chat.Message{}, 0, false, err
	}
	var (
		room, changed bool
		name          *string
		seq, userSeq  int64
	)
	if err := br.QueryRow().Scan(&room, &name, &changed, &seq, &userSeq); err != nil {
		return chat.Message{}, 0, false, err
	}
	if err := br.Close(); err != nil {
		return chat.Message{}, 0, false, err
	}
	switch {
	case !room:
		return chat.Message{}, 0, false, fmt.Errorf("room %d: %w", roomID, chat.ErrNotFound)
	case name == nil:
		return chat.Message{}, 0, false, fmt.Errorf("user %d: %w", userID, errNoUser)
	case !changed || !announce:
		return chat.Message{}, userSeq, changed, nil
	}
	return chat.Message{ConvID: roomID, Seq: seq, Kind: kind, SenderID: userID, SenderName: *name, CreatedAt: utc(at)}, userSeq, true, nil
}

// IsMember reports whether userID is a member of room roomID.
func (db *DB) IsMember(ctx context.Context, roomID, userID int64) (bool, error) {
	var ok bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM members WHERE conv_id = $1 AND user_id = $2)`,
		roomID, userID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check member %d of room %d: %w", userID, roomID, mapErr(ctx, err))
	}
	return ok, nil
}

// UserRooms lists the rooms userID belongs to, most recently active first.
func (db *DB) UserRooms(ctx context.Context, userID int64) ([]chat.Room, error) {
	rs, err := db.queryRooms(ctx, `SELECT `+roomCols+`
		FROM members m JOIN conversations c ON c.id = m.conv_id
		WHERE m.user_id = $1 AND c.kind = $2
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
	rs, err := db.queryRooms(ctx, `SELECT `+roomCols+`, a.recent
		FROM (
			SELECT conv_id, count(*) AS recent FROM messages
			WHERE kind = 'text' AND created_at >= $1
			GROUP BY conv_id
		) a JOIN conversations c ON c.id = a.conv_id
		WHERE c.kind = $2
		ORDER BY a.recent DESC, c.last_active_at DESC, c.id DESC
		LIMIT $3`, true, ts(since), kindRoom, limit)
	if err != nil {
		return nil, fmt.Errorf("list active rooms: %w", err)
	}
	return rs, nil
}

// queryRooms runs a query selecting roomCols and, if recent, a count for
// Room.Recent.
func (db *DB) queryRooms(ctx context.Context, query string, recent bool, args ...any) ([]chat.Room, error) {
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	rs, err := collectRows(rows, func(s scanner) (chat.Room, error) {
		var n int
		var extra []any
		if recent {
			extra = append(extra, &n)
		}
		r, err := scanRoom(s, extra...)
		r.Recent = n
		return r, err
	})
	return rs, mapErr(ctx, err)
}
