package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
)

// kindGroup is the conversations.kind of groups.
const kindGroup = "group"

var _ chat.GroupStore = (*DB)(nil)

// groupCols selects a chat.Group from conversations c.
const groupCols = `c.id, c.name, c.description, c.max_members,
	coalesce((SELECT o.user_id FROM members o WHERE o.conv_id = c.id AND o.role = 'owner'), 0),
	c.created_at, c.last_seq, c.member_count`

func scanGroup(s scanner) (chat.Group, error) {
	var g chat.Group
	err := s.Scan(&g.ID, &g.Name, &g.Description, &g.MaxMembers, &g.OwnerID, &g.CreatedAt, &g.LastSeq, &g.Members)
	g.CreatedAt = utc(g.CreatedAt)
	return g, err
}

func group(ctx context.Context, q querier, id int64) (chat.Group, error) {
	g, err := scanGroup(q.QueryRow(ctx, `SELECT `+groupCols+` FROM conversations c WHERE c.id = $1 AND c.kind = $2`, id, kindGroup))
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Group{}, fmt.Errorf("group %d: %w", id, chat.ErrNotFound)
	}
	return g, err
}

// lockGroup locks the row of group id until the transaction ends, so that
// the changes of one group serialize (SQLite gets this from its single
// writer), and returns the group as it is then; chat.ErrNotFound if it
// does not exist. Append locks the same row.
func lockGroup(ctx context.Context, tx pgx.Tx, id int64) (chat.Group, error) {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM conversations WHERE id = $1 AND kind = $2 FOR NO KEY UPDATE`, id, kindGroup).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Group{}, fmt.Errorf("group %d: %w", id, chat.ErrNotFound)
	}
	if err != nil {
		return chat.Group{}, err
	}
	return group(ctx, tx, id)
}

// groupRole returns userID's role in group id, "" for a non-member;
// chat.ErrNotFound if the group does not exist.
func groupRole(ctx context.Context, q querier, id, userID int64) (chat.Role, error) {
	var role *string
	err := q.QueryRow(ctx, `SELECT m.role FROM conversations c
		LEFT JOIN members m ON m.conv_id = c.id AND m.user_id = $1
		WHERE c.id = $2 AND c.kind = $3`, userID, id, kindGroup).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("group %d: %w", id, chat.ErrNotFound)
	}
	if err != nil || role == nil {
		return "", err
	}
	return chat.Role(*role), nil
}

// CreateGroup creates a group owned by g.OwnerID, and logs created in the
// same transaction.
func (db *DB) CreateGroup(ctx context.Context, ng chat.NewGroup, created chat.Event) (g chat.Group, m chat.Message, logged chat.Event, err error) {
	if err := errors.Join(storable(ng.Name), storable(ng.Description)); err != nil {
		return chat.Group{}, chat.Message{}, chat.Event{}, fmt.Errorf("create group %q: %w", ng.Name, chat.ErrInvalid)
	}
	err = db.write(ctx, func(tx pgx.Tx) error {
		if _, err := userByID(ctx, tx, ng.OwnerID); err != nil {
			return fmt.Errorf("user %d: %w", ng.OwnerID, err)
		}
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO conversations (kind, name, name_key, name_skel, description, max_members, created_at, last_active_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
			ON CONFLICT DO NOTHING
			RETURNING id`,
			kindGroup, ng.Name, nameKey(ng.Name), chat.NameSkeleton(ng.Name), ng.Description, ng.MaxMembers, ts(ng.At)).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			if clash := nameClash(ctx, tx, kindGroup, ng.Name, 0); clash != nil {
				return clash
			}
			return chat.ErrNameTaken
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO members (conv_id, user_id, joined_at, role) VALUES ($1, $2, $3, 'owner')`,
			id, ng.OwnerID, ts(ng.At)); err != nil {
			return err
		}
		m, _, err = appendMessage(ctx, tx, chat.NewMessage{ConvID: id, Kind: chat.KindCreated, SenderID: ng.OwnerID, Body: ng.Name, At: ng.At})
		if err != nil {
			return err
		}
		created.ConvID = id
		created.Message = &m
		if logged, err = appendUserEvent(ctx, tx, ng.OwnerID, created, ng.At); err != nil {
			return err
		}
		g, err = group(ctx, tx, id)
		return err
	})
	if err != nil {
		return chat.Group{}, chat.Message{}, chat.Event{}, fmt.Errorf("create group %q: %w", ng.Name, err)
	}
	return g, m, logged, nil
}

// Group returns group id.
func (db *DB) Group(ctx context.Context, id int64) (chat.Group, error) {
	g, err := group(ctx, db.pool, id)
	if err != nil {
		return chat.Group{}, fmt.Errorf("load group %d: %w", id, mapErr(ctx, err))
	}
	return g, nil
}

// GroupMembers lists group id's members: owner, admins, then by name.
func (db *DB) GroupMembers(ctx context.Context, id int64) ([]chat.GroupMember, error) {
	var ms []chat.GroupMember
	err := db.read(ctx, func(tx pgx.Tx) error {
		if _, err := group(ctx, tx, id); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT u.id, u.name, u.created_at, u.name_version, m.role, m.joined_at
			FROM members m JOIN users u ON u.id = m.user_id
			WHERE m.conv_id = $1
			ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.name_key, u.id`, id)
		if err != nil {
			return err
		}
		ms, err = collectRows(rows, func(s scanner) (chat.GroupMember, error) {
			var gm chat.GroupMember
			err := s.Scan(&gm.User.ID, &gm.User.Name, &gm.User.CreatedAt, &gm.User.NameVersion, &gm.Role, &gm.JoinedAt)
			gm.User.CreatedAt, gm.JoinedAt = utc(gm.User.CreatedAt), utc(gm.JoinedAt)
			return gm, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list members of group %d: %w", id, err)
	}
	return ms, nil
}

