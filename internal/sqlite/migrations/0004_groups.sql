-- Groups: private named conversations with roles and a member cap.

-- description and max_members are meaningful for groups only. Group names
-- use name_key like rooms, so UNIQUE (kind, name_key) makes them unique
-- among groups, ignoring case.
ALTER TABLE conversations ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN max_members INTEGER NOT NULL DEFAULT 0;

-- role is 'owner', 'admin' or 'member'; rooms and direct conversations
-- have members only. A group has exactly one owner.
ALTER TABLE members ADD COLUMN role TEXT NOT NULL DEFAULT 'member'
	CHECK (role IN ('owner', 'admin', 'member'));

-- target_id is the member a group event concerns (added, removed, ...), 0
-- for other messages.
ALTER TABLE messages ADD COLUMN target_id INTEGER NOT NULL DEFAULT 0;
