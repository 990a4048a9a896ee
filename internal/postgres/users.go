package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
)

const userCols = `id, email, name, created_at, name_version`

func scanUser(s scanner) (chat.User, error) {
	var u chat.User
	if err := s.Scan(&u.ID, &u.Email, &u.Name, &u.CreatedAt, &u.NameVersion); err != nil {
		return chat.User{}, err
	}
	u.CreatedAt = utc(u.CreatedAt)
	return u, nil
}

// EnsureUser returns the user with this email, creating it when absent.
func (db *DB) EnsureUser(ctx context.Context, email string, at time.Time) (u chat.User, created bool, err error) {
	if err := storable(email); err != nil {
		return chat.User{}, false, fmt.Errorf("ensure user %s: %w", email, err)
	}
	err = db.write(ctx, func(tx pgx.Tx) error {
		created = false
		u, err = scanUser(tx.QueryRow(ctx, `INSERT INTO users (email, created_at) VALUES ($1, $2)
			ON CONFLICT (email) DO NOTHING
			RETURNING `+userCols, email, ts(at)))
		if err == nil {
			created = true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// Read committed: this statement sees the row that the insert
		// conflicted with, committed by now.
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE email = $1`, email))
		return err
	})
	if err != nil {
		return chat.User{}, false, fmt.Errorf("ensure user %s: %w", email, err)
	}
	return u, created, nil
}

// User returns the user with this id.
func (db *DB) User(ctx context.Context, id int64) (chat.User, error) {
	u, err := userByID(ctx, db.pool, id)
	if err != nil {
		return chat.User{}, fmt.Errorf("load user %d: %w", id, mapErr(ctx, err))
	}
	return u, nil
}

func userByID(ctx context.Context, q querier, id int64) (chat.User, error) {
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.User{}, chat.ErrNotFound
	}
	return u, err
}

// Users returns the users with these ids, by id; unknown ids are skipped.
func (db *DB) Users(ctx context.Context, ids []int64) ([]chat.User, error) {
	if len(ids) == 0 {
		return []chat.User{}, nil
	}
	us, err := db.queryUsers(ctx, `SELECT `+userCols+` FROM users WHERE id = ANY($1) ORDER BY id`, ids)
	if err != nil {
		return nil, fmt.Errorf("load users: %w", err)
	}
	return us, nil
}

// SetUserName changes the name of user id, counting the change in its
// NameVersion, and returns the user.
func (db *DB) SetUserName(ctx context.Context, id int64, name string) (chat.User, error) {
	if err := storable(name); err != nil {
		return chat.User{}, fmt.Errorf("set name of user %d: %w", id, err)
	}
	u, err := scanUser(db.pool.QueryRow(ctx, `UPDATE users SET name = $1, name_key = $2, name_version = name_version + 1 WHERE id = $3 RETURNING `+userCols,
		name, nameKey(name), id))
	if errors.Is(err, pgx.ErrNoRows) {
		err = chat.ErrNotFound
	}
	if err != nil {
		return chat.User{}, fmt.Errorf("set name of user %d: %w", id, mapErr(ctx, err))
	}
	return u, nil
}

// queryUsers runs a query of users (userCols or publicUserCols).
func (db *DB) queryUsers(ctx context.Context, query string, args ...any) ([]chat.User, error) {
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	us, err := collectRows(rows, scanUser)
	return us, mapErr(ctx, err)
}
