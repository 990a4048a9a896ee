package chat

import (
	"cmp"
	"log/slog"
	"slices"
)

// StoredEmail is a user's address as a store holds it.
type StoredEmail struct {
	ID    int64
	Email string
}

// KeptEmail is a user whose stored address, folded (FoldEmail), is the
// address of another user, Holder: the user keeps the address as stored,
// which no sign-in reaches any more (every address given is folded first),
// and Holder is the one that the folded address signs in to.
type KeptEmail struct {
	ID     int64
	Email  string
	Holder int64
}

// FoldedEmails returns the new addresses of those of users (all the users
// of a store) whose stored address FoldEmail changes, by ID. Before
// addresses were folded, only lower-cased, one mailbox could be stored
// twice, as "café" with a precomposed é and with e and U+0301, and so
// hold two accounts.
//
// An address becomes its folded form, unless that form is another's: a
// user signed in to by it today keeps it, and of several spellings of one
// address the oldest user (the smallest ID) takes it. The others keep
// their address as it is, so that neither account loses anything, and are
// returned in kept. No new address is another's before or after, so a
// store may change them one by one under its unique index.
func FoldedEmails(users []StoredEmail) (renames map[int64]string, kept []KeptEmail) {
	holder := make(map[string]int64, len(users))
	for _, u := range users {
		holder[u.Email] = u.ID
	}
	renames = make(map[int64]string)
	sorted := slices.Clone(users)
	slices.SortFunc(sorted, func(a, b StoredEmail) int { return cmp.Compare(a.ID, b.ID) })
	for _, u := range sorted {
		email := FoldEmail(u.Email)
		if email == u.Email {
			continue
		}
		if id, ok := holder[email]; ok {
			kept = append(kept, KeptEmail{ID: u.ID, Email: u.Email, Holder: id})
			continue
		}
		holder[email] = u.ID
		renames[u.ID] = email
	}
	return renames, kept
}

// EmailTable is what MigrateEmailsNFC asks of a store, inside the
// migration's transaction.
type EmailTable struct {
	// Users returns every user's address.
	Users func() ([]StoredEmail, error)
	// SetUserEmail writes a user's new address.
	SetUserEmail func(id int64, email string) error
	// CodeEmails returns the address of every pending login code.
	CodeEmails func() ([]string, error)
	// DeleteCode removes the pending login code of an address.
	DeleteCode func(email string) error
	// Log, if not nil, is told of each user kept apart, as a warning
	// naming Migration, the store's migration that folds the addresses.
	Log       *slog.Logger
	Migration int
}

// MigrateEmailsNFC folds every stored address of t (FoldEmail): the
// users' as FoldedEmails decides, by ID (the order in which rows are
// locked), returning those kept apart. The pending login codes whose
// address folding changes are deleted: each is hashed with the address it
// was asked for (hashCode), so it could not be verified under the folded
// one, and whoever asked for it may ask again. The users kept apart are
// logged to t.Log.
func MigrateEmailsNFC(t EmailTable) ([]KeptEmail, error) {
	users, err := t.Users()
	if err != nil {
		return nil, err
	}
	renames, kept := FoldedEmails(users)
	ids := make([]int64, 0, len(renames))
	for id := range renames {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := t.SetUserEmail(id, renames[id]); err != nil {
			return nil, err
		}
	}
	codes, err := t.CodeEmails()
	if err != nil {
		return nil, err
	}
	slices.Sort(codes)
	for _, email := range codes {
		if FoldEmail(email) != email {
			if err := t.DeleteCode(email); err != nil {
				return nil, err
			}
		}
	}
	if t.Log != nil {
		for _, k := range kept {
			t.Log.Warn("user's address kept as stored: folded (NFC, lower case, an internationalized domain in Unicode), it is the address of the holder, who signs in with it",
				"migration", t.Migration, "user", k.ID, "holder", k.Holder)
		}
	}
	return kept, nil
}
