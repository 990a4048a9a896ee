package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
)

// namesNFC takes every stored name to NFC (migration 0005), as
// chat.MigrateNamesNFC decides.
func namesNFC(ctx context.Context, tx pgx.Tx) error {
	exec := func(query string, args ...any) error {
		_, err := tx.Exec(ctx, query, args...)
		return err
	}
	return chat.MigrateNamesNFC(chat.NameTable{
		Users: func() ([]chat.StoredName, error) {
			return storedNames(ctx, tx, `SELECT id, name, name_key FROM users`)
		},
		Convs: func(group bool) ([]chat.StoredName, error) {
			kind := kindRoom
			if group {
				kind = kindGroup
			}
			return storedNames(ctx, tx, `SELECT id, name, name_key FROM conversations WHERE kind = $1 AND name_key IS NOT NULL`, kind)
		},
		RenameUser: func(id int64, name, key string) error {
			return exec(`UPDATE users SET name = $1, name_key = $2 WHERE id = $3`, name, key, id)
		},
		RenameConv: func(id int64, name, key string) error {
			return exec(`UPDATE conversations SET name = $1, name_key = $2 WHERE id = $3`, name, key, id)
		},
	}, nameKey)
}

func storedNames(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]chat.StoredName, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[chat.StoredName])
}

// nameSkeletons fills name_skel of every room and group (migration 0007),
// as chat.SkeletonKeys decides, by ID.
func nameSkeletons(ctx context.Context, tx pgx.Tx) error {
	for _, kind := range []string{kindRoom, kindGroup} {
		names, err := storedNames(ctx, tx, `SELECT id, name, name_key FROM conversations WHERE kind = $1 AND name_key IS NOT NULL`, kind)
		if err != nil {
			return err
		}
		for _, n := range chat.SkeletonKeys(names) {
			if _, err := tx.Exec(ctx, `UPDATE conversations SET name_skel = $1 WHERE id = $2`, n.Key, n.ID); err != nil {
				return err
			}
		}
	}
	return nil
}
