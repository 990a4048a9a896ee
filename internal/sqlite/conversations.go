package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// kindDirect is the conversations.kind of direct conversations.
const kindDirect = "direct"

// directKey is the conversations.direct_key of users a and b.
func directKey(a, b int64) string {
	return strconv.FormatInt(min(a, b), 10) + ":" + strconv.FormatInt(max(a, b), 10)
}

// convCols selects a chat.Conversation as seen by the user of members mb
// (LEFT JOINed: NULL for a non-member) from conversations c, joined with
// convJoins.
const convCols = `c.id, c.kind, c.name, c.created_at, c.last_seq, c.last_active_at,
	c.member_count,
	mb.user_id IS NOT NULL, coalesce(mb.read_seq, 0),
	p.id, p.name, p.created_at, p.name_version,
	lm.seq, lm.kind, lm.sender_id, coalesce(lu.name, ''), lm.client_id, lm.body, lm.target_id, lm.created_at`

// convJoins joins the peer of a direct conversation (the member other than
// the viewer, the first parameter) and the last message.
const convJoins = `
	LEFT JOIN users p ON c.kind = 'direct' AND p.id = (
		SELECT pm.user_id FROM members pm WHERE pm.conv_id = c.id AND pm.user_id <> ? ORDER BY pm.user_id LIMIT 1)
	LEFT JOIN messages lm ON lm.conv_id = c.id AND lm.seq = c.last_seq
	LEFT JOIN users lu ON lu.id = lm.sender_id`

// scanConversation scans a row of convCols, then into extra what the
// query selects after them.
func scanConversation(s scanner, extra ...any) (c chat.Conversation, member bool, err error) {
	var (
		created, active int64
		peerID          sql.NullInt64
		peerName        sql.NullString
		peerCreated     sql.NullInt64
		peerVersion     sql.NullInt64
		mSeq, mSender   sql.NullInt64
		mKind, mClient  sql.NullString
		mBody           sql.NullString
		mTarget         sql.NullInt64
		mSenderName     string
		mCreated        sql.NullInt64
	)
	if err := s.Scan(append([]any{&c.ID, &c.Kind, &c.Name, &created, &c.LastSeq, &active, &c.Members, &member, &c.ReadSeq,
		&peerID, &peerName, &peerCreated, &peerVersion,
		&mSeq, &mKind, &mSender, &mSenderName, &mClient, &mBody, &mTarget, &mCreated}, extra...)...); err != nil {
		return chat.Conversation{}, false, err
	}
	c.CreatedAt, c.LastActiveAt = fromMicros(created), fromMicros(active)
	if peerID.Valid {
		c.Peer = &chat.User{ID: peerID.Int64, Name: peerName.String, CreatedAt: fromMicros(peerCreated.Int64), NameVersion: peerVersion.Int64}
	}
	if mSeq.Valid {
		c.LastMessage = &chat.Message{
			ConvID: c.ID, Seq: mSeq.Int64, Kind: chat.MessageKind(mKind.String), SenderID: mSender.Int64,
			SenderName: mSenderName, ClientID: mClient.String, Body: mBody.String, TargetID: mTarget.Int64, CreatedAt: fromMicros(mCreated.Int64),
		}
	}
	return c, member, nil
}

// conversationFrom selects conversations as user $1 (and $2) sees them;
// a WHERE clause picks one.
const conversationFrom = `SELECT ` + convCols + `
		FROM conversations c
		LEFT JOIN members mb ON mb.conv_id = c.id AND mb.user_id = ?` + convJoins

// conversationSQL selects conversation $4 as user $2 (and $3) sees it,
// then the event_seq of user $1, the same: one statement reads them in one
// snapshot (chat.Conversation.UserSeq).
const conversationSQL = `SELECT ` + convCols + `, coalesce((SELECT event_seq FROM users WHERE id = ?), 0)
		FROM conversations c
		LEFT JOIN members mb ON mb.conv_id = c.id AND mb.user_id = ?` + convJoins + `
		WHERE c.id = ?`

// conversation loads conversation id as userID sees it.
func conversation(ctx context.Context, q querier, id, userID int64) (chat.Conversation, bool, error) {
	var userSeq int64
	c, member, err := scanConversation(q.QueryRowContext(ctx, conversationSQL, userID, userID, userID, id), &userSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return chat.Conversation{}, false, chat.ErrNotFound
	}
	c.UserSeq = userSeq
	return c, member, err
}

// Conversation returns conversation id as userID sees it and whether
// userID is a member.
func (db *DB) Conversation(ctx context.Context, id, userID int64) (c chat.Conversation, member bool, err error) {
	c, member, err = conversation(ctx, db.ro, id, userID)
	if err != nil {
		return chat.Conversation{}, false, fmt.Errorf("load conversation %d for user %d: %w", id, userID, err)
	}
	return c, member, nil
}

// membershipSQL selects the kind of conversation $2 and whether user $1 is
// a member.
const membershipSQL = `SELECT c.kind, mb.user_id IS NOT NULL
		FROM conversations c
		LEFT JOIN members mb ON mb.conv_id = c.id AND mb.user_id = ?
		WHERE c.id = ?`

// Membership returns the kind of conversation id and whether userID is a
// member: the send path's check, two index lookups and nothing else.
func (db *DB) Membership(ctx context.Context, id, userID int64) (kind chat.ConvKind, member bool, err error) {
	err = db.ro.QueryRowContext(ctx, membershipSQL, userID, id).Scan(&kind, &member)
	if errors.Is(err, sql.ErrNoRows) {
		err = chat.ErrNotFound
	}
	if err != nil {
		return "", false, fmt.Errorf("load membership of user %d in conversation %d: %w", userID, id, err)
	}
	return kind, member, nil
}