// GroupRole returns userID's role in group id, "" for a non-member.
func (db *DB) GroupRole(ctx context.Context, id, userID int64) (chat.Role, error) {
	role, err := groupRole(ctx, db.pool, id, userID)
	if err != nil {
		return "", fmt.Errorf("load role of user %d in group %d: %w", userID, id, mapErr(ctx, err))
	}
	return role, nil
}

// AddGroupMember makes userID a member of group id, and logs added in the
// same transaction. It counts the members while holding the group's row
// lock, which every AddGroupMember takes first, so the count and the
// insert are atomic: concurrent adds, from any node, never exceed
// max_members.
func (db *DB) AddGroupMember(ctx context.Context, id, userID, by int64, at time.Time, added chat.Event) (m chat.Message, logged chat.Event, err error) {
	err = db.write(ctx, func(tx pgx.Tx) error {
		g, err := lockGroup(ctx, tx, id)
		if err != nil {
			return err
		}
		if br, err := groupRole(ctx, tx, id, by); err != nil {
			return err
		} else if !br.MayAdd() {
			return fmt.Errorf("user %d, %q, adding: %w", by, br, chat.ErrForbidden)
		}
		u, err := userByID(ctx, tx, userID)
		if err != nil {
			return fmt.Errorf("user %d: %w", userID, err)
		}
		// A block committed after this read orders after the add, which
		// it does not undo, as it leaves groups alone.
		if blocked, err := isBlocked(ctx, tx, by, userID); err != nil {
			return err
		} else if blocked {
			return fmt.Errorf("user %d adding user %d: %w", by, userID, chat.ErrBlocked)
		}
		role, err := groupRole(ctx, tx, id, userID)
		if err != nil {
			return err
		}
		if role != "" {
			return chat.ErrAlreadyMember
		}
		if g.Members >= g.MaxMembers {
			return chat.ErrGroupFull
		}
		if _, err := tx.Exec(ctx, `INSERT INTO members (conv_id, user_id, joined_at, role, read_seq) VALUES ($1, $2, $3, 'member', $4)`,
			id, userID, ts(at), g.LastSeq); err != nil {
			return err
		}
		if m, _, err = appendMessage(ctx, tx, chat.NewMessage{ConvID: id, Kind: chat.KindAdded, SenderID: by, TargetID: userID, At: at}); err != nil {
			return err
		}
		m.TargetName = u.Name
		added.Message = &m
		logged, err = appendUserEvent(ctx, tx, userID, added, at)
		return err
	})
	if err != nil {
		return chat.Message{}, chat.Event{}, fmt.Errorf("add user %d to group %d: %w", userID, id, err)
	}
	return m, logged, nil
}

