-- name_version counts the changes of a user's name (SetUserName bumps it
-- in the same statement): the version of the name that a rename's news
-- carries (chat.Event.Seq of an EventUser), by which hubs and clients
-- keep an older name, told late by another node, from undoing a newer
-- one. 0 is a name never changed since; a node of the older parley
-- still running changes names without it, and its news has no version.
ALTER TABLE users ADD COLUMN IF NOT EXISTS name_version bigint NOT NULL DEFAULT 0;
