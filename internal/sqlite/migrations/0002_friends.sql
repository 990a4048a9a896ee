-- Friends, friend requests and blocks.

-- name_key is the case-folded display name (strings.ToLower in Go) that the
-- name-prefix search ranges over. SQLite's lower() folds ASCII only, so Go
-- refills it right after this migration (see nameKeyBackfill).
ALTER TABLE users ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
UPDATE users SET name_key = lower(name);
CREATE INDEX users_name_key ON users (name_key);

-- contacts holds each relation twice, once as each side sees it: two
-- 'friends' rows, or 'request_sent' for the asker and 'request_received'
-- for the other. since is when the state began.
CREATE TABLE contacts (
	user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	other_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	state    TEXT    NOT NULL CHECK (state IN ('friends', 'request_sent', 'request_received')),
	since    INTEGER NOT NULL,
	PRIMARY KEY (user_id, other_id),
	CHECK (user_id <> other_id)
) WITHOUT ROWID;

CREATE TABLE blocks (
	blocker_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	blocked_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (blocker_id, blocked_id),
	CHECK (blocker_id <> blocked_id)
) WITHOUT ROWID;

CREATE INDEX blocks_blocked_id ON blocks (blocked_id, blocker_id);
