package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parley-chat/parley/internal/chat"
)

// messageCols selects a chat.Message from messages m LEFT JOIN users u.
const messageCols = `m.conv_id, m.seq, m.kind, m.sender_id, coalesce(u.name, ''), m.client_id, m.body, m.target_id, m.created_at`

const messagesFrom = ` FROM messages m LEFT JOIN users u ON u.id = m.sender_id `

func scanMessage(s scanner) (chat.Message, error) {
	var m chat.Message
	if err := s.Scan(&m.ConvID, &m.Seq, &m.Kind, &m.SenderID, &m.SenderName, &m.ClientID, &m.Body, &m.TargetID, &m.CreatedAt); err != nil {
		return chat.Message{}, err
	}
	m.CreatedAt = utc(m.CreatedAt)
	return m, nil
}

// Append stores m as the next message of its conversation, committed with
// whatever other Appends of this DB are waiting (group commit, batch.go).
// If m.ClientID is set and the conversation already holds a message of
// m.SenderID with that client ID, Append returns it, created = false, and
// stores nothing.
func (db *DB) Append(ctx context.Context, m chat.NewMessage) (msg chat.Message, created bool, err error) {
	return db.QueueAppend(ctx, m).Wait()
}

// QueueAppend is Append without the wait (chat.MessageStore). Messages
// of one conversation go to the same committing goroutine, in order.
func (db *DB) QueueAppend(ctx context.Context, m chat.NewMessage) chat.PendingAppend {
	return db.appends[uint64(m.ConvID)%uint64(len(db.appends))].Queue(ctx, m)
}

// appendItem is one message for appendAll, and its outcome.
type appendItem struct {
	m       chat.NewMessage
	msg     chat.Message
	created bool
	err     error // this item's own failure; the others go on
}

// appendMessage is Append inside tx, for a single message.
func appendMessage(ctx context.Context, tx pgx.Tx, nm chat.NewMessage) (chat.Message, bool, error) {
	it := &appendItem{m: nm}
	if err := appendAll(ctx, tx, []*appendItem{it}); err != nil {
		return chat.Message{}, false, err
	}
	return it.msg, it.created, it.err
}

// lockConvs locks the rows of conversations $1, in id order so that
// concurrent appends, on this node or another, cannot deadlock.
const lockConvs = `SELECT id FROM conversations WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`

// appendSQL is appendSQLFor a list with no client ID repeated, and
// appendRepeatsSQL for one with: which repeats count is a stage more,
// which a list without any does not pay.
var (
	appendSQL        = appendSQLFor(false)
	appendRepeatsSQL = appendSQLFor(true)
)

