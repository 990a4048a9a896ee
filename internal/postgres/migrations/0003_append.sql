-- Cheaper appends.

-- No index on last_active_at: every Append updates it, and with no indexed
-- column changed the update is a cheap heap-only (HOT) one. Lists by
-- activity go through members first.
DROP INDEX conversations_last_active_at;

-- messages.conv_id is no foreign key any more, to spare each message the
-- check: Append stores a message only while it holds the lock of its
-- conversation's row, which it has found, and DeleteGroup, under the same
-- lock, deletes the messages with the conversation.
ALTER TABLE messages DROP CONSTRAINT messages_conv_id_fkey;
