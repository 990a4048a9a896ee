-- Name keys in Unicode's composed form (chat.NameKey): the lower case of
-- a capital that has no composed form (H̱, J̌, Ϊ́) composes (ẖ, ǰ, ΐ), and
-- a name_key taken as strings.ToLower alone held it decomposed, so the
-- name typed with the small letter composed was another room. SQLite has
-- no NFC in SQL: the work is Go's, nameKeysNFC, which runs right after
-- this in the migration's transaction.
SELECT 1;
