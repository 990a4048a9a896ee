package sqlite

import (
	"context"
	"database/sql"

	"github.com/parley-chat/parley/internal/chat"
)

// namesNFC takes every stored name to NFC (migration 0010), as
// chat.MigrateNamesNFC decides.
func namesNFC(ctx context.Context, tx *sql.Tx) error {
	return chat.MigrateNamesNFC(nameTable(ctx, tx), nameKey)
}

// nameKeysNFC gives every stored name its chat.NameKey (migration 0018),
// as chat.MigrateNameKeys decides.
func nameKeysNFC(ctx context.Context, tx *sql.Tx) error {
	return chat.MigrateNameKeys(nameTable(ctx, tx))
}

// nameTable is the users' and conversations' names in tx.
func nameTable(ctx context.Context, tx *sql.Tx) chat.NameTable {
	exec := func(query string, args ...any) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	}
	return chat.NameTable{
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
	}
}

func scanStoredName(r scanner) (chat.StoredName, error) {
	var n chat.StoredName
	return n, r.Scan(&n.ID, &n.Name, &n.Key)
}

// nameSkeletons fills name_skel of the rooms and groups that have none, as
// chat.SkeletonKeys decides, by ID: all of them in migration 0012, and,
// each time the store opens (fillNameSkeletons), those that a parley from
// before it wrote to the file since.
func nameSkeletons(ctx context.Context, tx *sql.Tx) error {
	for _, kind := range []string{kindRoom, kindGroup} {
		names, err := queryAll(ctx, tx, `SELECT id, name, name_key FROM conversations WHERE kind = ? AND name_skel IS NULL`,
			[]any{kind}, scanStoredName)
		if err != nil {
			return err
		}
		keys, err := chat.SkeletonKeys(names, func(key string) (held bool, err error) {
			err = tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE kind = ? AND name_skel = ?)`, kind, key).Scan(&held)
			return held, err
		})
		if err != nil {
			return err
		}
		for _, n := range keys {
			if _, err := tx.ExecContext(ctx, `UPDATE conversations SET name_skel = ? WHERE id = ?`, n.Key, n.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// fillNameSkeletons gives a skeleton to the rooms and groups that a
// parley from before name_skel (migration 0012) made, without one, in a
// migrated file (one still running on it where nothing locks the file,
// lock_other.go): nothing is checked against them until then. With none
// missing, it costs one query on the index of name_skel.
func (db *DB) fillNameSkeletons(ctx context.Context) error {
	var missing bool
	if err := db.rw.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM conversations
		WHERE kind IN (?, ?) AND name_skel IS NULL)`, kindRoom, kindGroup).Scan(&missing); err != nil || !missing {
		return err
	}
	return db.write(ctx, func(tx *sql.Tx) error { return nameSkeletons(ctx, tx) })
}
