-- used_at: when the session last authenticated a request, to within an
-- hour (chat.SessionUseStep). A sign-in past the cap of sessions per user
-- ends those used least recently. A session from before is taken as last
-- used when it was made; its next request records a use. No index: the
-- cap keeps a user's sessions few, and sessions_user_id finds them. The
-- default is for the nodes of the older parley still running, whose new
-- sessions name no used_at: they are used as they are made.
ALTER TABLE sessions ADD COLUMN used_at timestamptz NOT NULL DEFAULT now();

UPDATE sessions SET used_at = created_at;
