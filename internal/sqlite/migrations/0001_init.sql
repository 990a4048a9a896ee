-- Times are INTEGER microseconds since the Unix epoch, UTC.

CREATE TABLE users (
	id         INTEGER PRIMARY KEY,
	email      TEXT    NOT NULL UNIQUE,
	name       TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
);

CREATE TABLE login_codes (
	email      TEXT    PRIMARY KEY,
	hash       TEXT    NOT NULL,
	expires_at INTEGER NOT NULL,
	attempts   INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX login_codes_expires_at ON login_codes (expires_at);

CREATE TABLE sessions (
	id         INTEGER PRIMARY KEY,
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	token_hash TEXT    NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- A conversation is a room for now; groups and direct conversations will be
-- further kinds. name_key is the case-folded name (strings.ToLower in Go),
-- unique per kind; NULL for conversations without a name.
CREATE TABLE conversations (
	id             INTEGER PRIMARY KEY,
	kind           TEXT    NOT NULL DEFAULT 'room',
	name           TEXT    NOT NULL DEFAULT '',
	name_key       TEXT,
	created_at     INTEGER NOT NULL,
	last_seq       INTEGER NOT NULL DEFAULT 0,
	last_active_at INTEGER NOT NULL,
	UNIQUE (kind, name_key)
);

CREATE INDEX conversations_last_active_at ON conversations (last_active_at);

CREATE TABLE members (
	conv_id   INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	joined_at INTEGER NOT NULL,
	PRIMARY KEY (conv_id, user_id)
) WITHOUT ROWID;

CREATE INDEX members_user_id ON members (user_id);

-- sender_id 0 is an anonymous sender, so it is no foreign key.
CREATE TABLE messages (
	conv_id    INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	seq        INTEGER NOT NULL,
	kind       TEXT    NOT NULL,
	sender_id  INTEGER NOT NULL DEFAULT 0,
	client_id  TEXT    NOT NULL DEFAULT '',
	body       TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	PRIMARY KEY (conv_id, seq)
);

-- Queries must say client_id <> '' for SQLite to use this index.
CREATE UNIQUE INDEX messages_client_id ON messages (conv_id, sender_id, client_id) WHERE client_id <> '';

-- Covers the count of recent text messages per room (ActiveRooms).
CREATE INDEX messages_text_created_at ON messages (created_at, conv_id) WHERE kind = 'text';
