package postgres

import (
	"cmp"
	"context"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
)

// namesNFC takes every stored name to NFC (migration 0005), as
// chat.MigrateNamesNFC decides. It locks users against writes first, as
// the migration's SQL locks conversations: a node of the older parley
// renaming a user after the names were read would otherwise have the
// rename overwritten by the NFC form of the name it replaced.
func namesNFC(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return err
	}
	return chat.MigrateNamesNFC(nameTable(ctx, tx), nameKey)
}

// nameKeysNFC gives every stored name its chat.NameKey (migration 0011),
// as chat.MigrateNameKeys decides. It locks users against writes first,
// as the migration's SQL locks conversations, for the reason namesNFC
// does: a node of the older parley renaming one after the names were read
// would have its key overwritten by the key of the name it replaced.
func nameKeysNFC(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return err
	}
	return chat.MigrateNameKeys(nameTable(ctx, tx))
}

// nameTable is the users' and conversations' names in tx.
func nameTable(ctx context.Context, tx pgx.Tx) chat.NameTable {
	exec := func(query string, args ...any) error {
		_, err := tx.Exec(ctx, query, args...)
		return err
	}
	return chat.NameTable{
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
	}
}

func storedNames(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]chat.StoredName, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[chat.StoredName])
}

// nameSkeletons fills name_skel of the rooms and groups that have none, as
// chat.SkeletonKeys decides, by ID: all of them in migration 0007, and,
// each time a store opens (fillNameSkeletons), those that a node of an
// older parley has made since. A name changed meanwhile, by such a node
// renaming a group, is left for the next time.
//
// The rows are updated in id order, whatever their kind, as the group
// commit locks conversations (lockConvs): other nodes send meanwhile.
func nameSkeletons(ctx context.Context, tx pgx.Tx) error {
	var all []chat.StoredName
	for _, kind := range []string{kindRoom, kindGroup} {
		names, err := storedNames(ctx, tx, `SELECT id, name, name_key FROM conversations WHERE kind = $1 AND name_skel IS NULL`, kind)
		if err != nil {
			return err
		}
		keys, err := chat.SkeletonKeys(names, func(key string) (held bool, err error) {
			err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM conversations WHERE kind = $1 AND name_skel = $2)`, kind, key).Scan(&held)
			return held, err
		})
		if err != nil {
			return err
		}
		all = append(all, keys...)
	}
	slices.SortFunc(all, func(a, b chat.StoredName) int { return cmp.Compare(a.ID, b.ID) })
	for _, n := range all {
		if _, err := tx.Exec(ctx, `UPDATE conversations SET name_skel = $1 WHERE id = $2 AND name = $3 AND name_skel IS NULL`,
			n.Key, n.ID, n.Name); err != nil {
			return err
		}
	}
	return nil
}

// fillNameSkeletons gives a skeleton to the rooms and groups that a node
// of a parley from before name_skel (migration 0007) made, without one,
// since the migration ran: nothing is checked against them until then.
// With none missing, it costs one query, which reads, per kind, the
// first entry of the index of name_skel in descending order, where NULLs
// come first. (Asked for rows WHERE name_skel IS NULL, the planner
// expects many, counting direct conversations' NULLs, and scans the
// table for one.)
//
// Nodes that open at once take turns on an advisory lock, so that the
// later ones find nothing left to do. A room or group that an upgraded
// node makes meanwhile, with the skeleton that filling gives another,
// breaks the unique index when one commits: the filling, rolled back,
// runs again and sees it.
func (db *DB) fillNameSkeletons(ctx context.Context) error {
	var missing bool
	if err := db.pool.QueryRow(ctx, `SELECT
		coalesce((SELECT name_skel IS NULL FROM conversations WHERE kind = $1 ORDER BY name_skel DESC NULLS FIRST LIMIT 1), false) OR
		coalesce((SELECT name_skel IS NULL FROM conversations WHERE kind = $2 ORDER BY name_skel DESC NULLS FIRST LIMIT 1), false)`,
		kindRoom, kindGroup).Scan(&missing); err != nil || !missing {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := db.write(ctx, func(tx pgx.Tx) error {
			if err := lockSchema(ctx, tx, "parley name_skel "); err != nil {
				return err
			}
			return nameSkeletons(ctx, tx)
		})
		if err == nil || attempt >= maxAttempts || !isUniqueViolation(err, "conversations_kind_name_skel") {
			return err
		}
	}
}
