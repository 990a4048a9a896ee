package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
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
// the viewer, parameter $1) and the last message.
const convJoins = `
	LEFT JOIN users p ON c.kind = 'direct' AND p.id = (
		SELECT pm.user_id FROM members pm WHERE pm.conv_id = c.id AND pm.user_id <> $1 ORDER BY pm.user_id LIMIT 1)
	LEFT JOIN messages lm ON lm.conv_id = c.id AND lm.seq = c.last_seq
	LEFT JOIN users lu ON lu.id = lm.sender_id`

// scanConversation scans a row of convCols, then into extra what the
// query selects after them.
func scanConversation(s scanner, extra ...any) (c chat.Conversation, member bool, err error) {
	var (
		peerID         *int64
		peerName       *string
		peerCreated    *time.Time
		peerVersion    *int64
		mSeq, mSender  *int64
		mKind, mClient *string
		mBody          *string
		mTarget        *int64
		mSenderName    string
		mCreated       *time.Time
	)
	if err := s.Scan(append([]any{&c.ID, &c.Kind, &c.Name, &c.CreatedAt, &c.LastSeq, &c.LastActiveAt, &c.Members, &member, &c.ReadSeq,
		&peerID, &peerName, &peerCreated, &peerVersion,
		&mSeq, &mKind, &mSender, &mSenderName, &mClient, &mBody, &mTarget, &mCreated}, extra...)...); err != nil {
		return chat.Conversation{}, false, err
	}
	c.CreatedAt, c.LastActiveAt = utc(c.CreatedAt), utc(c.LastActiveAt)
	if peerID != nil {
		c.Peer = &chat.User{ID: *peerID, Name: *peerName, CreatedAt: utc(*peerCreated), NameVersion: *peerVersion}
	}
	if mSeq != nil {
		c.LastMessage = &chat.Message{
			ConvID: c.ID, Seq: *mSeq, Kind: chat.MessageKind(*mKind), SenderID: *mSender,
			SenderName: mSenderName, ClientID: *mClient, Body: *mBody, TargetID: *mTarget, CreatedAt: utc(*mCreated),
		}
	}
	return c, member, nil
}

// conversation loads conversation id as userID sees it, and userID's
// event_seq in the same statement: one snapshot (chat.Conversation.UserSeq).
func conversation(ctx context.Context, q querier, id, userID int64) (chat.Conversation, bool, error) {
	var userSeq int64
	c, member, err := scanConversation(q.QueryRow(ctx, `SELECT `+convCols+`,
		coalesce((SELECT event_seq FROM users WHERE id = $1), 0)
		FROM conversations c
		LEFT JOIN members mb ON mb.conv_id = c.id AND mb.user_id = $1`+convJoins+`
		WHERE c.id = $2`, userID, id), &userSeq)
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Conversation{}, false, chat.ErrNotFound
	}
	c.UserSeq = userSeq
	return c, member, err
}

// Conversation returns conversation id as userID sees it and whether
// userID is a member.
func (db *DB) Conversation(ctx context.Context, id, userID int64) (c chat.Conversation, member bool, err error) {
	c, member, err = conversation(ctx, db.pool, id, userID)
	if err != nil {
		return chat.Conversation{}, false, fmt.Errorf("load conversation %d for user %d: %w", id, userID, mapErr(ctx, err))
	}
	return c, member, nil
}

// Membership returns the kind of conversation id and whether userID is a
// member: the send path's check, two index lookups and nothing else.
func (db *DB) Membership(ctx context.Context, id, userID int64) (kind chat.ConvKind, member bool, err error) {
	err = db.pool.QueryRow(ctx, `SELECT c.kind, mb.user_id IS NOT NULL
		FROM conversations c
		LEFT JOIN members mb ON mb.conv_id = c.id AND mb.user_id = $1
		WHERE c.id = $2`, userID, id).Scan(&kind, &member)
	if errors.Is(err, pgx.ErrNoRows) {
		err = chat.ErrNotFound
	}
	if err != nil {
		return "", false, fmt.Errorf("load membership of user %d in conversation %d: %w", userID, id, mapErr(ctx, err))
	}
	return kind, member, nil
}

