package sqlite

import (
	"context"
	"database/sql"

	"github.com/parley-chat/parley/internal/chat"
	"golang.org/x/text/unicode/norm"
)

// namesNFC takes every stored name to NFC (migration 0010): the users'
// display names, and the rooms' and groups' names as chat.NFCRenames
// decides, which renames a name that would take another's key.
func namesNFC(ctx context.Context, tx *sql.Tx) error {
	users, err := queryAll(ctx, tx, `SELECT id, name, name_key FROM users`, nil, scanStoredName)
	if err != nil {
		return err
	}
	for _, u := range users {
		if norm.NFC.IsNormalString(u.Name) {
			continue
		}
		name := norm.NFC.String(u.Name)
		if _, err := tx.ExecContext(ctx, `UPDATE users SET name = ?, name_key = ? WHERE id = ?`, name, nameKey(name), u.ID); err != nil {
			return err
		}
	}
	for _, k := range []struct {
		kind string
		max  int
	}{{kindRoom, chat.MaxRoomNameLen}, {kindGroup, chat.MaxGroupNameLen}} {
		names, err := queryAll(ctx, tx, `SELECT id, name, name_key FROM conversations WHERE kind = ? AND name_key IS NOT NULL ORDER BY id`,
			[]any{k.kind}, scanStoredName)
		if err != nil {
			return err
		}
		renames := chat.NFCRenames(names, nameKey, k.max)
		for _, n := range names { // by id, as queried
			name, ok := renames[n.ID]
			if !ok {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE conversations SET name = ?, name_key = ? WHERE id = ?`, name, nameKey(name), n.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func scanStoredName(r scanner) (chat.StoredName, error) {
	var n chat.StoredName
	return n, r.Scan(&n.ID, &n.Name, &n.Key)
}
