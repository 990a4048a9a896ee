package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
)

// PutLoginCode adds c as a pending code of c.Email, with no attempts
// counted, and keeps of the address's codes the keep (at least 1) that
// expire last, of two expiring at once the one put last.
func (db *DB) PutLoginCode(ctx context.Context, c chat.LoginCode, keep int) error {
	err := db.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO login_codes (email, hash, expires_at, attempts) VALUES ($1, $2, $3, 0)
			ON CONFLICT (email, hash) DO UPDATE SET expires_at = excluded.expires_at, attempts = 0`,
			c.Email, c.Hash, ts(c.ExpiresAt))
		if err != nil {
			return err
		}
		return keepLoginCodes(ctx, tx, c.Email, keep)
	})
	if err != nil {
		return fmt.Errorf("put login code of %s: %w", c.Email, mapErr(ctx, err))
	}
	return nil
}

// keepLoginCodes removes the pending codes of email but the keep (at
// least 1) that expire last. It locks them in hash order first, as
// AttemptLoginCodes and UseLoginCode do: more than one are removed when
// codes asked for at once each kept its own.
func keepLoginCodes(ctx context.Context, tx pgx.Tx, email string, keep int) error {
	_, err := tx.Exec(ctx, `DELETE FROM login_codes c USING (
			SELECT hash FROM login_codes WHERE email = $1 AND id NOT IN (
				SELECT id FROM login_codes WHERE email = $1 ORDER BY expires_at DESC, id DESC LIMIT $2)
			ORDER BY hash FOR UPDATE) l
		WHERE c.email = $1 AND c.hash = l.hash`, email, max(keep, 1))
	return err
}

// RestoreLoginCode puts c back as PutLoginCode does, unless c.Email has a
// pending code with its hash, and reports whether it did: false too when
// c is not among the keep kept.
func (db *DB) RestoreLoginCode(ctx context.Context, c chat.LoginCode, keep int) (bool, error) {
	var pending bool
	err := db.write(ctx, func(tx pgx.Tx) error {
		pending = false
		tag, err := tx.Exec(ctx, `INSERT INTO login_codes (email, hash, expires_at, attempts) VALUES ($1, $2, $3, 0)
			ON CONFLICT (email, hash) DO NOTHING`, c.Email, c.Hash, ts(c.ExpiresAt))
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		if err := keepLoginCodes(ctx, tx, c.Email, keep); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM login_codes WHERE email = $1 AND hash = $2)`, c.Email, c.Hash).Scan(&pending)
	})
	if err != nil {
		return false, fmt.Errorf("restore login code of %s: %w", c.Email, mapErr(ctx, err))
	}
	return pending, nil
}

// AttemptLoginCodes counts one try against every pending code of email
// and returns them with that try counted.
func (db *DB) AttemptLoginCodes(ctx context.Context, email string) ([]chat.LoginCode, error) {
	// The rows are locked in one order, as UseLoginCode locks them: else
	// two statements each holding a row the other waits for deadlock.
	rows, err := db.pool.Query(ctx, `WITH locked AS (SELECT hash FROM login_codes WHERE email = $1 ORDER BY hash FOR UPDATE)
		UPDATE login_codes SET attempts = attempts + 1 WHERE email = $1 AND hash IN (SELECT hash FROM locked)
		RETURNING email, hash, expires_at, attempts`, email)
	var cs []chat.LoginCode
	if err == nil {
		cs, err = collectRows(rows, func(r scanner) (chat.LoginCode, error) {
			var c chat.LoginCode
			err := r.Scan(&c.Email, &c.Hash, &c.ExpiresAt, &c.Attempts)
			c.ExpiresAt = utc(c.ExpiresAt)
			return c, err
		})
	}
	if err == nil && len(cs) == 0 {
		err = chat.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("attempt login codes of %s: %w", email, mapErr(ctx, err))
	}
	return cs, nil
}

