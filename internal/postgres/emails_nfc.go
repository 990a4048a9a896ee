package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
)

// foldEmails returns the Go step of migration version (0008, 0010),
// which folds every stored address (chat.FoldEmail) as
// chat.MigrateEmailsNFC decides, and logs the users kept apart.
func (db *DB) foldEmails(version int) func(ctx context.Context, tx pgx.Tx) error {
	return func(ctx context.Context, tx pgx.Tx) error {
		exec := func(query string, args ...any) error {
			_, err := tx.Exec(ctx, query, args...)
			return err
		}
		_, err := chat.MigrateEmailsNFC(chat.EmailTable{
			Users: func() ([]chat.StoredEmail, error) {
				rows, err := tx.Query(ctx, `SELECT id, email FROM users`)
				if err != nil {
					return nil, err
				}
				return pgx.CollectRows(rows, pgx.RowToStructByPos[chat.StoredEmail])
			},
			SetUserEmail: func(id int64, email string) error {
				return exec(`UPDATE users SET email = $1 WHERE id = $2`, email, id)
			},
			CodeEmails: func() ([]string, error) {
				rows, err := tx.Query(ctx, `SELECT email FROM login_codes`)
				if err != nil {
					return nil, err
				}
				return pgx.CollectRows(rows, pgx.RowTo[string])
			},
			DeleteCode: func(email string) error {
				return exec(`DELETE FROM login_codes WHERE email = $1`, email)
			},
			Log:       db.log,
			Migration: version,
		})
		return err
	}
}
