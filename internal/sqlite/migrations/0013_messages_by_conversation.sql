-- A conversation's messages are stored in the order of their primary key,
-- (conv_id, seq), as a WITHOUT ROWID table, rather than in a table of
-- rowids with a separate index on that key
-- (https://sqlite.org/withoutrowid.html). A message stored changes one
-- B-tree less, so a message committed alone writes five pages to the WAL,
-- not six, and a page of a conversation's history is read from neighbouring
-- rows of the table itself, not looked up row by row through the index.
-- The table is made anew and its rows copied in key order, as
-- https://sqlite.org/lang_altertable.html describes; migrate runs this with
-- foreign keys off and checks them before it commits.
CREATE TABLE messages_new (
	conv_id    INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	seq        INTEGER NOT NULL,
	kind       TEXT    NOT NULL,
	sender_id  INTEGER NOT NULL DEFAULT 0,
	client_id  TEXT    NOT NULL DEFAULT '',
	body       TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	target_id  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (conv_id, seq)
) WITHOUT ROWID;
INSERT INTO messages_new (conv_id, seq, kind, sender_id, client_id, body, created_at, target_id)
	SELECT conv_id, seq, kind, sender_id, client_id, body, created_at, target_id FROM messages
	ORDER BY conv_id, seq;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_text_created_at ON messages (created_at, conv_id) WHERE kind = 'text';
CREATE UNIQUE INDEX messages_client_id ON messages (client_id, conv_id, sender_id) WHERE client_id <> '';
