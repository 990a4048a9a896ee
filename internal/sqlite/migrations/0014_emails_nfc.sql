-- Addresses in their folded form (chat.FoldEmail: NFC, lower case), so
-- that "café@example.com" typed with a precomposed é and with e and a
-- combining accent is one address. SQLite has no NFC in SQL: the work is
-- Go's, emailsNFC, which runs right after this in the migration's
-- transaction. A user whose folded address is another's keeps the address
-- as stored, and is logged; a pending login code whose address changes is
-- deleted (its hash holds the address it was asked for).
SELECT 1;
