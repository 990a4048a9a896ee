-- name_version counts the changes of a user's name (SetUserName bumps it
-- in the same statement): the version of the name that a rename's news
-- carries (chat.Event.Seq of an EventUser), by which hubs and clients
-- keep an older name, told late from another node, from undoing a newer
-- one. 0 is a name never changed since.
ALTER TABLE users ADD COLUMN name_version INTEGER NOT NULL DEFAULT 0;