// RemoveGroupMember ends userID's membership of group id.
func (db *DB) RemoveGroupMember(ctx context.Context, id, userID, by int64, at time.Time, removed chat.Event) (m chat.Message, logged chat.Event, err error) {
	err = db.write(ctx, func(tx pgx.Tx) error {
		if _, err := lockGroup(ctx, tx, id); err != nil {
			return err
		}
		role, err := groupRole(ctx, tx, id, userID)
		if err != nil {
			return err
		}
		if role == "" {
			return fmt.Errorf("member %d: %w", userID, chat.ErrNotFound)
		}
		if role == chat.RoleOwner {
			return fmt.Errorf("remove the owner %d: %w", userID, chat.ErrInvalid)
		}
		if by != userID {
			br, err := groupRole(ctx, tx, id, by)
			if err != nil {
				return err
			}
			if !br.MayRemove(role) {
				return fmt.Errorf("user %d, %q, removing %s %d: %w", by, br, role, userID, chat.ErrForbidden)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM members WHERE conv_id = $1 AND user_id = $2`, id, userID); err != nil {
			return err
		}
		nm := chat.NewMessage{ConvID: id, Kind: chat.KindRemoved, SenderID: by, TargetID: userID, At: at}
		if by == userID {
			nm = chat.NewMessage{ConvID: id, Kind: chat.KindLeave, SenderID: userID, At: at}
		}
		if m, _, err = appendMessage(ctx, tx, nm); err != nil {
			return err
		}
		logged, err = appendUserEvent(ctx, tx, userID, removed, at)
		return err
	})
	if err != nil {
		return chat.Message{}, chat.Event{}, fmt.Errorf("remove user %d from group %d: %w", userID, id, err)
	}
	return m, logged, nil
}

// SetGroupRole sets member userID's role to admin or member.
func (db *DB) SetGroupRole(ctx context.Context, id, userID int64, role chat.Role, by int64, at time.Time) (m chat.Message, changed bool, err error) {
	kind := chat.KindAdminGranted
	switch role {
	case chat.RoleAdmin:
	case chat.RoleMember:
		kind = chat.KindAdminRevoked
	default:
		return chat.Message{}, false, fmt.Errorf("set role %q: %w", role, chat.ErrInvalid)
	}
	err = db.write(ctx, func(tx pgx.Tx) error {
		m, changed = chat.Message{}, false
		if _, err := lockGroup(ctx, tx, id); err != nil {
			return err
		}
		if br, err := groupRole(ctx, tx, id, by); err != nil {
			return err
		} else if br != chat.RoleOwner {
			return fmt.Errorf("user %d, %q, setting a role: %w", by, br, chat.ErrForbidden)
		}
		cur, err := groupRole(ctx, tx, id, userID)
		if err != nil {
			return err
		}
		switch cur {
		case "":
			return fmt.Errorf("member %d: %w", userID, chat.ErrNotFound)
		case chat.RoleOwner:
			return fmt.Errorf("role of the owner: %w", chat.ErrInvalid)
		case role:
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE members SET role = $1 WHERE conv_id = $2 AND user_id = $3`, string(role), id, userID); err != nil {
			return err
		}
		m, _, err = appendMessage(ctx, tx, chat.NewMessage{ConvID: id, Kind: kind, SenderID: by, TargetID: userID, At: at})
		changed = err == nil
		return err
	})
	if err != nil {
		return chat.Message{}, false, fmt.Errorf("set role of user %d in group %d: %w", userID, id, err)
	}
	return m, changed, nil
}

// TransferGroup makes member to the owner of group id, and from an admin.
func (db *DB) TransferGroup(ctx context.Context, id, from, to int64, at time.Time) (m chat.Message, err error) {
	err = db.write(ctx, func(tx pgx.Tx) error {
		if _, err := lockGroup(ctx, tx, id); err != nil {
			return err
		}
		fr, err := groupRole(ctx, tx, id, from)
		if err != nil {
			return err
		}
		if fr != chat.RoleOwner {
			return fmt.Errorf("user %d is not the owner: %w", from, chat.ErrInvalid)
		}
		tr, err := groupRole(ctx, tx, id, to)
		if err != nil {
			return err
		}
		if tr == "" {
			return fmt.Errorf("member %d: %w", to, chat.ErrNotFound)
		}
		// The two rows in user order, as MarkRead's batches take theirs,
		// so that the two never wait for each other in a cycle.
		roles := [2]struct {
			user int64
			role chat.Role
		}{{from, chat.RoleAdmin}, {to, chat.RoleOwner}}
		if to < from {
			roles[0], roles[1] = roles[1], roles[0]
		}
		for _, r := range roles {
			if _, err := tx.Exec(ctx, `UPDATE members SET role = $1 WHERE conv_id = $2 AND user_id = $3`, string(r.role), id, r.user); err != nil {
				return err
			}
		}
		m, _, err = appendMessage(ctx, tx, chat.NewMessage{ConvID: id, Kind: chat.KindOwnerTransferred, SenderID: from, TargetID: to, At: at})
		return err
	})
	if err != nil {
		return chat.Message{}, fmt.Errorf("transfer group %d from %d to %d: %w", id, from, to, err)
	}
	return m, nil
}

// setting changes one setting of group id if set reports a change, and
// appends the message kind with body.
func (db *DB) setting(ctx context.Context, id, by int64, at time.Time, kind chat.MessageKind, body string,
	set func(tx pgx.Tx, g chat.Group) (bool, error)) (m chat.Message, changed bool, err error) {
	c := groupChange{kind, body, set}
	if err := storable(body); err != nil {
		return chat.Message{}, false, fmt.Errorf("change %s of group %d: %w", kind, id, err)
	}
	err = db.write(ctx, func(tx pgx.Tx) error {
		m, changed, err = settingTx(ctx, tx, id, by, at, c)
		return err
	})
	if err != nil {
		return chat.Message{}, false, fmt.Errorf("change %s of group %d: %w", kind, id, err)
	}
	return m, changed, nil
}

// groupChange is one setting of a group to change: set makes the change
// if it changes something, and the message kind with body records it.
type groupChange struct {
	kind chat.MessageKind
	body string
	set  func(tx pgx.Tx, g chat.Group) (bool, error)
}

// settingTx makes change c to group id in tx.
func settingTx(ctx context.Context, tx pgx.Tx, id, by int64, at time.Time, c groupChange) (m chat.Message, changed bool, err error) {
	g, err := lockGroup(ctx, tx, id)
	if err != nil {
		return chat.Message{}, false, err
	}
	if changed, err = c.set(tx, g); err != nil || !changed {
		return chat.Message{}, false, err
	}
	m, _, err = appendMessage(ctx, tx, chat.NewMessage{ConvID: id, Kind: c.kind, SenderID: by, Body: c.body, At: at})
	return m, err == nil, err
}

func renameGroup(ctx context.Context, id int64, name string) groupChange {
	return groupChange{chat.KindRenamed, name, func(tx pgx.Tx, g chat.Group) (bool, error) {
		if g.Name == name {
			return false, nil
		}
		if err := nameClash(ctx, tx, kindGroup, name, id); err != nil {
			return false, err
		}
		_, err := tx.Exec(ctx, `UPDATE conversations SET name = $1, name_key = $2, name_skel = $3 WHERE id = $4`,
			name, nameKey(name), chat.NameSkeleton(name), id)
		// A name given at once, after nameClash read.
		if isUniqueViolation(err, "conversations_kind_name_skel") {
			return false, &chat.LookAlikeError{}
		}
		if isUniqueViolation(err) {
			return false, chat.ErrNameTaken
		}
		return err == nil, err
	}}
}

func describeGroup(ctx context.Context, id int64, desc string) groupChange {
	return groupChange{chat.KindDescribed, desc, func(tx pgx.Tx, g chat.Group) (bool, error) {
		if g.Description == desc {
			return false, nil
		}
		_, err := tx.Exec(ctx, `UPDATE conversations SET description = $1 WHERE id = $2`, desc, id)
		return err == nil, err
	}}
}

func setGroupCap(ctx context.Context, id int64, maxMembers int) groupChange {
	return groupChange{chat.KindCapChanged, strconv.Itoa(maxMembers), func(tx pgx.Tx, g chat.Group) (bool, error) {
		if change, err := g.CapChange(maxMembers); !change || err != nil {
			return false, err
		}
		_, err := tx.Exec(ctx, `UPDATE conversations SET max_members = $1 WHERE id = $2`, maxMembers, id)
		return err == nil, err
	}}
}

// RenameGroup renames group id.
func (db *DB) RenameGroup(ctx context.Context, id int64, name string, by int64, at time.Time) (chat.Message, bool, error) {
	c := renameGroup(ctx, id, name)
	return db.setting(ctx, id, by, at, c.kind, c.body, c.set)
}

// DescribeGroup changes group id's description.
func (db *DB) DescribeGroup(ctx context.Context, id int64, desc string, by int64, at time.Time) (chat.Message, bool, error) {
	c := describeGroup(ctx, id, desc)
	return db.setting(ctx, id, by, at, c.kind, c.body, c.set)
}

// SetGroupCap changes group id's member cap; never below its member count.
func (db *DB) SetGroupCap(ctx context.Context, id int64, maxMembers int, by int64, at time.Time) (chat.Message, bool, error) {
	c := setGroupCap(ctx, id, maxMembers)
	return db.setting(ctx, id, by, at, c.kind, c.body, c.set)
}

// UpdateGroup changes the settings of group id that up holds, all in one
// transaction.
func (db *DB) UpdateGroup(ctx context.Context, id int64, up chat.GroupUpdate, by int64, at time.Time) ([]chat.Message, error) {
	var cs []groupChange
	if up.Name != nil {
		cs = append(cs, renameGroup(ctx, id, *up.Name))
	}
	if up.Description != nil {
		cs = append(cs, describeGroup(ctx, id, *up.Description))
	}
	if up.MaxMembers != nil {
		cs = append(cs, setGroupCap(ctx, id, *up.MaxMembers))
	}
	for _, c := range cs {
		if err := storable(c.body); err != nil {
			return nil, fmt.Errorf("update group %d: %w", id, err)
		}
	}
	var ms []chat.Message
	err := db.write(ctx, func(tx pgx.Tx) error {
		ms = nil
		if _, err := lockGroup(ctx, tx, id); err != nil {
			return err
		}
		if br, err := groupRole(ctx, tx, id, by); err != nil {
			return err
		} else if !br.MayMake(up) {
			return fmt.Errorf("user %d, %q, updating: %w", by, br, chat.ErrForbidden)
		}
		for _, c := range cs {
			m, changed, err := settingTx(ctx, tx, id, by, at, c)
			if err != nil {
				return err
			}
			if changed {
				ms = append(ms, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update group %d: %w", id, err)
	}
	return ms, nil
}

// DeleteGroup deletes group id with its messages if by owns it; its
// members go with it (ON DELETE CASCADE).
func (db *DB) DeleteGroup(ctx context.Context, id, by int64, at time.Time, removed chat.Event) (logged []chat.UserEvent, err error) {
	payload, err := payloadOf(removed)
	if err != nil {
		return nil, fmt.Errorf("delete group %d: %w", id, err)
	}
	err = db.write(ctx, func(tx pgx.Tx) error {
		logged = nil
		if _, err := lockGroup(ctx, tx, id); err != nil {
			return err
		}
		if role, err := groupRole(ctx, tx, id, by); err != nil {
			return err
		} else if role != chat.RoleOwner {
			return fmt.Errorf("user %d, %q, deleting: %w", by, role, chat.ErrForbidden)
		}
		// The memberships first, in user order, as MarkRead's batches take
		// read positions, and before the users, as every other change of
		// a membership takes them: the conversation's cascade would take
		// them last, in the order they lie in the table.
		if _, err := tx.Exec(ctx, `SELECT FROM members WHERE conv_id = $1 ORDER BY user_id FOR UPDATE`, id); err != nil {
			return err
		}
		// One statement logs the removed of every member: their rows are
		// locked in the order of their ids, as every deletion locks them,
		// so that two deletions with members in common never deadlock.
		rows, err := tx.Query(ctx, `WITH locked AS (
				SELECT u.id FROM users u JOIN members m ON m.user_id = u.id
				WHERE m.conv_id = $1 ORDER BY u.id FOR NO KEY UPDATE OF u
			), ev AS (
				UPDATE users u SET event_seq = u.event_seq + 1 FROM locked l WHERE u.id = l.id
				RETURNING u.id, u.event_seq
			), logged AS (
				INSERT INTO user_events (user_id, seq, payload, created_at)
				SELECT id, event_seq, $2, $3 FROM ev
			)
			SELECT id, event_seq FROM ev ORDER BY id`, id, payload, ts(at))
		if err != nil {
			return err
		}
		logged, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (chat.UserEvent, error) {
			ue := chat.UserEvent{Event: removed}
			err := r.Scan(&ue.UserID, &ue.Event.UserSeq)
			return ue, err
		})
		if err != nil {
			return err
		}
		if len(logged) == 0 {
			logged = nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM messages WHERE conv_id = $1`, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM conversations WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delete group %d: %w", id, err)
	}
	return logged, nil
}
