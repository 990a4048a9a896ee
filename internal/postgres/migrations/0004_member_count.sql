-- member_count: the conversation's rows in members, kept by the trigger
-- below in the transaction that adds or removes one (cascades from a
-- deleted user included), so that loading a conversation does not count
-- its members: the send path loads it on every message. The same as the
-- SQLite store's migration 0006.
ALTER TABLE conversations ADD COLUMN member_count integer NOT NULL DEFAULT 0;

UPDATE conversations c SET member_count = (SELECT count(*) FROM members m WHERE m.conv_id = c.id);

CREATE FUNCTION members_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		UPDATE conversations SET member_count = member_count + 1 WHERE id = NEW.conv_id;
	ELSE
		UPDATE conversations SET member_count = member_count - 1 WHERE id = OLD.conv_id;
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER members_count AFTER INSERT OR DELETE ON members
	FOR EACH ROW EXECUTE FUNCTION members_count();
