-- A session's ID is never given again. Without AUTOINCREMENT SQLite gives
-- a new row the highest ID plus one, so once the newest session ended
-- (signed out, or expired and swept), the next sign-in, anyone's, took its
-- ID, and a node checking the sessions of its open connections by ID
-- (chat.Service.OpenSessions) found the ended one live: its connections
-- stayed open, and renewed the other's session. AUTOINCREMENT keeps the
-- highest ID ever given (sqlite_sequence). ALTER TABLE cannot add it, so
-- the table is made anew and its rows copied, with their IDs, as
-- https://sqlite.org/lang_altertable.html describes (migration 9 does the
-- same for conversations); no table refers to sessions.
CREATE TABLE sessions_new (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	token_hash TEXT    NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER NOT NULL DEFAULT 0
);
INSERT INTO sessions_new (id, user_id, token_hash, created_at, expires_at, used_at)
	SELECT id, user_id, token_hash, created_at, expires_at, used_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
