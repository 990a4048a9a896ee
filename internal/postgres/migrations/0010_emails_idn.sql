-- Addresses folded again (chat.FoldEmail), which now also takes an
-- internationalized domain to Unicode, so that "ana@bücher.example" and
-- "ana@xn--bcher-kva.example" are one address. As for 0008, the work is
-- Go's, foldEmails, which runs right after this in the migration's
-- transaction, with the users and the codes locked as there.
LOCK TABLE users, login_codes IN SHARE ROW EXCLUSIVE MODE;
