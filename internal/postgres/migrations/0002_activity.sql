-- Last-seen times and the per-user event log (SQLite's 0005).

-- last_seen_at: when the user's last connection ended, NULL if never.
ALTER TABLE users ADD COLUMN last_seen_at timestamptz;
-- event_seq: the UserSeq of the user's newest event in user_events.
ALTER TABLE users ADD COLUMN event_seq bigint NOT NULL DEFAULT 0;

-- Events addressed to one user that no conversation keeps (contacts, group
-- membership), numbered per user without gaps; payload is the event as JSON
-- text (not jsonb, which cannot hold the \u0000 a message body may have).
CREATE TABLE user_events (
	user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	seq        bigint      NOT NULL,
	payload    text        NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (user_id, seq)
);
