-- A conversation's id is never given again. Without AUTOINCREMENT SQLite
-- gives a new row the highest id plus one, so once the newest conversation
-- was deleted (a group), the next one took its id, and a send, a node's
-- memory of the id's kind or a client still holding it reached that other
-- conversation. AUTOINCREMENT keeps the highest id ever given
-- (sqlite_sequence). ALTER TABLE cannot add it, so the table is made anew
-- and its rows copied, with their ids, as https://sqlite.org/lang_altertable.html
-- describes; migrate runs this with foreign keys off, so that dropping the
-- old table deletes nothing that refers to it, and checks them before it
-- commits. The triggers of members that count a conversation's members
-- name the table: they are made again once it is back.
DROP TRIGGER members_count_insert;
DROP TRIGGER members_count_delete;
CREATE TABLE conversations_new (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	kind           TEXT    NOT NULL DEFAULT 'room',
	name           TEXT    NOT NULL DEFAULT '',
	name_key       TEXT,
	created_at     INTEGER NOT NULL,
	last_seq       INTEGER NOT NULL DEFAULT 0,
	last_active_at INTEGER NOT NULL,
	direct_key     TEXT,
	description    TEXT    NOT NULL DEFAULT '',
	max_members    INTEGER NOT NULL DEFAULT 0,
	member_count   INTEGER NOT NULL DEFAULT 0,
	UNIQUE (kind, name_key)
);
INSERT INTO conversations_new (id, kind, name, name_key, created_at, last_seq, last_active_at,
		direct_key, description, max_members, member_count)
	SELECT id, kind, name, name_key, created_at, last_seq, last_active_at,
		direct_key, description, max_members, member_count
	FROM conversations;
DROP TABLE conversations;
ALTER TABLE conversations_new RENAME TO conversations;
CREATE UNIQUE INDEX conversations_direct_key ON conversations (direct_key) WHERE direct_key IS NOT NULL;

CREATE TRIGGER members_count_insert AFTER INSERT ON members BEGIN
	UPDATE conversations SET member_count = member_count + 1 WHERE id = NEW.conv_id;
END;

CREATE TRIGGER members_count_delete AFTER DELETE ON members BEGIN
	UPDATE conversations SET member_count = member_count - 1 WHERE id = OLD.conv_id;
END;
