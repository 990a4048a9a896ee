package sqlite

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/parley/internal/chat"
)

// TestMigrateMessagesByConversation: migration 13 makes the messages table
// anew, WITHOUT ROWID, kept in (conv_id, seq) order. A database of version
// 12 keeps every message with all its columns, a body longer than a page
// included; afterwards the table has no rowid and no index of its primary
// key beside it, sends go on after each conversation's last seq, a client
// id stored before still makes its send idempotent, history reads back in
// order, and deleting a conversation still deletes its messages.
func TestMigrateMessagesByConversation(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	rw := migratedTo(t, path, 12)
	long := strings.Repeat("long ", 2000) // 10,000 bytes: overflow pages
	for _, q := range []string{
		`INSERT INTO users (id, email, name, name_key, created_at) VALUES (1, 'ada@example.com', 'Ada', 'ada', 1), (2, 'bob@example.com', 'Bob', 'bob', 1)`,
		`INSERT INTO conversations (id, kind, name, name_key, created_at, last_seq, last_active_at) VALUES (1, 'room', 'General', 'general', 1, 3, 7)`,
		`INSERT INTO conversations (id, kind, name, name_key, description, max_members, created_at, last_seq, last_active_at) VALUES (2, 'group', 'Crew', 'crew', 'the crew', 10, 2, 2, 8)`,
		`INSERT INTO members (conv_id, user_id, joined_at, read_seq, role) VALUES (1, 1, 1, 3, 'member'), (1, 2, 1, 0, 'member'), (2, 1, 2, 2, 'owner'), (2, 2, 2, 0, 'member')`,
		// Interleaved, as conversations' messages come in a table of rowids.
		`INSERT INTO messages (conv_id, seq, kind, sender_id, client_id, body, target_id, created_at) VALUES
			(1, 1, 'text', 1, 'a1', 'hi', 0, 3),
			(2, 1, 'added', 1, '', '', 2, 4),
			(1, 2, 'text', 2, 'b1', '` + long + `', 0, 5),
			(2, 2, 'text', 1, 'a1', 'crew only', 0, 8),
			(1, 3, 'joined', 2, '', '', 0, 7)`,
	} {
		if _, err := rw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.80s: %v", q, err)
		}
	}
	dump := func(q querier) []string {
		t.Helper()
		rows, err := queryAll(ctx, q, `SELECT conv_id, seq, kind, sender_id, client_id, body, target_id, created_at FROM messages ORDER BY conv_id, seq`, nil,
			func(r scanner) (string, error) {
				var conv, seq, sender, target, at int64
				var kind, client, body string
				err := r.Scan(&conv, &seq, &kind, &sender, &client, &body, &target, &at)
				return fmt.Sprintf("%d/%d %s from %d (%q) to %d at %d: %d bytes %.20q", conv, seq, kind, sender, client, target, at, len(body), body), err
			})
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	before := dump(rw)
	if len(before) != 5 {
		t.Fatalf("version 12 holds %d messages; want 5: %q", len(before), before)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}

	db := mustOpen(t, path)
	if diff := cmp.Diff(before, dump(db.ro)); diff != "" {
		t.Errorf("messages after migration 13 (-before +after):\n%s", diff)
	}
	var withoutRowid bool
	if err := db.ro.QueryRowContext(ctx, `SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = 'messages'`).Scan(&withoutRowid); err != nil {
		t.Fatal(err)
	}
	if !withoutRowid {
		t.Error("messages is a table of rowids; want WITHOUT ROWID")
	}
	indexes, err := queryAll(ctx, db.ro, `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'messages' ORDER BY name`, nil,
		func(r scanner) (string, error) {
			var s string
			return s, r.Scan(&s)
		})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"messages_client_id", "messages_text_created_at"}; !cmp.Equal(indexes, want) {
		t.Errorf("indexes of messages = %q; want %q", indexes, want)
	}

	at := time.UnixMicro(10)
	send := func(conv, sender int64, client, body string) (chat.Message, bool) {
		t.Helper()
		m, created, err := db.Append(ctx, chat.NewMessage{ConvID: conv, Kind: chat.KindText, SenderID: sender, ClientID: client, Body: body, MemberOnly: true, At: at})
		if err != nil {
			t.Fatalf("Append to %d from %d (%q): %v", conv, sender, client, err)
		}
		return m, created
	}
	if m, created := send(1, 2, "b1", "again"); created || m.Seq != 2 || len(m.Body) != len(long) {
		t.Errorf("a send with a client id stored before = seq %d, %d bytes, created %v; want message 2 as stored, not created", m.Seq, len(m.Body), created)
	}
	if m, created := send(1, 1, "a2", "next"); !created || m.Seq != 4 {
		t.Errorf("a new send to the room = seq %d, created %v; want 4, created", m.Seq, created)
	}
	if m, created := send(2, 2, "a1", "bob's own a1"); !created || m.Seq != 3 {
		t.Errorf("another sender's client id a1 in the group = seq %d, created %v; want 3, created", m.Seq, created)
	}
	page, err := db.Messages(ctx, 1, chat.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, m := range page {
		seqs = append(seqs, m.Seq)
	}
	if want := []int64{1, 2, 3, 4}; !cmp.Equal(seqs, want) {
		t.Errorf("the room's history = seqs %v; want %v", seqs, want)
	}

	if _, err := db.DeleteGroup(ctx, 2, 1, time.Now(), chat.Event{Type: chat.EventRemoved, ConvID: 2, Reason: "deleted"}); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := db.ro.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE conv_id = 2`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("after the group was deleted, %d of its messages are left; want none", left)
	}
}
