-- No index on conversations.last_active_at, as in the PostgreSQL store:
-- no query reads through it (lists by activity go through members first,
-- and ActiveRooms through messages_text_created_at), and every commit that
-- stores a message moved the conversation's entry in it, one more page
-- written to the WAL per commit (docs/benchmarks.md, target 3).
DROP INDEX IF EXISTS conversations_last_active_at;