// DeleteLoginCode removes the pending code of email whose hash is hash and
// reports whether it did.
func (db *DB) DeleteLoginCode(ctx context.Context, email, hash string) (bool, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM login_codes WHERE email = $1 AND hash = $2`, email, hash)
	if err != nil {
		return false, fmt.Errorf("delete login code of %s: %w", email, mapErr(ctx, err))
	}
	return tag.RowsAffected() > 0, nil
}

// DropLoginCode removes the pending code of email whose hash is hash and
// reports whether it was pending with no try counted against it.
func (db *DB) DropLoginCode(ctx context.Context, email, hash string) (bool, error) {
	var attempts int
	err := db.pool.QueryRow(ctx, `DELETE FROM login_codes WHERE email = $1 AND hash = $2 RETURNING attempts`, email, hash).Scan(&attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("drop login code of %s: %w", email, mapErr(ctx, err))
	}
	return attempts == 0, nil
}

// UseLoginCode removes every pending code of email if one has hash hash,
// and reports whether it did. The removal of that one decides: of
// concurrent callers, the others find it gone. The address's codes are
// locked first, in one order: a caller removing one code, then waiting
// for another that a caller removing that one first holds, would
// deadlock.
func (db *DB) UseLoginCode(ctx context.Context, email, hash string) (bool, error) {
	var used bool
	err := db.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT FROM login_codes WHERE email = $1 ORDER BY hash FOR UPDATE`, email); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM login_codes WHERE email = $1 AND hash = $2`, email, hash)
		if used = err == nil && tag.RowsAffected() > 0; !used {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM login_codes WHERE email = $1`, email)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("use login code of %s: %w", email, mapErr(ctx, err))
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
	if err := storable(s.TokenHash); err != nil {
		return chat.Session{}, fmt.Errorf("create session of user %d: %w", s.UserID, err)
	}
	err := db.write(ctx, func(tx pgx.Tx) error {
		if _, err := userByID(ctx, tx, s.UserID); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `INSERT INTO sessions (user_id, token_hash, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5)
			RETURNING id`, s.UserID, s.TokenHash, ts(s.CreatedAt), ts(s.ExpiresAt), ts(s.UsedAt)).Scan(&s.ID)
		if isUniqueViolation(err) {
			return chat.ErrConflict
		}
		if isForeignKeyViolation(err) { // the user was deleted meanwhile
			return chat.ErrNotFound
		}
		return err
	})
	if err != nil {
		return chat.Session{}, fmt.Errorf("create session of user %d: %w", s.UserID, err)
	}
	s.CreatedAt, s.ExpiresAt, s.UsedAt = utc(ts(s.CreatedAt)), utc(ts(s.ExpiresAt)), utc(ts(s.UsedAt))
	return s, nil
}

// Session returns the session with this token hash and its user, in one
// query: every authenticated request runs it.
func (db *DB) Session(ctx context.Context, tokenHash string) (chat.Session, chat.User, error) {
	var (
		s chat.Session
		u chat.User
	)
	err := db.pool.QueryRow(ctx, `SELECT s.id, s.user_id, s.token_hash, s.created_at, s.expires_at, s.used_at,
			u.id, u.email, u.name, u.created_at, u.name_version
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1`,
		tokenHash).Scan(&s.ID, &s.UserID, &s.TokenHash, &s.CreatedAt, &s.ExpiresAt, &s.UsedAt, &u.ID, &u.Email, &u.Name, &u.CreatedAt, &u.NameVersion)
	if errors.Is(err, pgx.ErrNoRows) {
		err = chat.ErrNotFound
	}
	if err != nil {
		return chat.Session{}, chat.User{}, fmt.Errorf("load session: %w", mapErr(ctx, err))
	}
	s.CreatedAt, s.ExpiresAt, s.UsedAt, u.CreatedAt = utc(s.CreatedAt), utc(s.ExpiresAt), utc(s.UsedAt), utc(u.CreatedAt)
	return s, u, nil
}

// UseSession sets the last use and the expiry of session id;
// chat.ErrNotFound if there is no such session.
func (db *DB) UseSession(ctx context.Context, id int64, used, expires time.Time) error {
	tag, err := db.pool.Exec(ctx, `UPDATE sessions SET used_at = $1, expires_at = $2 WHERE id = $3`, ts(used), ts(expires), id)
	if err == nil && tag.RowsAffected() == 0 {
		err = chat.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("use session %d: %w", id, mapErr(ctx, err))
	}
	return nil
}