// appendSQLFor is the statement that stores a list of messages given as
// arrays ($1 to $8, and $11: whether an earlier message of the list has
// the same client ID), in order, and returns one row per message, by position (idx, from 1): its
// status and, if new, its seq; if stored before, the stored message. $9
// and $10 list the conversations and the senders, each once. It must run
// after lockConvs in the same transaction: as a new statement it sees
// every message committed by whoever held the locks before, and the
// last_seq that they left. Per-message lookups are LATERAL ... LIMIT 1 so
// that they stay index probes whatever the planner thinks of the tables'
// sizes (a table that grew since it was last analyzed would otherwise be
// hashed whole).
//
// A message's status is missing (no such conversation, or not of the kind
// $12 asks for, where it is not empty), not_member (the
// sender must be a member and is not), stored (its client ID was stored
// before), repeated (an earlier message of the list with its client ID is
// new: one refused for reasons of its own does not count) or new. New
// messages get seqs from the conversation's last_seq on, in list order;
// the conversations' last_seq and last_active_at and the senders' read
// positions move to their last new message. The read positions' rows are
// locked first, in the order of (conversation, user) (reader), as
// MarkRead's batches take theirs: updated in the order of a join, they
// could be taken in a cycle with a batch of MarkRead's, which PostgreSQL
// ends after deadlock_timeout (a second), one of the two to run again.
func appendSQLFor(repeats bool) string {
	status, from, dedupe := "status", "checked", ""
	if repeats {
		status, from, dedupe = "checked_status", "deduped", `), deduped AS (
	SELECT ch.*, CASE
		WHEN ch.checked_status <> 'new' OR NOT ch.repeated THEN ch.checked_status
		WHEN EXISTS (SELECT 1 FROM checked e WHERE e.conv_id = ch.conv_id AND e.sender_id = ch.sender_id
			AND e.client_id = ch.client_id AND e.idx < ch.idx AND e.checked_status = 'new') THEN 'repeated'
		ELSE 'new' END AS status
	FROM checked ch
`
	}
	return `WITH convs AS (
	SELECT id, kind, last_seq FROM conversations WHERE id = ANY($9::bigint[])
), senders AS (
	SELECT id, name FROM users WHERE id = ANY($10::bigint[])
), checked AS (
	SELECT i.*, c.last_seq, u.name AS sender_name,
		s.seq AS s_seq, s.kind AS s_kind, s.body AS s_body, s.target_id AS s_target_id, s.created_at AS s_created_at,
		CASE
		WHEN c.id IS NULL OR (i.conv_kind <> '' AND c.kind <> i.conv_kind) THEN 'missing'
		WHEN i.member_only AND mb.user_id IS NULL THEN 'not_member'
		WHEN i.peer_id <> 0 AND NOT (
			EXISTS (SELECT 1 FROM contacts x WHERE x.user_id = i.sender_id AND x.other_id = i.peer_id AND x.state = 'friends')
			AND NOT EXISTS (SELECT 1 FROM blocks x WHERE (x.blocker_id = i.sender_id AND x.blocked_id = i.peer_id)
				OR (x.blocker_id = i.peer_id AND x.blocked_id = i.sender_id))) THEN 'not_friends'
		WHEN s.seq IS NOT NULL THEN 'stored'
		ELSE 'new' END AS ` + status + `
	FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::timestamptz[], $8::boolean[], $11::boolean[], $12::text[], $13::bigint[])
		WITH ORDINALITY AS i (conv_id, sender_id, client_id, kind, body, target_id, at, member_only, repeated, conv_kind, peer_id, idx)
	LEFT JOIN convs c ON c.id = i.conv_id
	LEFT JOIN senders u ON u.id = i.sender_id
	LEFT JOIN LATERAL (SELECT x.user_id FROM members x
		WHERE i.member_only AND x.conv_id = i.conv_id AND x.user_id = i.sender_id LIMIT 1) mb ON true
	LEFT JOIN LATERAL (SELECT x.seq, x.kind, x.body, x.target_id, x.created_at FROM messages x
		WHERE i.client_id <> '' AND x.conv_id = i.conv_id AND x.sender_id = i.sender_id AND x.client_id = i.client_id
			AND x.client_id <> '' LIMIT 1) s ON true
` + dedupe + `), numbered AS (
	SELECT ch.*, ch.last_seq + row_number() OVER (PARTITION BY ch.conv_id ORDER BY ch.idx) AS seq
	FROM ` + from + ` ch WHERE ch.status = 'new'
), inserted AS (
	INSERT INTO messages (conv_id, seq, kind, sender_id, client_id, body, target_id, created_at)
	SELECT conv_id, seq, kind, sender_id, client_id, body, target_id, at FROM numbered
), bumped AS (
	UPDATE conversations c SET last_seq = v.last_seq, last_active_at = greatest(c.last_active_at, v.at)
	FROM (SELECT conv_id, max(seq) AS last_seq, max(at) AS at FROM numbered GROUP BY conv_id) v
	WHERE c.id = v.conv_id
), reader AS (
	SELECT mb.conv_id, mb.user_id, v.seq
	FROM (SELECT conv_id, sender_id, max(seq) AS seq FROM numbered WHERE sender_id <> 0 GROUP BY conv_id, sender_id) v
	JOIN members mb ON mb.conv_id = v.conv_id AND mb.user_id = v.sender_id
	ORDER BY mb.conv_id, mb.user_id FOR NO KEY UPDATE OF mb
), read AS (
	UPDATE members mb SET read_seq = greatest(mb.read_seq, r.seq)
	FROM reader r WHERE mb.conv_id = r.conv_id AND mb.user_id = r.user_id
)
SELECT idx, status, seq, coalesce(sender_name, ''), 0, '', '', 0, NULL::timestamptz FROM numbered
UNION ALL
SELECT idx, status, 0, coalesce(sender_name, ''), coalesce(s_seq, 0), coalesce(s_kind, ''), coalesce(s_body, ''),
	coalesce(s_target_id, 0), s_created_at
FROM ` + from + ` WHERE status <> 'new'`
}

// batchSender is a pgx.Tx, a connection or the pool.
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

type idemKey struct {
	conv, sender int64
	client       string
}