// EnsureDirect returns the direct conversation of a and b as a sees it,
// creating it when absent. direct_key is unique, and an insert that
// conflicts waits for the one it conflicts with to commit, so concurrent
// callers get one conversation, with its two members.
func (db *DB) EnsureDirect(ctx context.Context, a, b int64, at time.Time) (c chat.Conversation, created bool, err error) {
	if a == b {
		return chat.Conversation{}, false, fmt.Errorf("direct conversation of user %d with themselves: %w", a, chat.ErrInvalid)
	}
	err = db.write(ctx, func(tx pgx.Tx) error {
		created = false
		for _, id := range []int64{a, b} {
			if _, err := userByID(ctx, tx, id); err != nil {
				return fmt.Errorf("user %d: %w", id, err)
			}
		}
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO conversations (kind, direct_key, created_at, last_active_at)
			VALUES ($1, $2, $3, $3)
			ON CONFLICT (direct_key) WHERE direct_key IS NOT NULL DO NOTHING
			RETURNING id`, kindDirect, directKey(a, b), ts(at)).Scan(&id)
		switch {
		case err == nil:
			created = true
			if _, err := tx.Exec(ctx, `INSERT INTO members (conv_id, user_id, joined_at) VALUES ($1, $2, $4), ($1, $3, $4)`,
				id, a, b, ts(at)); err != nil {
				return err
			}
		case errors.Is(err, pgx.ErrNoRows):
			if err := tx.QueryRow(ctx, `SELECT id FROM conversations WHERE direct_key = $1`, directKey(a, b)).Scan(&id); err != nil {
				return err
			}
		default:
			return err
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
	c, _, err := scanConversation(db.pool.QueryRow(ctx, `SELECT `+convCols+`
		FROM conversations c
		LEFT JOIN members mb ON mb.conv_id = c.id AND mb.user_id = $1`+convJoins+`
		WHERE c.direct_key = $2`, a, directKey(a, b)))
	if errors.Is(err, pgx.ErrNoRows) {
		err = chat.ErrNotFound
	}
	if err != nil {
		return chat.Conversation{}, fmt.Errorf("load direct conversation of users %d and %d: %w", a, b, mapErr(ctx, err))
	}
	return c, nil
}

// UserGroups lists the groups userID is a member of, by ascending id,
// with the user's event_seq and each group's last seq read in the same
// statement: one snapshot (chat.Mark).
func (db *DB) UserGroups(ctx context.Context, userID int64) ([]chat.MemberAt, error) {
	rows, err := db.pool.Query(ctx, `SELECT c.id, c.last_seq, u.event_seq
		FROM members m JOIN conversations c ON c.id = m.conv_id JOIN users u ON u.id = m.user_id
		WHERE m.user_id = $1 AND c.kind = $2 ORDER BY c.id`, userID, kindGroup)
	var gs []chat.MemberAt
	if err == nil {
		gs, err = collectRows(rows, func(s scanner) (chat.MemberAt, error) {
			var g chat.MemberAt
			err := s.Scan(&g.ID, &g.Mark.Seq, &g.Mark.UserSeq)
			return g, err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("list groups of user %d: %w", userID, mapErr(ctx, err))
	}
	return gs, nil
}

// Conversations lists userID's conversations, most recently active first.
func (db *DB) Conversations(ctx context.Context, userID int64) ([]chat.Conversation, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+convCols+`
		FROM members mb JOIN conversations c ON c.id = mb.conv_id`+convJoins+`
		WHERE mb.user_id = $1
		ORDER BY c.last_active_at DESC, c.id DESC`, userID)
	var cs []chat.Conversation
	if err == nil {
		cs, err = collectRows(rows, func(s scanner) (chat.Conversation, error) {
			c, _, err := scanConversation(s)
			return c, err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("list conversations of user %d: %w", userID, mapErr(ctx, err))
	}
	return cs, nil
}

// MarkRead moves read positions forward, each clamped to its
// conversation's last seq, with one statement each (markReadSQL), sent
// together as one implicit transaction: one round trip. Its commit does not
// wait for the WAL to be flushed (asyncCommit): a read position is not a
// message, a crash of the database server may lose the moves of its last
// moments (wal_writer_delay, three times over at most), and the client
// moves it again when it next shows the conversation.
//
// The rows are updated in the order of (conversation, user), the same in
// every batch of every node, so two batches never wait for each other's
// rows in a cycle; the moves of one row keep their order.
func (db *DB) MarkRead(ctx context.Context, marks []chat.ReadMark) error {
	order := make([]int, len(marks))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(marks[a].ConvID, marks[b].ConvID), cmp.Compare(marks[a].UserID, marks[b].UserID))
	})
	err := retrying(ctx, db.pool.conns, func() error {
		b := &pgx.Batch{}
		b.Queue(asyncCommit)
		for _, i := range order {
			b.Queue(markReadSQL, marks[i].ConvID, marks[i].UserID, marks[i].Seq)
		}
		br := db.pool.SendBatch(ctx, b)
		defer br.Close()
		if err := execFirst(br); err != nil {
			return err
		}
		for _, i := range order {
			m := &marks[i]
			m.State, m.Moved, m.Err = chat.ReadState{ConvID: m.ConvID}, false, nil
			err := br.QueryRow().Scan(&m.State.ReadSeq, &m.State.LastSeq, &m.Moved)
			if errors.Is(err, pgx.ErrNoRows) {
				m.Err = chat.ErrNotFound
				continue
			}
			if err != nil {
				return err
			}
		}
		return br.Close()
	})
	if err != nil {
		return fmt.Errorf("move %d read positions: %w", len(marks), err)
	}
	return nil
}

// asyncCommit makes the transaction it runs in commit without waiting for
// its WAL to reach the disk.
const asyncCommit = `SELECT set_config('synchronous_commit', 'off', true)`

// markReadSQL moves the read position in one statement. The UPDATE's
// condition is checked again on the row as it stands when it waited for
// another's update, so the position only moves forward. When it does not
// move, the position is the one the statement saw, or, if a concurrent
// call moved it further meanwhile, at least the one asked for.
const markReadSQL = `WITH moved AS (
	UPDATE members mb SET read_seq = least($3, c.last_seq)
	FROM conversations c
	WHERE mb.conv_id = $1 AND mb.user_id = $2 AND c.id = mb.conv_id AND least($3, c.last_seq) > mb.read_seq
	RETURNING mb.read_seq, c.last_seq
)
SELECT read_seq, last_seq, true FROM moved
UNION ALL
SELECT greatest(mb.read_seq, least($3, c.last_seq)), c.last_seq, false FROM members mb JOIN conversations c ON c.id = mb.conv_id
WHERE mb.conv_id = $1 AND mb.user_id = $2 AND NOT EXISTS (SELECT 1 FROM moved)`
