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

// PutLoginCode adds c as a pending code of c.Email, with no attempts
// counted, and keeps of the address's codes the keep (at least 1) that
// expire last, of two expiring at once the one put last.
func (db *DB) PutLoginCode(ctx context.Context, c chat.LoginCode, keep int) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO login_codes (email, hash, expires_at, attempts) VALUES (?, ?, ?, 0)
			ON CONFLICT (email, hash) DO UPDATE SET expires_at = excluded.expires_at, attempts = 0`,
			c.Email, c.Hash, micros(c.ExpiresAt))
		if err != nil {
			return err
		}
		return keepLoginCodes(ctx, tx, c.Email, keep)
	})
	if err != nil {
		return fmt.Errorf("put login code of %s: %w", c.Email, err)
	}
	return nil
}

// keepLoginCodes removes the pending codes of email but the keep (at
// least 1) that expire last.
func keepLoginCodes(ctx context.Context, tx *sql.Tx, email string, keep int) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM login_codes WHERE email = ? AND id NOT IN (
		SELECT id FROM login_codes WHERE email = ? ORDER BY expires_at DESC, id DESC LIMIT ?)`, email, email, max(keep, 1))
	return err
}

// RestoreLoginCode puts c back as PutLoginCode does, unless c.Email has a
// pending code with its hash, and reports whether it did: false too when
// c is not among the keep kept.
func (db *DB) RestoreLoginCode(ctx context.Context, c chat.LoginCode, keep int) (bool, error) {
	var pending bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		pending = false
		n, err := affected(tx.ExecContext(ctx, `INSERT INTO login_codes (email, hash, expires_at, attempts) VALUES (?, ?, ?, 0)
			ON CONFLICT (email, hash) DO NOTHING`, c.Email, c.Hash, micros(c.ExpiresAt)))
		if err != nil || n == 0 {
			return err
		}
		if err := keepLoginCodes(ctx, tx, c.Email, keep); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM login_codes WHERE email = ? AND hash = ?)`, c.Email, c.Hash).Scan(&pending)
	})
	if err != nil {
		return false, fmt.Errorf("restore login code of %s: %w", c.Email, err)
	}
	return pending, nil
}

// AttemptLoginCodes counts one try against every pending code of email
// and returns them with that try counted.
func (db *DB) AttemptLoginCodes(ctx context.Context, email string) ([]chat.LoginCode, error) {
	var cs []chat.LoginCode
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		cs, err = queryAll(ctx, tx, `UPDATE login_codes SET attempts = attempts + 1 WHERE email = ?
			RETURNING email, hash, expires_at, attempts`, []any{email}, func(r scanner) (chat.LoginCode, error) {
			var c chat.LoginCode
			var expires int64
			err := r.Scan(&c.Email, &c.Hash, &expires, &c.Attempts)
			c.ExpiresAt = fromMicros(expires)
			return c, err
		})
		if err == nil && len(cs) == 0 {
			return chat.ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attempt login codes of %s: %w", email, err)
	}
	return cs, nil
}

// DeleteLoginCode removes the pending code of email whose hash is hash and
// reports whether it did.
func (db *DB) DeleteLoginCode(ctx context.Context, email, hash string) (bool, error) {
	var deleted bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		n, err := affected(tx.ExecContext(ctx, `DELETE FROM login_codes WHERE email = ? AND hash = ?`, email, hash))
		deleted = n > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("delete login code of %s: %w", email, err)
	}
	return deleted, nil
}

// DropLoginCode removes the pending code of email whose hash is hash and
// reports whether it was pending with no try counted against it.
func (db *DB) DropLoginCode(ctx context.Context, email, hash string) (bool, error) {
	var untried bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		var attempts int
		err := tx.QueryRowContext(ctx, `DELETE FROM login_codes WHERE email = ? AND hash = ? RETURNING attempts`, email, hash).Scan(&attempts)
		if errors.Is(err, sql.ErrNoRows) {
			untried = false
			return nil
		}
		untried = err == nil && attempts == 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("drop login code of %s: %w", email, err)
	}
	return untried, nil
}

// UseLoginCode removes every pending code of email if one has hash hash,
// and reports whether it did.
func (db *DB) UseLoginCode(ctx context.Context, email, hash string) (bool, error) {
	var used bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		n, err := affected(tx.ExecContext(ctx, `DELETE FROM login_codes WHERE email = ? AND hash = ?`, email, hash))
		if used = n > 0; err != nil || !used {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM login_codes WHERE email = ?`, email)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("use login code of %s: %w", email, err)
	}
	return used, nil
}