// DeleteSession removes session id; removing a missing session is no error.
func (db *DB) DeleteSession(ctx context.Context, id int64) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete session %d: %w", id, mapErr(ctx, err))
	}
	return nil
}

// TrimSessions removes the sessions of userID made before session keep but
// the n of them used last, and returns the IDs it removed.
//
// It locks the rows in id order, as UseSessions and DeleteExpired do, so
// that two of them never wait for each other's rows in a cycle (a
// deadlock, which PostgreSQL ends after a second by failing one).
func (db *DB) TrimSessions(ctx context.Context, userID, keep int64, n int) ([]int64, error) {
	rows, err := db.pool.Query(ctx, `DELETE FROM sessions s USING (
			SELECT id FROM sessions WHERE id IN (
				SELECT id FROM sessions WHERE user_id = $1 AND id < $2
				ORDER BY used_at DESC, id DESC OFFSET $3)
			ORDER BY id FOR UPDATE) l
		WHERE s.id = l.id
		RETURNING s.id`, userID, keep, max(n, 0))
	if err == nil {
		var ended []int64
		if ended, err = collectRows(rows, func(s scanner) (id int64, err error) { return id, s.Scan(&id) }); err == nil {
			return ended, nil
		}
	}
	return nil, fmt.Errorf("trim sessions of user %d: %w", userID, mapErr(ctx, err))
}

// LiveSessions returns those of ids that are sessions expiring after now,
// without their token hash.
func (db *DB) LiveSessions(ctx context.Context, ids []int64, now time.Time) ([]chat.Session, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, user_id, created_at, expires_at, used_at FROM sessions
		WHERE id = ANY($1) AND expires_at > $2`, ids, ts(now))
	if err == nil {
		var live []chat.Session
		live, err = collectRows(rows, func(s scanner) (sess chat.Session, err error) {
			err = s.Scan(&sess.ID, &sess.UserID, &sess.CreatedAt, &sess.ExpiresAt, &sess.UsedAt)
			sess.CreatedAt, sess.ExpiresAt, sess.UsedAt = utc(sess.CreatedAt), utc(sess.ExpiresAt), utc(sess.UsedAt)
			return sess, err
		})
		if err == nil {
			return live, nil
		}
	}
	return nil, fmt.Errorf("load live sessions: %w", mapErr(ctx, err))
}

// UseSessions sets the last use of those of ids that are sessions used
// before used, in one statement, taking the rows in id order
// (TrimSessions).
func (db *DB) UseSessions(ctx context.Context, ids []int64, used time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := db.pool.Exec(ctx, `UPDATE sessions s SET used_at = $1 FROM (
			SELECT id FROM sessions WHERE id = ANY($2) AND used_at < $1 ORDER BY id FOR NO KEY UPDATE) l
		WHERE s.id = l.id`, ts(used), ids); err != nil {
		return fmt.Errorf("use %d sessions: %w", len(ids), mapErr(ctx, err))
	}
	return nil
}

// DeleteExpired removes up to limit of the sessions and login codes that
// expire at or before now, sessions first, taking the sessions' rows in id
// order (TrimSessions) and the codes' in the order of (address, hash), as
// AttemptLoginCodes and UseLoginCode take an address's codes.
func (db *DB) DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var n int64
	err := db.write(ctx, func(tx pgx.Tx) error {
		s, err := tx.Exec(ctx, `DELETE FROM sessions s USING (
			SELECT id FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at <= $1 LIMIT $2)
			AND expires_at <= $1
			ORDER BY id FOR UPDATE) l
		WHERE s.id = l.id`, ts(now), limit)
		if err != nil || s.RowsAffected() >= int64(limit) {
			n = s.RowsAffected()
			return err
		}
		c, err := tx.Exec(ctx, `DELETE FROM login_codes c USING (
			SELECT email, hash FROM login_codes WHERE (email, hash) IN (
				SELECT email, hash FROM login_codes WHERE expires_at <= $1 LIMIT $2)
			AND expires_at <= $1
			ORDER BY email, hash FOR UPDATE) l
		WHERE c.email = l.email AND c.hash = l.hash`, ts(now), int64(limit)-s.RowsAffected())
		n = s.RowsAffected() + c.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions and login codes: %w", err)
	}
	return int(n), nil
}
