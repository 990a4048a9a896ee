-- An address has several pending login codes, each with its own expiry
-- (chat.Service.RequestCode keeps the newest CodesPerEmail): mail arrives
-- late and out of order, and the code of any mail still pending works.
-- id orders codes that expire at once, the newest last. The primary key
-- changes, which ALTER TABLE cannot do, so the table is made anew and its
-- rows copied (https://sqlite.org/lang_altertable.html): a code pending
-- at the upgrade keeps working, with the tries counted against it. No
-- older parley runs meanwhile: the database is one process's (its lock
-- file), and an older parley refuses a schema newer than it knows.
CREATE TABLE login_codes_new (
	id         INTEGER PRIMARY KEY,
	email      TEXT    NOT NULL,
	hash       TEXT    NOT NULL,
	expires_at INTEGER NOT NULL,
	attempts   INTEGER NOT NULL DEFAULT 0,
	UNIQUE (email, hash)
);
INSERT INTO login_codes_new (email, hash, expires_at, attempts)
	SELECT email, hash, expires_at, attempts FROM login_codes;
DROP TABLE login_codes;
ALTER TABLE login_codes_new RENAME TO login_codes;
CREATE INDEX login_codes_expires_at ON login_codes (expires_at);
