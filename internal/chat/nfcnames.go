package chat

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// NameKey is the key that makes a room's or a group's name unique, and
// that users are searched by: the lower case of name, letter by letter,
// in NFC. Lower case alone is not enough: a capital that has no composed
// form (H̱, J̌, Ϊ́: H, J, Ϊ and a combining mark) has, letter by letter, a
// lower case that composes (ẖ, ǰ, ΐ), so "H̱ello" in lower case would not
// be "ẖello" as typed, and would name another room.
func NameKey(name string) string { return norm.NFC.String(strings.ToLower(name)) }

// StoredName is the name of a room or a group as a store holds it, and
// its unique key there (the lower case of the name).
type StoredName struct {
	ID   int64
	Name string
	Key  string
}

// NFCRenames returns the new names of those of names (all the rooms, or
// all the groups, of a store) that are not in NFC, by ID. Before names
// were taken in NFC, a name could be stored decomposed (conjoining
// Hangul jamo, U+212B ANGSTROM SIGN, CJK compatibility ideographs), and
// the room could no longer be found by name.
//
// A name becomes its NFC form, unless that form's key (key of the name)
// is another's: a room or group found by that key today keeps it, and of
// several decomposed spellings of one name the oldest (the smallest ID)
// takes it. The others get a visible suffix, "-2", "-3", ..., within max
// characters. No new key is another's key before or after, so a store
// may rename them one by one under its unique index.
func NFCRenames(names []StoredName, key func(string) string, max int) map[int64]string {
	taken := make(map[string]bool, len(names))
	for _, n := range names {
		taken[n.Key] = true
	}
	renames := make(map[int64]string)
	for _, n := range sortedByID(names) {
		if norm.NFC.IsNormalString(n.Name) {
			continue
		}
		name := norm.NFC.String(n.Name)
		for i := 2; ; i++ {
			k := key(name)
			if k == n.Key || !taken[k] {
				taken[k] = true
				renames[n.ID] = name
				break
			}
			name = withSuffix(norm.NFC.String(n.Name), "-"+strconv.Itoa(i), max)
		}
	}
	return renames
}

// NameTable is what MigrateNamesNFC asks of a store, inside the
// migration's transaction: its names, and a way to write one.
type NameTable struct {
	// Users returns every user's display name (Key: its name_key).
	Users func() ([]StoredName, error)
	// Convs returns the names of every room (group false) or group.
	Convs func(group bool) ([]StoredName, error)
	// RenameUser and RenameConv write a new name and its key.
	RenameUser, RenameConv func(id int64, name, key string) error
}

// MigrateNamesNFC takes every name of t to NFC: the users' display names
// as they are, the rooms' and groups' as NFCRenames decides, by ID (the
// order in which rows are locked). key is the store's name_key.
func MigrateNamesNFC(t NameTable, key func(string) string) error {
	users, err := t.Users()
	if err != nil {
		return err
	}
	for _, u := range sortedByID(users) {
		if norm.NFC.IsNormalString(u.Name) {
			continue
		}
		name := norm.NFC.String(u.Name)
		if err := t.RenameUser(u.ID, name, key(name)); err != nil {
			return err
		}
	}
	for _, group := range []bool{false, true} {
		names, err := t.Convs(group)
		if err != nil {
			return err
		}
		max := MaxRoomNameLen
		if group {
			max = MaxGroupNameLen
		}
		renames := NFCRenames(names, key, max)
		for _, n := range sortedByID(names) {
			if name, ok := renames[n.ID]; ok {
				if err := t.RenameConv(n.ID, name, key(name)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// withSuffix is name with suffix, name cut to fit max characters.
func withSuffix(name, suffix string, max int) string {
	for utf8.RuneCountInString(name)+len(suffix) > max && name != "" {
		_, size := utf8.DecodeLastRuneInString(name)
		name = norm.NFC.String(name[:len(name)-size])
	}
	return name + suffix
}

// sortedByID returns a copy of names ordered by ID.
func sortedByID(names []StoredName) []StoredName {
	s := append([]StoredName(nil), names...)
	slices.SortFunc(s, func(a, b StoredName) int { return cmp.Compare(a.ID, b.ID) })
	return s
}

// NameKeyChanges returns the new keys of those of names (all the rooms, or
// all the groups, of a store) whose key is not their NameKey, by ID: the
// names of capitals without a composed form (NameKey), stored before keys
// were composed. A name whose new key another's key is today keeps its
// own, as of several names that now share a key the oldest (the smallest
// ID) takes it: the others stay as they are, found by ID (in their
// members' lists), their names found as the one that holds the key. No
// new key is another's before or after, so a store may write them one
// by one under its unique index.
func NameKeyChanges(names []StoredName) map[int64]string {
	taken := make(map[string]bool, len(names))
	for _, n := range names {
		taken[n.Key] = true
	}
	changes := make(map[int64]string)
	for _, n := range sortedByID(names) {
		k := NameKey(n.Name)
		if k == n.Key || taken[k] {
			continue
		}
		taken[k] = true
		changes[n.ID] = k
	}
	return changes
}

// MigrateNameKeys gives the users', rooms' and groups' names of t their
// NameKey, the rooms' and groups' as NameKeyChanges decides, by ID (the
// order in which rows are locked). Names are not changed.
func MigrateNameKeys(t NameTable) error {
	users, err := t.Users()
	if err != nil {
		return err
	}
	for _, u := range sortedByID(users) {
		if k := NameKey(u.Name); k != u.Key {
			if err := t.RenameUser(u.ID, u.Name, k); err != nil {
				return err
			}
		}
	}
	for _, group := range []bool{false, true} {
		names, err := t.Convs(group)
		if err != nil {
			return err
		}
		changes := NameKeyChanges(names)
		for _, n := range sortedByID(names) {
			if k, ok := changes[n.ID]; ok {
				if err := t.RenameConv(n.ID, n.Name, k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
