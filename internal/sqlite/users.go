package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

const userCols = `id, email, name, created_at, name_version`

func scanUser(s scanner) (chat.User, error) {
	var u chat.User
	var created int64
	if err := s.Scan(&u.ID, &u.Email, &u.Name, &created, &u.NameVersion); err != nil {
		return chat.User{}, err
	}
	u.CreatedAt = fromMicros(created)
	return u, nil
}

// EnsureUser returns the user with this email, creating it when absent.
func (db *DB) EnsureUser(ctx context.Context, email string, at time.Time) (u chat.User, created bool, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		u, err = scanUser(tx.QueryRowContext(ctx, `INSERT INTO users (email, created_at) VALUES (?, ?)
			ON CONFLICT (email) DO NOTHING
			RETURNING `+userCols, email, micros(at)))
		if err == nil {
			created = true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		u, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE email = ?`, email))
		return err
	})
	if err != nil {
		return chat.User{}, false, fmt.Errorf("ensure user %s: %w", email, err)
	}
	return u, created, nil
}

// User returns the user with this id.
func (db *DB) User(ctx context.Context, id int64) (chat.User, error) {
	u, err := userByID(ctx, db.ro, id)
	if err != nil {
		return chat.User{}, fmt.Errorf("load user %d: %w", id, err)
	}
	return u, nil
}

func userByID(ctx context.Context, tx querier, id int64) (chat.User, error) {
	u, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return chat.User{}, chat.ErrNotFound
	}
	return u, err
}

// Users returns the users with these ids, by id; unknown ids are skipped.
func (db *DB) Users(ctx context.Context, ids []int64) ([]chat.User, error) {
	us := []chat.User{}
	if len(ids) == 0 {
		return us, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("load users: %w", err)
	}
	us, err = db.queryUsers(ctx, `SELECT `+userCols+` FROM users
		WHERE id IN (SELECT value FROM json_each(?))
		ORDER BY id`, string(list))
	if err != nil {
		return nil, fmt.Errorf("load users: %w", err)
	}
	return us, nil
}

// SetUserName changes the name of user id, counting the change in its
// NameVersion, and returns the user.
func (db *DB) SetUserName(ctx context.Context, id int64, name string) (chat.User, error) {
	var u chat.User
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRowContext(ctx, `UPDATE users SET name = ?, name_key = ?, name_version = name_version + 1 WHERE id = ? RETURNING `+userCols, name, nameKey(name), id))
		if errors.Is(err, sql.ErrNoRows) {
			return chat.ErrNotFound
		}
		return err
	})
	if err != nil {
		return chat.User{}, fmt.Errorf("set name of user %d: %w", id, err)
	}
	return u, nil
}
