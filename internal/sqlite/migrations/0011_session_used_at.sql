-- used_at: when the session last authenticated a request, to within an
-- hour (chat.SessionUseStep). A sign-in past the cap of sessions per user
-- ends those used least recently. A session from before is taken as last
-- used when it was made; its next request records a use. No index: the
-- cap keeps a user's sessions few, and sessions_user_id finds them.
ALTER TABLE sessions ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0;

UPDATE sessions SET used_at = created_at;
