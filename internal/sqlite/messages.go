package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/parley-chat/parley/internal/chat"
)

// messageCols selects a chat.Message from messages m LEFT JOIN users u.
const messageCols = `m.conv_id, m.seq, m.kind, m.sender_id, coalesce(u.name, ''), m.client_id, m.body, m.target_id, m.created_at`

const messagesFrom = ` FROM messages m LEFT JOIN users u ON u.id = m.sender_id `

func scanMessage(s scanner) (chat.Message, error) {
	var m chat.Message
	var created int64
	if err := s.Scan(&m.ConvID, &m.Seq, &m.Kind, &m.SenderID, &m.SenderName, &m.ClientID, &m.Body, &m.TargetID, &created); err != nil {
		return chat.Message{}, err
	}
	m.CreatedAt = fromMicros(created)
	return m, nil
}

// Append stores m as the next message of its conversation, committed with
// whatever other Appends are waiting (group commit, batch.go). If m.ClientID is
// set and the conversation already holds a message of m.SenderID with that
// client ID, Append returns it, created = false, and stores nothing.
func (db *DB) Append(ctx context.Context, m chat.NewMessage) (msg chat.Message, created bool, err error) {
	return db.QueueAppend(ctx, m).Wait()
}

// QueueAppend is Append without the wait (chat.MessageStore).
func (db *DB) QueueAppend(ctx context.Context, m chat.NewMessage) chat.PendingAppend {
	return db.appends.Queue(ctx, m)
}

// appender appends messages inside one write transaction, which must hold
// the write lock from its start so that no other writer interleaves. Its
// runner prepares each statement once (parsing SQL costs more than running
// it), and it keeps each conversation's last seq in memory, writing it
// back once per transaction in flush: a batch of n messages to one
// conversation costs n inserts, one read and one update.
type appender struct {
	r runner

	names map[int64]string
	convs map[int64]*convSeq
	reads map[[2]int64]int64 // (conv, sender) → the sender's latest seq
	// members holds the (conv, sender) pairs found members; made on first use.
	members map[[2]int64]bool
	// friends holds the (sender, peer) pairs found friends; made on first use.
	friends map[[2]int64]bool
	args    []any // an insert's arguments, the slice kept for the next
}

type convSeq struct {
	kind  chat.ConvKind
	last  int64 // last seq assigned
	at    int64 // latest message time, micros
	dirty bool
}

// The appender's statements.
const (
	qLookup = `SELECT ` + messageCols + messagesFrom + `
		WHERE m.conv_id = ? AND m.sender_id = ? AND m.client_id = ? AND m.client_id <> ''`
	qLast   = `SELECT kind, last_seq FROM conversations WHERE id = ?`
	qInsert = `INSERT INTO messages (conv_id, seq, kind, sender_id, client_id, body, target_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (client_id, conv_id, sender_id) WHERE client_id <> '' DO NOTHING`
	qName   = `SELECT name FROM users WHERE id = ?`
	qBump   = `UPDATE conversations SET last_seq = ?, last_active_at = max(last_active_at, ?) WHERE id = ?`
	qRead   = `UPDATE members SET read_seq = max(read_seq, ?) WHERE conv_id = ? AND user_id = ?`
	qMember = `SELECT EXISTS (SELECT 1 FROM members WHERE conv_id = ? AND user_id = ?)`
	// qFriends: ?1 and ?2 are friends, and neither blocks the other.
	qFriends = `SELECT EXISTS (SELECT 1 FROM contacts WHERE user_id = ?1 AND other_id = ?2 AND state = 'friends')
		AND NOT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = ?1 AND blocked_id = ?2) OR (blocker_id = ?2 AND blocked_id = ?1))`
)

// newAppender returns an appender that runs its statements with r, in r's
// transaction.
func newAppender(r runner) *appender {
	return &appender{r: r, names: make(map[int64]string), convs: make(map[int64]*convSeq), reads: make(map[[2]int64]int64)}
}

// appendMessage is Append inside tx, for a single message.
func appendMessage(ctx context.Context, tx *sql.Tx, nm chat.NewMessage) (chat.Message, bool, error) {
	a := newAppender(newTxRunner(tx))
	m, created, err := a.append(ctx, nm)
	if err != nil {
		return chat.Message{}, false, err
	}
	return m, created, a.flush(ctx)
}

