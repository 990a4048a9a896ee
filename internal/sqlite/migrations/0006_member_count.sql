-- member_count: the conversation's rows in members, kept by the triggers
-- below in the transaction that adds or removes one (cascades from a
-- deleted user included), so that loading a room does not count its
-- members: the send path loads the room on every message.
ALTER TABLE conversations ADD COLUMN member_count INTEGER NOT NULL DEFAULT 0;

UPDATE conversations SET member_count = (SELECT count(*) FROM members m WHERE m.conv_id = conversations.id);

CREATE TRIGGER members_count_insert AFTER INSERT ON members BEGIN
	UPDATE conversations SET member_count = member_count + 1 WHERE id = NEW.conv_id;
END;

CREATE TRIGGER members_count_delete AFTER DELETE ON members BEGIN
	UPDATE conversations SET member_count = member_count - 1 WHERE id = OLD.conv_id;
END;
