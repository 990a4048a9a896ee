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
const messageCols = `m.conv_id, m.seq, m.kind, m.sender_id, coalesce(u.name, ''), m.client_id, m.body, m.created_at`

const messagesFrom = ` FROM messages m LEFT JOIN users u ON u.id = m.sender_id `

func scanMessage(s scanner) (chat.Message, error) {
	var m chat.Message
	var created int64
	if err := s.Scan(&m.ConvID, &m.Seq, &m.Kind, &m.SenderID, &m.SenderName, &m.ClientID, &m.Body, &created); err != nil {
		return chat.Message{}, err
	}
	m.CreatedAt = fromMicros(created)
	return m, nil
}

// Append stores m as the next message of its conversation. If m.ClientID is
// set and the conversation already holds a message of m.SenderID with that
// client ID, Append returns it, created = false, and stores nothing.
func (db *DB) Append(ctx context.Context, m chat.NewMessage) (msg chat.Message, created bool, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		msg, created, err = appendMessage(ctx, tx, m)
		return err
	})
	if err != nil {
		return chat.Message{}, false, fmt.Errorf("append message to %d: %w", m.ConvID, err)
	}
	return msg, created, nil
}

// appendMessage is Append inside tx, which must hold the write lock from its
// start, so that the client ID lookup and the insert cannot interleave with
// another writer.
func appendMessage(ctx context.Context, tx *sql.Tx, nm chat.NewMessage) (chat.Message, bool, error) {
	if nm.ClientID != "" {
		m, err := scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageCols+messagesFrom+`
			WHERE m.conv_id = ? AND m.sender_id = ? AND m.client_id = ? AND m.client_id <> ''`, nm.ConvID, nm.SenderID, nm.ClientID))
		if err == nil {
			return m, false, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return chat.Message{}, false, err
		}
	}
	var seq int64
	err := tx.QueryRowContext(ctx, `UPDATE conversations SET last_seq = last_seq + 1, last_active_at = max(last_active_at, ?)
		WHERE id = ?
		RETURNING last_seq`, micros(nm.At), nm.ConvID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return chat.Message{}, false, chat.ErrNotFound
	}
	if err != nil {
		return chat.Message{}, false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO messages (conv_id, seq, kind, sender_id, client_id, body, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		nm.ConvID, seq, nm.Kind, nm.SenderID, nm.ClientID, nm.Body, micros(nm.At)); err != nil {
		return chat.Message{}, false, err
	}
	m := chat.Message{
		ConvID:    nm.ConvID,
		Seq:       seq,
		Kind:      nm.Kind,
		SenderID:  nm.SenderID,
		ClientID:  nm.ClientID,
		Body:      nm.Body,
		CreatedAt: fromMicros(micros(nm.At)),
	}
	if nm.SenderID != 0 {
		err := tx.QueryRowContext(ctx, `SELECT name FROM users WHERE id = ?`, nm.SenderID).Scan(&m.SenderName)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return chat.Message{}, false, err
		}
	}
	return m, true, nil
}

// defaultPageLimit is the number of messages Messages returns when the
// page's limit is not positive.
const defaultPageLimit = 100

// Messages returns a page of conversation convID's messages, in ascending
// seq order: with p.After > 0 the oldest after p.After, otherwise the newest
// before p.Before (or the newest of all when p.Before is 0).
func (db *DB) Messages(ctx context.Context, convID int64, p chat.Page) ([]chat.Message, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = defaultPageLimit
	}
	var ms []chat.Message
	err := db.read(ctx, func(tx *sql.Tx) error {
		var rows *sql.Rows
		var err error
		switch {
		case p.After > 0:
			rows, err = tx.QueryContext(ctx, `SELECT `+messageCols+messagesFrom+`
				WHERE m.conv_id = ? AND m.seq > ?
				ORDER BY m.seq LIMIT ?`, convID, p.After, limit)
		case p.Before > 0:
			rows, err = tx.QueryContext(ctx, `SELECT `+messageCols+messagesFrom+`
				WHERE m.conv_id = ? AND m.seq < ?
				ORDER BY m.seq DESC LIMIT ?`, convID, p.Before, limit)
		default:
			rows, err = tx.QueryContext(ctx, `SELECT `+messageCols+messagesFrom+`
				WHERE m.conv_id = ?
				ORDER BY m.seq DESC LIMIT ?`, convID, limit)
		}
		if err != nil {
			return err
		}
		defer rows.Close()
		ms = []chat.Message{}
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				return err
			}
			ms = append(ms, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("load messages of %d: %w", convID, err)
	}
	if p.After <= 0 {
		slices.Reverse(ms)
	}
	return ms, nil
}
