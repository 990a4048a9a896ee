-- Direct conversations and read positions.

-- direct_key is "minID:maxID" of a direct conversation's two users, NULL for
-- other kinds: one direct conversation per pair.
ALTER TABLE conversations ADD COLUMN direct_key TEXT;
CREATE UNIQUE INDEX conversations_direct_key ON conversations (direct_key) WHERE direct_key IS NOT NULL;

-- read_seq is the member's read position: unread = last_seq - read_seq.
-- Existing members start with everything read, so that upgrading does not
-- turn every old message into an unread one.
ALTER TABLE members ADD COLUMN read_seq INTEGER NOT NULL DEFAULT 0;
UPDATE members SET read_seq = (SELECT c.last_seq FROM conversations c WHERE c.id = members.conv_id);