// CreateSession stores s and returns it with its ID; a zero UsedAt is
// stored as CreatedAt. It returns chat.ErrNotFound if the user does not
// exist and chat.ErrConflict if another session has the same token hash.
func (db *DB) CreateSession(ctx context.Context, s chat.Session) (chat.Session, error) {
	if s.UsedAt.IsZero() {
		s.UsedAt = s.CreatedAt
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := userByID(ctx, tx, s.UserID); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO sessions (user_id, token_hash, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?)
			RETURNING id`, s.UserID, s.TokenHash, micros(s.CreatedAt), micros(s.ExpiresAt), micros(s.UsedAt)).Scan(&s.ID)
		if isUniqueViolation(err) {
			return chat.ErrConflict
		}
		return err
	})
	if err != nil {
		return chat.Session{}, fmt.Errorf("create session of user %d: %w", s.UserID, err)
	}
	s.CreatedAt, s.ExpiresAt, s.UsedAt = fromMicros(micros(s.CreatedAt)), fromMicros(micros(s.ExpiresAt)), fromMicros(micros(s.UsedAt))
	return s, nil
}

// sessionSQL loads a session and its user by token hash: every
// authenticated request runs it, so it is one statement, run outside an
// explicit transaction (and, as every statement, parsed once per
// connection: stmtcache.go).
const sessionSQL = `SELECT s.id, s.user_id, s.token_hash, s.created_at, s.expires_at, s.used_at,
		u.id, u.email, u.name, u.created_at, u.name_version
	FROM sessions s JOIN users u ON u.id = s.user_id
	WHERE s.token_hash = ?`

// Session returns the session with this token hash and its user.
func (db *DB) Session(ctx context.Context, tokenHash string) (chat.Session, chat.User, error) {
	var (
		s                 chat.Session
		u                 chat.User
		created, expires  int64
		used, userCreated int64
	)
	err := db.ro.QueryRowContext(ctx, sessionSQL, tokenHash).Scan(&s.ID, &s.UserID, &s.TokenHash, &created, &expires, &used,
		&u.ID, &u.Email, &u.Name, &userCreated, &u.NameVersion)
	if errors.Is(err, sql.ErrNoRows) {
		err = chat.ErrNotFound
	}
	if err != nil {
		return chat.Session{}, chat.User{}, fmt.Errorf("load session: %w", err)
	}
	s.CreatedAt, s.ExpiresAt, s.UsedAt, u.CreatedAt = fromMicros(created), fromMicros(expires), fromMicros(used), fromMicros(userCreated)
	return s, u, nil
}

// UseSession sets the last use and the expiry of session id;
// chat.ErrNotFound if there is no such session.
func (db *DB) UseSession(ctx context.Context, id int64, used, expires time.Time) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		n, err := affected(tx.ExecContext(ctx, `UPDATE sessions SET used_at = ?, expires_at = ? WHERE id = ?`, micros(used), micros(expires), id))
		if err == nil && n == 0 {
			return chat.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("use session %d: %w", id, err)
	}
	return nil
}

// DeleteSession removes session id; removing a missing session is no error.
func (db *DB) DeleteSession(ctx context.Context, id int64) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete session %d: %w", id, err)
	}
	return nil
}

// TrimSessions removes the sessions of userID made before session keep but
// the n of them used last, and returns the IDs it removed.
func (db *DB) TrimSessions(ctx context.Context, userID, keep int64, n int) ([]int64, error) {
	var ended []int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		ended, err = queryAll(ctx, tx, `DELETE FROM sessions WHERE id IN (
				SELECT id FROM sessions WHERE user_id = ? AND id < ?
				ORDER BY used_at DESC, id DESC LIMIT -1 OFFSET ?)
			RETURNING id`,
			[]any{userID, keep, max(n, 0)}, func(s scanner) (id int64, err error) { return id, s.Scan(&id) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("trim sessions of user %d: %w", userID, err)
	}
	return ended, nil
}

// LiveSessions returns those of ids that are sessions expiring after now,
// without their token hash.
func (db *DB) LiveSessions(ctx context.Context, ids []int64, now time.Time) ([]chat.Session, error) {
	if len(ids) == 0 {
		return []chat.Session{}, nil
	}
	list, err := json.Marshal(ids)
	if err == nil {
		var live []chat.Session
		live, err = queryAll(ctx, db.ro, `SELECT id, user_id, created_at, expires_at, used_at FROM sessions
			WHERE id IN (SELECT value FROM json_each(?)) AND expires_at > ?`,
			[]any{string(list), micros(now)}, func(s scanner) (chat.Session, error) {
				var (
					sess                   chat.Session
					created, expires, used int64
				)
				err := s.Scan(&sess.ID, &sess.UserID, &created, &expires, &used)
				sess.CreatedAt, sess.ExpiresAt, sess.UsedAt = fromMicros(created), fromMicros(expires), fromMicros(used)
				return sess, err
			})
		if err == nil {
			return live, nil
		}
	}
	return nil, fmt.Errorf("load live sessions: %w", err)
}

// UseSessions sets the last use of those of ids that are sessions used
// before used, in one statement.
func (db *DB) UseSessions(ctx context.Context, ids []int64, used time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err == nil {
		err = db.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE sessions SET used_at = ?1
				WHERE id IN (SELECT value FROM json_each(?2)) AND used_at < ?1`, micros(used), string(list))
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("use %d sessions: %w", len(ids), err)
	}
	return nil
}

// DeleteExpired removes up to limit of the sessions and login codes that
// expire at or before now, sessions first.
func (db *DB) DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil // SQLite takes a negative LIMIT for none
	}
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		s, err := affected(tx.ExecContext(ctx, `DELETE FROM sessions WHERE id IN (
			SELECT id FROM sessions WHERE expires_at <= ? LIMIT ?)`, micros(now), limit))
		if err != nil || s >= int64(limit) {
			n = s
			return err
		}
		c, err := affected(tx.ExecContext(ctx, `DELETE FROM login_codes WHERE id IN (
			SELECT id FROM login_codes WHERE expires_at <= ? LIMIT ?)`, micros(now), int64(limit)-s))
		n = s + c
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions and login codes: %w", err)
	}
	return int(n), nil
}
