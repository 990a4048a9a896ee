package chat

import (
	"strconv"
	"strings"

	"github.com/mtibben/confusables"
)

// NameSkeleton is the form of a room or group name that is unique per
// kind beside the case-folded key: two names with one skeleton look
// alike. It is UTS #39's skeleton (confusables.txt: Cyrillic "а" and
// Latin "a" have one, as have "1" and "l", "0" and "O", "m" and "rn"),
// taken of the name, lower-cased, and taken again:
//
//   - of the name as it is shown, so capitals that look like Latin
//     capitals are caught ("НЕLLO" in Cyrillic is "HELLO"), though their
//     lower case is not Latin ("не");
//   - lower-cased, as names are unique whatever their case: a name that
//     looks like "HELLO" looks like the room "hello" is (entering "HELLO"
//     enters it);
//   - again, for what the lower case maps ("G0OD" is "GOOD", then "good").
//
// Because the skeleton of a capital I is "l", "MAIL" has the skeleton of
// "mall": in many typefaces they are one picture, "MAIL" and "MAlL".
// The result is NFD, as UTS #39 defines it; it is a key, never shown.
func NameSkeleton(name string) string {
	return confusables.Skeleton(strings.ToLower(confusables.Skeleton(name)))
}

// skeletonSep parts a skeleton from the id that makes it unique (see
// SkeletonKeys). No name holds it: room names are letters, digits, '-' and
// '_'; group names have no control characters.
const skeletonSep = "\x1f#"

// SkeletonKeys returns names (rooms, or groups, of a store that have no
// skeleton key yet) by ID, each with Key its skeleton key: its
// NameSkeleton; but where that is taken already, by a key of the store
// (stored reports whether a room, or group, holds it) or by an earlier
// one of names, the skeleton, skeletonSep and its ID: unique, and no
// name's skeleton. So of names that look alike, a room (or group) that
// holds the skeleton keeps it, else the oldest of names (the smallest ID)
// takes it; no one is renamed, and a new name clashes with the holder.
//
// The migration that adds the keys gives it every name; a store that
// opens, those that a parley from before the keys made since.
func SkeletonKeys(names []StoredName, stored func(key string) (bool, error)) ([]StoredName, error) {
	s := sortedByID(names)
	taken := make(map[string]bool, len(s))
	for i, n := range s {
		k := NameSkeleton(n.Name)
		if !taken[k] {
			held, err := stored(k)
			if err != nil {
				return nil, err
			}
			taken[k] = held
		}
		if taken[k] {
			k += skeletonSep + strconv.FormatInt(n.ID, 10)
		}
		taken[k] = true
		s[i].Key = k
	}
	return s, nil
}
