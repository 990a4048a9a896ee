package sqlite

import (
	"context"
	"database/sql"

	"github.com/parley-chat/parley/internal/chat"
)

// namesNFC takes every stored name to NFC (migration 0010), as
// chat.MigrateNamesNFC decides.
func namesNFC(ctx context.Context, tx *sql.Tx) error {
	exec := func(query string, args ...any) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	}
	return chat.MigrateNamesNFC(chat.NameTable{
		Users: func() ([]chat.StoredName, error) {
			return queryAll(ctx, tx, `SELECT id, name, name_key FROM users`, nil, scanStoredName)
		},
		Convs: func(group bool) ([]chat.StoredName, error) {
			kind := kindRoom
			if group {
				kind = kindGroup
			}
			return queryAll(ctx, tx, `SELECT id, name, name_key FROM conversations WHERE kind = ? AND name_key IS NOT NULL`,
				[]any{kind}, scanStoredName)
		},
		RenameUser: func(id int64, name, key string) error {
			return exec(`UPDATE users SET name = ?, name_key = ? WHERE id = ?`, name, key, id)
		},
		RenameConv: func(id int64, name, key string) error {
			return exec(`UPDATE conversations SET name = ?, name_key = ? WHERE id = ?`, name, key, id)
		},
	}, nameKey)
}

func scanStoredName(r scanner) (chat.StoredName, error) {
	var n chat.StoredName
	return n, r.Scan(&n.ID, &n.Name, &n.Key)
}

// nameSkeletons fills name_skel of every room and group (migration 0012),
// as chat.SkeletonKeys decides.
func nameSkeletons(ctx context.Context, tx *sql.Tx) error {
	for _, kind := range []string{kindRoom, kindGroup} {
		names, err := queryAll(ctx, tx, `SELECT id, name, name_key FROM conversations WHERE kind = ? AND name_key IS NOT NULL`,
			[]any{kind}, scanStoredName)
		if err != nil {
			return err
		}
		for _, n := range chat.SkeletonKeys(names) {
			if _, err := tx.ExecContext(ctx, `UPDATE conversations SET name_skel = ? WHERE id = ?`, n.Key, n.ID); err != nil {
				return err
			}
		}
	}
	return nil
}
