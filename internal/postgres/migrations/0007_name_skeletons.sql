-- Look-alike names: name_skel is the UTS #39 skeleton of a room's or
-- group's name (chat.NameSkeleton), unique per kind beside name_key, so
-- that "раypal" in Cyrillic is not another room than "paypal". NULL for
-- conversations without a name (NULLs are distinct). No SQL function
-- computes it: nameSkeletons fills it right after this, in the
-- migration's transaction, as chat.SkeletonKeys decides (names that
-- already look alike keep them; the later ones get a key of their own).
-- The ALTER locks the table until then: a node of the older parley makes
-- no room meanwhile. Rooms and groups it makes later have no skeleton,
-- and nothing is refused as looking like them, until a node opens the
-- database again: Open fills them the same way (fillNameSkeletons).
ALTER TABLE conversations ADD COLUMN name_skel text COLLATE "C";
CREATE UNIQUE INDEX conversations_kind_name_skel ON conversations (kind, name_skel);