// EnsureDirect returns the direct conversation of a and b as a sees it,
// creating it when absent. Writes are serialized (one write connection,
// BEGIN IMMEDIATE) and direct_key is unique, so concurrent callers get one
// conversation.
func (db *DB) EnsureDirect(ctx context.Context, a, b int64, at time.Time) (c chat.Conversation, created bool, err error) {
	if a == b {
		return chat.Conversation{}, false, fmt.Errorf("direct conversation of user %d with themselves: %w", a, chat.ErrInvalid)
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		for _, id := range []int64{a, b} {
			if _, err := userByID(ctx, tx, id); err != nil {
				return fmt.Errorf("user %d: %w", id, err)
			}
		}
		n, err := affected(tx.ExecContext(ctx, `INSERT INTO conversations (kind, direct_key, created_at, last_active_at)
			VALUES (?, ?, ?, ?)
			ON CONFLICT (direct_key) WHERE direct_key IS NOT NULL DO NOTHING`,
			kindDirect, directKey(a, b), micros(at), micros(at)))
		if err != nil {
			return err
		}
		var id int64
		if err := tx.QueryRowContext(ctx, `SELECT id FROM conversations WHERE direct_key = ?`, directKey(a, b)).Scan(&id); err != nil {
			return err
		}
		if n == 1 {
			created = true
			for _, u := range []int64{a, b} {
				if _, err := tx.ExecContext(ctx, `INSERT INTO members (conv_id, user_id, joined_at) VALUES (?, ?, ?)`,
					id, u, micros(at)); err != nil {
					return err
				}
			}
		}
		c, _, err = conversation(ctx, tx, id, a)
		return err
	})
	if err != nil {
		return chat.Conversation{}, false, fmt.Errorf("ensure direct conversation of users %d and %d: %w", a, b, err)
	}
	return c, created, nil
}

// Direct returns the direct conversation of a and b as a sees it.
func (db *DB) Direct(ctx context.Context, a, b int64) (chat.Conversation, error) {
	c, _, err := scanConversation(db.ro.QueryRowContext(ctx, conversationFrom+`
		WHERE c.direct_key = ?`, a, a, directKey(a, b)))
	if errors.Is(err, sql.ErrNoRows) {
		err = chat.ErrNotFound
	}
	if err != nil {
		return chat.Conversation{}, fmt.Errorf("load direct conversation of users %d and %d: %w", a, b, err)
	}
	return c, nil
}

// UserGroups lists the groups userID is a member of, by ascending id,
// with the user's event_seq and each group's last seq read in the same
// statement: one snapshot (chat.Mark).
func (db *DB) UserGroups(ctx context.Context, userID int64) ([]chat.MemberAt, error) {
	gs, err := queryAll(ctx, db.ro, `SELECT c.id, c.last_seq, u.event_seq
		FROM members m JOIN conversations c ON c.id = m.conv_id JOIN users u ON u.id = m.user_id
		WHERE m.user_id = ? AND c.kind = ? ORDER BY c.id`, []any{userID, kindGroup}, scanMemberAt)
	if err != nil {
		return nil, fmt.Errorf("list groups of user %d: %w", userID, err)
	}
	return gs, nil
}

// scanMemberAt scans a conversation's id, last seq and its member's
// event_seq.
func scanMemberAt(s scanner) (chat.MemberAt, error) {
	var g chat.MemberAt
	err := s.Scan(&g.ID, &g.Mark.Seq, &g.Mark.UserSeq)
	return g, err
}

// Conversations lists userID's conversations, most recently active first.
func (db *DB) Conversations(ctx context.Context, userID int64) ([]chat.Conversation, error) {
	cs, err := queryAll(ctx, db.ro, `SELECT `+convCols+`
		FROM members mb JOIN conversations c ON c.id = mb.conv_id`+convJoins+`
		WHERE mb.user_id = ?
		ORDER BY c.last_active_at DESC, c.id DESC`, []any{userID, userID},
		func(s scanner) (chat.Conversation, error) {
			c, _, err := scanConversation(s)
			return c, err
		})
	if err != nil {
		return nil, fmt.Errorf("list conversations of user %d: %w", userID, err)
	}
	return cs, nil
}

// MarkRead's statements.
const (
	qReadState = `SELECT mb.read_seq, c.last_seq FROM members mb JOIN conversations c ON c.id = mb.conv_id
		WHERE mb.conv_id = ? AND mb.user_id = ?`
	qSetRead = `UPDATE members SET read_seq = ? WHERE conv_id = ? AND user_id = ?`
)

// MarkRead moves read positions forward, each clamped to its
// conversation's last seq, in one transaction on the write connection's
// own prepared statements.
func (db *DB) MarkRead(ctx context.Context, marks []chat.ReadMark) error {
	err := db.writeRaw(ctx, func(r runner) error {
		for i := range marks {
			m := &marks[i]
			m.State, m.Moved, m.Err = chat.ReadState{ConvID: m.ConvID}, false, nil
			err := r.queryRow(ctx, qReadState, m.ConvID, m.UserID).Scan(&m.State.ReadSeq, &m.State.LastSeq)
			if errors.Is(err, sql.ErrNoRows) {
				m.Err = chat.ErrNotFound
				continue
			}
			if err != nil {
				return err
			}
			if next := min(m.Seq, m.State.LastSeq); next > m.State.ReadSeq {
				if _, err := r.exec(ctx, qSetRead, next, m.ConvID, m.UserID); err != nil {
					return err
				}
				m.State.ReadSeq, m.Moved = next, true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("move %d read positions: %w", len(marks), err)
	}
	return nil
}
