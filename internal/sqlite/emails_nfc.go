package sqlite

import (
	"context"
	"database/sql"

	"github.com/parley-chat/parley/internal/chat"
)

// foldEmails returns the Go step of migration version (0014, 0017),
// which folds every stored address (chat.FoldEmail) as
// chat.MigrateEmailsNFC decides, and logs the users kept apart.
func (db *DB) foldEmails(version int) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		exec := func(query string, args ...any) error {
			_, err := tx.ExecContext(ctx, query, args...)
			return err
		}
		_, err := chat.MigrateEmailsNFC(chat.EmailTable{
			Users: func() ([]chat.StoredEmail, error) {
				return queryAll(ctx, tx, `SELECT id, email FROM users`, nil, func(r scanner) (chat.StoredEmail, error) {
					var u chat.StoredEmail
					return u, r.Scan(&u.ID, &u.Email)
				})
			},
			SetUserEmail: func(id int64, email string) error {
				return exec(`UPDATE users SET email = ? WHERE id = ?`, email, id)
			},
			CodeEmails: func() ([]string, error) {
				return queryAll(ctx, tx, `SELECT email FROM login_codes`, nil, func(r scanner) (string, error) {
					var email string
					return email, r.Scan(&email)
				})
			},
			DeleteCode: func(email string) error {
				return exec(`DELETE FROM login_codes WHERE email = ?`, email)
			},
			Log:       db.log,
			Migration: version,
		})
		return err
	}
}
