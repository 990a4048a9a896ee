-- Names in Unicode's composed form (NFC): rooms, groups and users stored
-- before names were taken in NFC are renamed to it, and their name_key
-- with them. name_key is Go's strings.ToLower, which no SQL function
-- matches, and two rooms may fall on one name: the work is Go's,
-- namesNFC, which runs right after this in the migration's transaction.
-- Until it commits, no other transaction writes the conversations (nodes
-- of the older parley included): a room that one made meanwhile could
-- take a name that namesNFC has given away.
LOCK TABLE conversations IN SHARE ROW EXCLUSIVE MODE;
