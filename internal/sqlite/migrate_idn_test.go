package sqlite

import (
	"testing"

	"github.com/parley-chat/parley/internal/chat/chattest"
)

// idnRows are users and login codes stored before internationalized
// domains were folded to Unicode, as chattest.MigratedIDNEmails
// describes them.
const idnRows = `
INSERT INTO users (id, email, name, name_key, created_at) VALUES
	(1, 'ana@xn--bcher-kva.example', 'A', 'a', 1),
	(2, 'bob@xn--bcher-kva.example', 'B', 'b', 2),
	(3, 'bob@bücher.example', 'C', 'c', 3),
	(4, 'cy@bücher.example', 'D', 'd', 4);
INSERT INTO login_codes (email, hash, expires_at, attempts) VALUES
	('ana@xn--bcher-kva.example', 'x', 9000000000000000, 0),
	('cy@bücher.example', 'y', 9000000000000000, 0);
`

// TestMigrateEmailsIDN: migration 17 folds the stored addresses again,
// now with internationalized domains in Unicode, so that a user made with
// the domain's ASCII form signs in with either form.
func TestMigrateEmailsIDN(t *testing.T) {
	db, users, codes, log := migrateEmails(t, 16, idnRows)
	chattest.MigratedIDNEmails(t, db, users, codes, log)
}
