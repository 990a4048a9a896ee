-- Addresses folded again (chat.FoldEmail), which now also takes an
-- internationalized domain to Unicode, so that "ana@bücher.example" and
-- "ana@xn--bcher-kva.example" are one address. As for 0014, the work is
-- Go's, foldEmails, which runs right after this in the migration's
-- transaction: a user whose folded address is another's keeps the address
-- as stored, and is logged; a pending login code whose address changes is
-- deleted.
SELECT 1;