// appendAll stores items, in order, each with the next seq of its
// conversation, through q: a transaction, or the pool, where the two
// statements it sends form a transaction of their own. An item whose
// conversation does not exist, whose sender is not a member or not the
// peer's friend when that is asked, or whose text PostgreSQL cannot store
// fails alone (its err); an error returned fails them all.
//
// It first locks the rows of the conversations involved (lockConvs); only
// then does it look for client IDs stored before and read each
// conversation's last seq (appendSQL). Holding the locks until the commit
// is what makes seqs gap-free and a duplicate send store nothing. Both
// statements go in one round trip, whatever the number of items.
func appendAll(ctx context.Context, q batchSender, items []*appendItem) error {
	n := len(items)
	var (
		convIDs   = make([]int64, 0, n)
		seen      = make(map[int64]bool, n)
		aConv     = make([]int64, 0, n)
		aSender   = make([]int64, 0, n)
		aTarget   = make([]int64, 0, n)
		aClient   = make([]string, 0, n)
		aKind     = make([]string, 0, n)
		aBody     = make([]string, 0, n)
		aAt       = make([]time.Time, 0, n)
		aMember   = make([]bool, 0, n)
		aConvKind = make([]string, 0, n)
		aPeer     = make([]int64, 0, n)
		aRepeat   = make([]bool, 0, n)
		senders   = make([]int64, 0, n)
		seenID    = make(map[idemKey]bool, n)
		pos       = make([]*appendItem, 0, n) // pos[idx-1] is the item of row idx
	)
	for _, it := range items {
		it.msg, it.created, it.err = chat.Message{}, false, nil
		m := it.m
		if err := errors.Join(storable(string(m.Kind)), storable(m.ClientID), storable(m.Body)); err != nil {
			it.err = fmt.Errorf("message: %w", chat.ErrInvalid)
			continue
		}
		if !seen[m.ConvID] {
			seen[m.ConvID] = true
			convIDs = append(convIDs, m.ConvID)
		}
		senders = append(senders, m.SenderID)
		repeat := false
		if m.ClientID != "" {
			k := idemKey{m.ConvID, m.SenderID, m.ClientID}
			repeat = seenID[k]
			seenID[k] = true
		}
		aRepeat = append(aRepeat, repeat)
		aConv, aSender, aTarget = append(aConv, m.ConvID), append(aSender, m.SenderID), append(aTarget, m.TargetID)
		aClient, aKind, aBody = append(aClient, m.ClientID), append(aKind, string(m.Kind)), append(aBody, m.Body)
		aAt, aMember = append(aAt, ts(m.At)), append(aMember, m.MemberOnly)
		aConvKind, aPeer = append(aConvKind, string(m.ConvKind)), append(aPeer, m.Peer)
		pos = append(pos, it)
	}
	if len(pos) == 0 {
		return nil
	}
	slices.Sort(convIDs)
	slices.Sort(senders)
	senders = slices.Compact(senders)

	b := &pgx.Batch{}
	b.Queue(lockConvs, convIDs)
	stmt := appendSQL
	if slices.Contains(aRepeat, true) {
		stmt = appendRepeatsSQL
	}
	b.Queue(stmt, aConv, aSender, aClient, aKind, aBody, aTarget, aAt, aMember, convIDs, senders, aRepeat, aConvKind, aPeer)
	br := q.SendBatch(ctx, b)
	defer br.Close()
	if err := execFirst(br); err != nil {
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	var repeated []*appendItem
	rowCount := 0
	for rows.Next() {
		rowCount++
		var (
			idx           int64
			status, name  string
			seq           int64
			sSeq, sTarget int64
			sKind, sBody  string
			sCreated      *time.Time
		)
		if err := rows.Scan(&idx, &status, &seq, &name, &sSeq, &sKind, &sBody, &sTarget, &sCreated); err != nil {
			rows.Close()
			return err
		}
		if idx < 1 || int(idx) > len(pos) {
			rows.Close()
			return fmt.Errorf("append: row %d of %d", idx, len(pos))
		}
		it := pos[idx-1]
		m := it.m
		switch status {
		case "missing":
			it.err = fmt.Errorf("conversation %d: %w", m.ConvID, chat.ErrNotFound)
		case "not_member":
			it.err = fmt.Errorf("user %d in conversation %d: %w", m.SenderID, m.ConvID, chat.ErrNotMember)
		case "not_friends":
			it.err = fmt.Errorf("user %d to user %d: %w", m.SenderID, m.Peer, chat.ErrNotFriends)
		case "stored":
			if sCreated == nil {
				rows.Close()
				return fmt.Errorf("append: stored message of client ID %q vanished", m.ClientID)
			}
			it.msg = chat.Message{ConvID: m.ConvID, Seq: sSeq, Kind: chat.MessageKind(sKind), SenderID: m.SenderID, SenderName: name,
				ClientID: m.ClientID, Body: sBody, TargetID: sTarget, CreatedAt: utc(*sCreated)}
		case "repeated":
			repeated = append(repeated, it)
		case "new":
			it.msg = chat.Message{ConvID: m.ConvID, Seq: seq, Kind: m.Kind, SenderID: m.SenderID, SenderName: name,
				ClientID: m.ClientID, Body: m.Body, TargetID: m.TargetID, CreatedAt: utc(ts(m.At))}
			it.created = true
		default:
			rows.Close()
			return fmt.Errorf("append: unknown status %q", status)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if err := br.Close(); err != nil {
		return err
	}
	if rowCount != len(pos) {
		return fmt.Errorf("append: %d results for %d messages", rowCount, len(pos))
	}
	// A repeated client ID gets the message of its first occurrence.
	first := map[idemKey]chat.Message{}
	for _, it := range pos {
		if it.created && it.m.ClientID != "" {
			first[idemKey{it.m.ConvID, it.m.SenderID, it.m.ClientID}] = it.msg
		}
	}
	for _, it := range repeated {
		msg, ok := first[idemKey{it.m.ConvID, it.m.SenderID, it.m.ClientID}]
		if !ok {
			return fmt.Errorf("append: no first occurrence of client ID %q", it.m.ClientID)
		}
		it.msg = msg
	}
	return nil
}

// execFirst reads the result of the first statement of br, a batch of
// several statements without BEGIN, which runs as one implicit
// transaction that commits after its last statement. If the server ended
// the session in place of that first answer (sessionEnded), nothing of
// the batch committed and it may run again on another connection: the
// error is a notRunError. This is how a connection that the server ended
// while it sat idle in the pool shows itself.
func execFirst(br pgx.BatchResults) error {
	_, err := br.Exec()
	if err != nil && sessionEnded(err) {
		return &notRunError{err}
	}
	return err
}

// notRunError is the error of a batch or a transaction that the server
// did not run.
type notRunError struct{ err error }

func (e *notRunError) Error() string     { return e.err.Error() }
func (e *notRunError) Unwrap() error     { return e.err }
func (e *notRunError) SafeToRetry() bool { return true }

// sessionEnded reports whether err is the server ending the session (an
// error of severity FATAL or PANIC).
func sessionEnded(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	sev := pe.SeverityUnlocalized
	if sev == "" { // servers before 9.6
		sev = pe.Severity
	}
	return sev == "FATAL" || sev == "PANIC"
}

// Messages returns a page of conversation convID's messages, in ascending
// seq order: with p.After > 0 the oldest after p.After, otherwise the newest
// before p.Before (or the newest of all when p.Before is 0).
func (db *DB) Messages(ctx context.Context, convID int64, p chat.Page) ([]chat.Message, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = chat.DefaultPageLimit
	}
	var rows pgx.Rows
	var err error
	switch {
	case p.After > 0:
		rows, err = db.pool.Query(ctx, `SELECT `+messageCols+messagesFrom+`
			WHERE m.conv_id = $1 AND m.seq > $2
			ORDER BY m.seq LIMIT $3`, convID, p.After, limit)
	case p.Before > 0:
		rows, err = db.pool.Query(ctx, `SELECT `+messageCols+messagesFrom+`
			WHERE m.conv_id = $1 AND m.seq < $2
			ORDER BY m.seq DESC LIMIT $3`, convID, p.Before, limit)
	default:
		rows, err = db.pool.Query(ctx, `SELECT `+messageCols+messagesFrom+`
			WHERE m.conv_id = $1
			ORDER BY m.seq DESC LIMIT $2`, convID, limit)
	}
	ms := []chat.Message{}
	if err == nil {
		ms, err = collectRows(rows, scanMessage)
	}
	if err != nil {
		return nil, fmt.Errorf("load messages of %d: %w", convID, mapErr(ctx, err))
	}
	if p.After <= 0 {
		slices.Reverse(ms)
	}
	return ms, nil
}

// collectRows scans every row of rows with scan and closes rows; the
// slice is empty, not nil, when there are none.
func collectRows[T any](rows pgx.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
