-- Last-seen times and the per-user event log.

-- last_seen_at: when the user's last connection ended (µs), NULL if never.
ALTER TABLE users ADD COLUMN last_seen_at INTEGER;
-- event_seq: the UserSeq of the user's newest event in user_events.
ALTER TABLE users ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;

-- Events addressed to one user that no conversation keeps (contacts, group
-- membership), numbered per user without gaps; payload is the event as JSON.
CREATE TABLE user_events (
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	seq        INTEGER NOT NULL,
	payload    TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
