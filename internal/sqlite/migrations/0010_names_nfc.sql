-- Names in Unicode's composed form (NFC): rooms, groups and users stored
-- before names were taken in NFC are renamed to it, and their name_key
-- with them. SQLite has no NFC in SQL: the work is Go's, namesNFC, which
-- runs right after this in the migration's transaction.
SELECT 1;
