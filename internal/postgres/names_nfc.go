package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
	"golang.org/x/text/unicode/norm"
)

// namesNFC takes every stored name to NFC (migration 0005): the users'
// display names, and the rooms' and groups' names as chat.NFCRenames
// decides, which renames a name that would take another's key.
func namesNFC(ctx context.Context, tx pgx.Tx) error {
	users, err := storedNames(ctx, tx, `SELECT id, name, name_key FROM users ORDER BY id`)
	if err != nil {
		return err
	}
	for _, u := range users {
		if norm.NFC.IsNormalString(u.Name) {
			continue
		}
		name := norm.NFC.String(u.Name)
		if _, err := tx.Exec(ctx, `UPDATE users SET name = $1, name_key = $2 WHERE id = $3`, name, nameKey(name), u.ID); err != nil {
			return err
		}
	}
	for _, k := range []struct {
		kind string
		max  int
	}{{kindRoom, chat.MaxRoomNameLen}, {kindGroup, chat.MaxGroupNameLen}} {
		names, err := storedNames(ctx, tx, `SELECT id, name, name_key FROM conversations
			WHERE kind = $1 AND name_key IS NOT NULL ORDER BY id`, k.kind)
		if err != nil {
			return err
		}
		renames := chat.NFCRenames(names, nameKey, k.max)
		for _, n := range names { // by id, as the rows of other transactions are locked
			name, ok := renames[n.ID]
			if !ok {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE conversations SET name = $1, name_key = $2 WHERE id = $3`, name, nameKey(name), n.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func storedNames(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]chat.StoredName, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[chat.StoredName])
}