func (a *appender) conv(ctx context.Context, id int64) (*convSeq, error) {
	if c, ok := a.convs[id]; ok {
		return c, nil
	}
	c := &convSeq{}
	err := a.r.queryRow(ctx, qLast, id).Scan(&c.kind, &c.last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, chat.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	a.convs[id] = c
	return c, nil
}

// checkMember returns chat.ErrNotMember unless userID is a member of
// conversation convID.
func (a *appender) checkMember(ctx context.Context, convID, userID int64) error {
	ok, err := a.yes(ctx, &a.members, qMember, convID, userID)
	if err == nil && !ok {
		err = fmt.Errorf("user %d in conversation %d: %w", userID, convID, chat.ErrNotMember)
	}
	return err
}

// checkFriends returns chat.ErrNotFriends unless userID and peer are
// friends and neither blocks the other.
func (a *appender) checkFriends(ctx context.Context, userID, peer int64) error {
	ok, err := a.yes(ctx, &a.friends, qFriends, userID, peer)
	if err == nil && !ok {
		err = fmt.Errorf("user %d to user %d: %w", userID, peer, chat.ErrNotFriends)
	}
	return err
}

// yes answers q, a question with a yes or no about (x, y). A yes is kept in
// *seen, made on first use, and holds for the rest of the transaction: only
// appends run in it.
func (a *appender) yes(ctx context.Context, seen *map[[2]int64]bool, q string, x, y int64) (bool, error) {
	k := [2]int64{x, y}
	if (*seen)[k] {
		return true, nil
	}
	var ok bool
	if err := a.r.queryRow(ctx, q, x, y).Scan(&ok); err != nil || !ok {
		return false, err
	}
	if *seen == nil {
		*seen = make(map[[2]int64]bool)
	}
	(*seen)[k] = true
	return true, nil
}

// append stores nm with the next seq of its conversation; flush must run
// before the transaction commits.
func (a *appender) append(ctx context.Context, nm chat.NewMessage) (chat.Message, bool, error) {
	c, err := a.conv(ctx, nm.ConvID)
	if err != nil {
		return chat.Message{}, false, err
	}
	if nm.ConvKind != "" && c.kind != nm.ConvKind {
		return chat.Message{}, false, fmt.Errorf("conversation %d is a %s, not a %s: %w", nm.ConvID, c.kind, nm.ConvKind, chat.ErrNotFound)
	}
	if nm.MemberOnly {
		if err := a.checkMember(ctx, nm.ConvID, nm.SenderID); err != nil {
			return chat.Message{}, false, err
		}
	}
	if nm.Peer != 0 {
		if err := a.checkFriends(ctx, nm.SenderID, nm.Peer); err != nil {
			return chat.Message{}, false, err
		}
	}
	seq, at := c.last+1, micros(nm.At)
	// The arguments go in a slice the appender keeps, and the kind as a
	// plain string, which the driver takes as it is: a new slice per
	// message, and the kind converted by reflection, cost allocations in
	// the group commit, which runs one transaction at a time.
	a.args = append(a.args[:0], nm.ConvID, seq, string(nm.Kind), nm.SenderID, nm.ClientID, nm.Body, nm.TargetID, at)
	n, err := a.r.exec(ctx, qInsert, a.args...)
	clear(a.args)
	if err != nil {
		return chat.Message{}, false, err
	}
	if n == 0 {
		// The client ID was used before: return that message.
		m, err := scanMessage(a.r.queryRow(ctx, qLookup, nm.ConvID, nm.SenderID, nm.ClientID))
		return m, false, err
	}
	c.last, c.at, c.dirty = seq, max(c.at, at), true
	if nm.SenderID != 0 {
		a.reads[[2]int64{nm.ConvID, nm.SenderID}] = seq
	}
	m := chat.Message{
		ConvID:    nm.ConvID,
		Seq:       seq,
		Kind:      nm.Kind,
		SenderID:  nm.SenderID,
		ClientID:  nm.ClientID,
		Body:      nm.Body,
		TargetID:  nm.TargetID,
		CreatedAt: fromMicros(at),
	}
	if nm.SenderID != 0 {
		name, ok := a.names[nm.SenderID]
		if !ok {
			err := a.r.queryRow(ctx, qName, nm.SenderID).Scan(&name)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return chat.Message{}, false, err
			}
			a.names[nm.SenderID] = name
		}
		m.SenderName = name
	}
	return m, true, nil
}

// flush writes back the last seq of every conversation appended to, and
// moves each sender's read position to their latest message.
func (a *appender) flush(ctx context.Context) error {
	for k, seq := range a.reads {
		if _, err := a.r.exec(ctx, qRead, seq, k[0], k[1]); err != nil {
			return err
		}
	}
	clear(a.reads)
	for id, c := range a.convs {
		if !c.dirty {
			continue
		}
		if _, err := a.r.exec(ctx, qBump, c.last, c.at, id); err != nil {
			return err
		}
		c.dirty = false
	}
	return nil
}

// Messages returns a page of conversation convID's messages, in ascending
// seq order: with p.After > 0 the oldest after p.After, otherwise the newest
// before p.Before (or the newest of all when p.Before is 0).
func (db *DB) Messages(ctx context.Context, convID int64, p chat.Page) ([]chat.Message, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = chat.DefaultPageLimit
	}
	var where string
	var args []any
	switch {
	case p.After > 0:
		where, args = `WHERE m.conv_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?`, []any{convID, p.After, limit}
	case p.Before > 0:
		where, args = `WHERE m.conv_id = ? AND m.seq < ? ORDER BY m.seq DESC LIMIT ?`, []any{convID, p.Before, limit}
	default:
		where, args = `WHERE m.conv_id = ? ORDER BY m.seq DESC LIMIT ?`, []any{convID, limit}
	}
	ms, err := queryAll(ctx, db.ro, `SELECT `+messageCols+messagesFrom+` `+where, args, scanMessage)
	if err != nil {
		return nil, fmt.Errorf("load messages of %d: %w", convID, err)
	}
	if p.After <= 0 {
		slices.Reverse(ms)
	}
	return ms, nil
}
