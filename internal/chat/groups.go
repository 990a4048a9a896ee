package chat

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Groups are private named conversations with roles. The owner and admins
// add and remove members; the owner promotes and demotes admins, transfers
// ownership, changes the member cap and deletes the group; any member
// leaves (the owner only after transferring). Every membership and
// settings change is a message in the group's sequence.
//
// Only members see a group: to anyone else, reading, history, sync, open
// and send get the same not_found as an id that does not exist, as for
// direct conversations. A member who is removed (or leaves) is cut off at
// once: the conversation topic event that records it carries Revoke, so
// hubs deliver nothing after it to that user, and an EventRemoved on the
// user's topic tells their connections. Both may reach a node late, after
// the user, added again, opened the group there: numbered before that
// open's Mark, they spare its connection.

// Role is a group member's role.
type Role string

const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// MayAdd reports whether a member of role may add members: the owner and
// admins.
func (r Role) MayAdd() bool { return r == RoleOwner || r == RoleAdmin }

// MayRemove reports whether a member of role may remove a member of role
// target: the owner anyone but itself, an admin plain members.
func (r Role) MayRemove(target Role) bool {
	return target != RoleOwner && (r == RoleOwner || r == RoleAdmin && target == RoleMember)
}

// MayMake reports whether a member of role may make the changes of up:
// the owner all, an admin the name and the description.
func (r Role) MayMake(up GroupUpdate) bool {
	return r == RoleOwner || r == RoleAdmin && up.MaxMembers == nil
}

// DefaultGroupMembers is the member cap of a group created without one,
// unless the server's MaxGroupMembers is lower.
const DefaultGroupMembers = 200

// DefaultGroupCap is the member cap of a group created without one:
// DefaultGroupMembers, or MaxGroupMembers if lower.
func (c Config) DefaultGroupCap() int { return min(DefaultGroupMembers, c.MaxGroupMembers) }

// Limits of group fields, in characters.
const (
	MaxGroupNameLen = 64
	MaxGroupDescLen = 500
)

// Group is a group's settings.
type Group struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	MaxMembers  int       `json:"max_members"`
	OwnerID     int64     `json:"owner_id"`
	CreatedAt   time.Time `json:"created_at"`
	LastSeq     int64     `json:"last_seq"`
	Members     int       `json:"members"`
}

// CapChange reports whether a member cap of maxMembers changes g, and
// refuses, with ErrBelowMembers, a cap below g's member count: the rule
// GroupStore.SetGroupCap and UpdateGroup apply to the group they hold
// locked.
func (g Group) CapChange(maxMembers int) (bool, error) {
	if g.MaxMembers == maxMembers {
		return false, nil
	}
	if g.Members > maxMembers {
		return false, ErrBelowMembers
	}
	return true, nil
}

// GroupMember is one member of a group. User carries no email.
type GroupMember struct {
	User     User      `json:"user"`
	Role     Role      `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
}

// NewGroup is what CreateGroup stores.
type NewGroup struct {
	Name        string
	Description string
	MaxMembers  int
	OwnerID     int64
	At          time.Time
}

// GroupStore keeps groups, their members and roles. Each method that
// changes a group appends the message recording it (Kind*, with the
// sender and target given) in the same transaction and returns it.
// ErrNotFound if the group does not exist.
type GroupStore interface {
	// CreateGroup creates a group whose only member is g.OwnerID, as
	// owner, and appends KindCreated. ErrNameTaken if another group's name
	// differs from g.Name at most in case; ErrNameLookAlike (a
	// *LookAlikeError) if another's has its NameSkeleton otherwise. In
	// that transaction it keeps created, its ConvID set to the group's and
	// its Message to the KindCreated message, in the owner's event log, as
	// AppendUserEvent does, and returns it numbered: the group's deletion,
	// which logs its removed in its own transaction, then comes after it
	// in the log, as AddGroupMember's added comes before a removal.
	CreateGroup(ctx context.Context, g NewGroup, created Event) (Group, Message, Event, error)
	Group(ctx context.Context, id int64) (Group, error)
	// GroupMembers lists the members, owner first, then admins, then by name.
	GroupMembers(ctx context.Context, id int64) ([]GroupMember, error)
	// GroupRole returns userID's role, "" for a non-member.
	GroupRole(ctx context.Context, id, userID int64) (Role, error)
	// AddGroupMember makes userID a member, appending KindAdded from by.
	// Atomically with the insert it counts the members: ErrGroupFull if
	// the group has max_members already, so concurrent adds never exceed
	// the cap. ErrAlreadyMember if userID is a member; ErrForbidden if by
	// may not add (Role.MayAdd, as the transaction finds the role);
	// ErrBlocked if by or userID blocked the other (as the transaction
	// finds the blocks, so that a block made after a caller read none
	// still refuses the add). In
	// that transaction it keeps added, its Message set to the KindAdded
	// message with the sender's and the target's names, in userID's event
	// log, as AppendUserEvent does, and returns it numbered: a removal,
	// which logs its removed in its own transaction, then comes after it
	// in the log, as it came after it in the group.
	AddGroupMember(ctx context.Context, id, userID, by int64, at time.Time, added Event) (Message, Event, error)
	// RemoveGroupMember ends userID's membership, appending KindRemoved
	// from by, or KindLeave from userID when by == userID. ErrNotFound if
	// userID is not a member; ErrInvalid if userID is the owner;
	// ErrForbidden if by is someone else than userID, and neither the
	// owner nor an admin removing a plain member. The roles are those in
	// the transaction that removes, not those a caller read before. In
	// that transaction it keeps removed in userID's event log, as
	// AppendUserEvent does, and returns it numbered.
	RemoveGroupMember(ctx context.Context, id, userID, by int64, at time.Time, removed Event) (Message, Event, error)
	// SetGroupRole sets userID's role to admin or member, appending
	// KindAdminGranted or KindAdminRevoked from by; changed is false (and
	// the message zero) if it was the role already. ErrForbidden if by is
	// not the owner (as the transaction finds it); ErrNotFound if userID
	// is not a member; ErrInvalid for the owner or another role.
	SetGroupRole(ctx context.Context, id, userID int64, role Role, by int64, at time.Time) (m Message, changed bool, err error)
	// TransferGroup makes member to the owner and the owner from an admin,
	// appending KindOwnerTransferred. ErrNotFound if to is not a member;
	// ErrInvalid if from is not the owner.
	TransferGroup(ctx context.Context, id, from, to int64, at time.Time) (Message, error)
	// RenameGroup, DescribeGroup and SetGroupCap change one setting and
	// append KindRenamed, KindDescribed or KindCapChanged from by; changed
	// is false if the value was the same. RenameGroup: ErrNameTaken or
	// ErrNameLookAlike, as CreateGroup;
	// SetGroupCap: ErrBelowMembers if the group has more members.
	RenameGroup(ctx context.Context, id int64, name string, by int64, at time.Time) (m Message, changed bool, err error)
	DescribeGroup(ctx context.Context, id int64, desc string, by int64, at time.Time) (m Message, changed bool, err error)
	SetGroupCap(ctx context.Context, id int64, maxMembers int, by int64, at time.Time) (m Message, changed bool, err error)
	// UpdateGroup makes the changes of up (nil fields stay; values
	// normalized) to group id in one transaction, as RenameGroup,
	// DescribeGroup and SetGroupCap do, in that order, and returns the
	// messages of those that changed something. If one fails, none is made.
	// ErrForbidden if by may not make them (Role.MayMake, as the
	// transaction finds the role).
	UpdateGroup(ctx context.Context, id int64, up GroupUpdate, by int64, at time.Time) ([]Message, error)
	// DeleteGroup deletes the group with its members and messages, if by
	// owns it (ErrForbidden otherwise, as the transaction finds it). In
	// the same transaction it keeps removed in the event log of each
	// member, as AppendUserEvent does, and returns them numbered, by
	// ascending user id: who the members were.
	DeleteGroup(ctx context.Context, id, by int64, at time.Time, removed Event) ([]UserEvent, error)
}

func groupNotFound() error { return Errorf(ErrNotFound, CodeNotFound, "no such group") }

func notAllowed(msg string) error { return Errorf(ErrForbidden, CodeForbidden, "%s", msg) }

// NormalizeGroupName trims a group name and checks it as a display name
// (normalizeName), with up to MaxGroupNameLen characters.
func NormalizeGroupName(s string) (string, error) {
	return normalizeName(s, "group name", MaxGroupNameLen)
}

// NormalizeGroupDescription trims a description and checks it: valid
// UTF-8 without NUL (which PostgreSQL cannot store), not too long.
func NormalizeGroupDescription(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", Invalid(CodeInvalidField, "description", "description is not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", Invalid(CodeInvalidField, "description", "description contains the NUL character")
	}
	if utf8.RuneCountInString(s) > MaxGroupDescLen {
		return "", Invalid(CodeTooLong, "description", "description is longer than %d characters", MaxGroupDescLen)
	}
	return s, nil
}

func (s *Service) checkCap(n int) error {
	if n < 2 || n > s.cfg.MaxGroupMembers {
		return Invalid(CodeInvalidField, "max_members", "max_members must be between 2 and %d", s.cfg.MaxGroupMembers)
	}
	return nil
}

// groupErr maps a GroupStore error to the domain error clients see.
func groupErr(op string, err error) error {
	switch {
	case errors.Is(err, ErrGroupFull):
		return Errorf(ErrConflict, CodeGroupFull, "the group is full")
	case errors.Is(err, ErrNameTaken):
		return Errorf(ErrConflict, CodeNameTaken, "another group has this name")
	case errors.Is(err, ErrNameLookAlike):
		// Which group is not said: groups are private.
		return Errorf(ErrConflict, CodeNameLookAlike, "the name looks like another group's (letters of other scripts or digits that look like its letters): choose another")
	case errors.Is(err, ErrAlreadyMember):
		return Errorf(ErrConflict, CodeAlreadyMember, "this user is in the group already")
	case errors.Is(err, ErrBelowMembers):
		return Errorf(ErrConflict, CodeBelowMembers, "the group has more members than that")
	case errors.Is(err, ErrNotFound):
		return groupNotFound()
	}
	return internal(op, err)
}

// groupRole returns u's role in group id; a non-member, or an id that is
// no group, gets not_found.
func (s *Service) groupRole(ctx context.Context, u User, id int64) (Role, error) {
	role, err := s.store.GroupRole(ctx, id, u.ID)
	if err != nil {
		return "", groupErr("load group role", err)
	}
	if role == "" {
		return "", groupNotFound()
	}
	return role, nil
}

// notMember is the answer to u's change of group id that the store
// refused with ErrNotFound, which it gives for the member the change
// names and for the group alike: not_member, unless the group went since
// u's role was read (deleted, or u is in it no more), which is then
// not_found, as for any group not u's. It reads only on that refusal.
func (s *Service) notMember(ctx context.Context, u User, id int64) error {
	if _, err := s.groupRole(ctx, u, id); errors.Is(err, ErrNotFound) {
		return err
	}
	return Errorf(ErrNotFound, CodeNotMember, "this user is not in the group")
}

// publishGroup publishes m, a message of group id's sequence; revoke is
// the user whose access ends with it (0 for none).
func (s *Service) publishGroup(ctx context.Context, id int64, m Message, revoke int64) {
	one := []Message{m}
	s.nameTargets(ctx, one)
	m = one[0]
	s.publish(ctx, ConvTopic(id), Event{Type: EventMessage, ConvID: id, Message: &m, Revoke: revoke})
}

// CreateGroup creates a group owned by u. maxMembers 0 takes the default.
func (s *Service) CreateGroup(ctx context.Context, u User, name, desc string, maxMembers int) (Group, error) {
	name, err := NormalizeGroupName(name)
	if err != nil {
		return Group{}, err
	}
	if desc, err = NormalizeGroupDescription(desc); err != nil {
		return Group{}, err
	}
	if maxMembers == 0 {
		maxMembers = s.cfg.DefaultGroupCap()
	}
	if err := s.checkCap(maxMembers); err != nil {
		return Group{}, err
	}
	if err := s.roomForGroup(ctx, u.ID, "you are"); err != nil {
		return Group{}, err
	}
	if err := s.allowNewConv(ctx, u); err != nil {
		return Group{}, err
	}
	ng := NewGroup{Name: name, Description: desc, MaxMembers: maxMembers, OwnerID: u.ID, At: s.cfg.Now()}
	// The created is logged in the creation's transaction, as an addition
	// logs its added: a deletion made meanwhile comes after it.
	created := Event{Type: EventConversation, ConvKind: ConvGroup}
	g, m, created, err := s.store.CreateGroup(ctx, ng, created)
	if errors.Is(err, ErrNameTaken) {
		// A retry, maybe, of a creation whose answer was lost: answered
		// with the group it made, counted by this call.
		if g, m, ok, ferr := s.freshGroup(ctx, ng); ferr != nil {
			s.log.Warn("look for a group made by a retried creation", "user", u.ID, "err", ferr)
		} else if ok {
			if terr := s.tellCreated(ctx, g.ID, m); terr != nil {
				s.log.Warn("read user events", "user", u.ID, "err", terr)
				s.republishCreated(terr, ng) // told later
			}
			return g, nil
		}
	}
	if err != nil {
		s.undoNewConv(ctx, u) // no group made: it does not count
		s.republishCreated(err, ng)
		return Group{}, groupErr("create group", err)
	}
	s.publishGroup(ctx, g.ID, m, 0)
	s.publish(ctx, UserTopic(u.ID), created)
	return g, nil
}

// Group returns group id and its members, for a member of it.
func (s *Service) Group(ctx context.Context, u User, id int64) (Group, []GroupMember, error) {
	if _, err := s.groupRole(ctx, u, id); err != nil {
		return Group{}, nil, err
	}
	g, err := s.store.Group(ctx, id)
	if err != nil {
		return Group{}, nil, groupErr("load group", err)
	}
	ms, err := s.store.GroupMembers(ctx, id)
	if err != nil {
		return Group{}, nil, groupErr("load group members", err)
	}
	for i := range ms {
		ms[i].User = public(ms[i].User)
	}
	return g, ms, nil
}

// GroupUpdate holds the settings UpdateGroup changes; nil fields stay.
type GroupUpdate struct {
	Name        *string
	Description *string
	MaxMembers  *int
}

// UpdateGroup changes group id's settings: name and description by the
// owner or an admin, the member cap by the owner only. Each change is a
// message in the group's sequence; if one is refused, none is made.
func (s *Service) UpdateGroup(ctx context.Context, u User, id int64, up GroupUpdate) (Group, error) {
	role, err := s.groupRole(ctx, u, id)
	if err != nil {
		return Group{}, err
	}
	if !role.MayMake(up) {
		return Group{}, notAllowedUpdate(role)
	}
	var name, desc string
	if up.Name != nil {
		if name, err = NormalizeGroupName(*up.Name); err != nil {
			if !s.groupHas(ctx, id, func(g Group) bool { return g.Name == *up.Name }) {
				return Group{}, err
			}
			up.Name = nil // stored before a rule that now refuses it, and sent unchanged
		}
	}
	if up.Description != nil {
		if desc, err = NormalizeGroupDescription(*up.Description); err != nil {
			if !s.groupHas(ctx, id, func(g Group) bool { return g.Description == *up.Description }) {
				return Group{}, err
			}
			up.Description = nil
		}
	}
	if up.MaxMembers != nil {
		if err := s.checkCap(*up.MaxMembers); err != nil {
			return Group{}, err
		}
	}
	norm := GroupUpdate{MaxMembers: up.MaxMembers}
	if up.Name != nil {
		norm.Name = &name
	}
	if up.Description != nil {
		norm.Description = &desc
	}
	ms, err := s.store.UpdateGroup(ctx, id, norm, u.ID, s.cfg.Now())
	if errors.Is(err, ErrForbidden) { // u's role changed since the check above
		return Group{}, notAllowed("only the owner and admins may change the group, and only the owner its member cap")
	}
	if err != nil {
		s.republishTail(err, id) // a retry finds nothing to change
		return Group{}, groupErr("update group", err)
	}
	for _, m := range ms {
		s.publishGroup(ctx, id, m, 0)
	}
	g, err := s.store.Group(ctx, id)
	if err != nil {
		return Group{}, groupErr("load group", err)
	}
	return g, nil
}

// groupHas reports whether group id, as stored, satisfies is. An update may
// send a field unchanged that a rule made after it was stored refuses (a
// name with an invisible character, say): that field is left as it is,
// not refused, so that the group's other fields can still change.
func (s *Service) groupHas(ctx context.Context, id int64, is func(Group) bool) bool {
	g, err := s.store.Group(ctx, id)
	return err == nil && is(g)
}

// AddGroupMember adds user userID to group id; u must be its owner or an
// admin, and neither u nor the user may have blocked the other. The new
// member's connections learn of it through EventConversation.
func (s *Service) AddGroupMember(ctx context.Context, u User, id, userID int64) (Message, error) {
	role, err := s.groupRole(ctx, u, id)
	if err != nil {
		return Message{}, err
	}
	if !role.MayAdd() {
		return Message{}, notAllowedAdd()
	}
	if userID <= 0 {
		return Message{}, Invalid(CodeInvalidField, "user_id", "user_id must be positive")
	}
	if _, err := s.User(ctx, userID); err != nil {
		return Message{}, err
	}
	blocked, err := s.store.IsBlocked(ctx, u.ID, userID)
	if err != nil {
		return Message{}, internal("check block", err)
	}
	if blocked {
		return Message{}, refused()
	}
	if err := s.roomForGroup(ctx, userID, "this user is"); err != nil {
		return Message{}, err
	}
	undo, err := s.allowStrangerAdd(ctx, u, userID)
	if err != nil {
		return Message{}, err
	}
	// The added is logged in the addition's transaction, as a removal
	// logs its removed: a removal made meanwhile comes after it.
	added := Event{Type: EventConversation, ConvID: id, ConvKind: ConvGroup}
	m, added, err := s.store.AddGroupMember(ctx, id, userID, u.ID, s.cfg.Now(), added)
	if err != nil {
		undo() // nobody added: it does not count
	}
	if errors.Is(err, ErrBlocked) { // a block made since the check above
		return Message{}, refused()
	}
	if errors.Is(err, ErrForbidden) { // u's role changed since the check above
		return Message{}, notAllowedAdd()
	}
	if err != nil {
		// A retry is refused: userID is a member already.
		s.republishTail(err, id)
		s.republishAdded(err, userID, id)
		return Message{}, groupErr("add group member", err)
	}
	s.publishGroup(ctx, id, m, 0)
	s.publish(ctx, UserTopic(userID), added)
	return m, nil
}

// RemoveGroupMember removes user userID from group id, or, when userID is
// u, makes u leave it. The owner removes anyone; an admin removes plain
// members; the owner leaves only after transferring ownership. The removed
// user is cut off at once.
func (s *Service) RemoveGroupMember(ctx context.Context, u User, id, userID int64) error {
	role, err := s.groupRole(ctx, u, id)
	if err != nil {
		return err
	}
	reason := "left"
	if userID == u.ID {
		if role == RoleOwner {
			return Errorf(ErrConflict, CodeOwnerMustLeave, "the owner must transfer the group before leaving it")
		}
	} else {
		reason = "removed"
		if role == RoleMember {
			return notAllowed("only the owner and admins may remove members")
		}
		target, err := s.store.GroupRole(ctx, id, userID)
		if err != nil {
			return groupErr("load group role", err)
		}
		switch {
		case target == "":
			return Errorf(ErrNotFound, CodeNotMember, "this user is not in the group")
		case target == RoleOwner:
			return notAllowed("the owner cannot be removed")
		case target == RoleAdmin && role != RoleOwner:
			return notAllowed("only the owner may remove admins")
		}
	}
	// The removed is logged in the removal's transaction, as a room's
	// leave logs it (LeaveRoom).
	removed := Event{Type: EventRemoved, ConvID: id, Reason: reason}
	m, removed, err := s.store.RemoveGroupMember(ctx, id, userID, u.ID, s.cfg.Now(), removed)
	switch {
	case errors.Is(err, ErrNotFound) && userID != u.ID:
		return s.notMember(ctx, u, id)
	case errors.Is(err, ErrInvalid) && userID == u.ID: // made the owner since the check above
		return Errorf(ErrConflict, CodeOwnerMustLeave, "the owner must transfer the group before leaving it")
	case errors.Is(err, ErrInvalid):
		return notAllowed("the owner cannot be removed")
	case errors.Is(err, ErrForbidden): // roles changed since the check above
		return notAllowed("only the owner may remove admins, and the owner and admins members")
	}
	if err != nil {
		// A retry is refused: userID is no member.
		s.republishTail(err, id)
		s.republishRemoved(err, userID, id)
		return groupErr("remove group member", err)
	}
	s.publishGroup(ctx, id, m, userID)
	s.publish(ctx, UserTopic(userID), removed)
	return nil
}

// SetGroupRole makes member userID of group id an admin or a plain
// member; only the owner may.
func (s *Service) SetGroupRole(ctx context.Context, u User, id, userID int64, role Role) error {
	mine, err := s.groupRole(ctx, u, id)
	if err != nil {
		return err
	}
	if mine != RoleOwner {
		return notAllowed("only the owner may promote and demote admins")
	}
	if role == "" {
		return Invalid(CodeMissingField, "role", "role is required")
	}
	if role != RoleAdmin && role != RoleMember {
		return Invalid(CodeInvalidField, "role", `role must be "admin" or "member"`)
	}
	if userID == u.ID {
		return Invalid(CodeInvalidField, "user_id", "the owner's role changes only by transferring the group")
	}
	m, changed, err := s.store.SetGroupRole(ctx, id, userID, role, u.ID, s.cfg.Now())
	switch {
	case errors.Is(err, ErrNotFound):
		return s.notMember(ctx, u, id)
	case errors.Is(err, ErrForbidden), errors.Is(err, ErrInvalid): // u transferred the group since the check above
		return notAllowed("only the owner may promote and demote admins")
	}
	if err != nil {
		s.republishTail(err, id) // a retry finds nothing to change
		return groupErr("set group role", err)
	}
	if changed {
		s.publishGroup(ctx, id, m, 0)
	}
	return nil
}

// TransferGroup makes member userID the owner of group id; u, the owner,
// becomes an admin.
func (s *Service) TransferGroup(ctx context.Context, u User, id, userID int64) error {
	mine, err := s.groupRole(ctx, u, id)
	if err != nil {
		return err
	}
	if mine != RoleOwner {
		return notAllowed("only the owner may transfer the group")
	}
	if userID == u.ID {
		return Invalid(CodeInvalidField, "user_id", "you own this group already")
	}
	m, err := s.store.TransferGroup(ctx, id, u.ID, userID, s.cfg.Now())
	switch {
	case errors.Is(err, ErrNotFound):
		return s.notMember(ctx, u, id)
	case errors.Is(err, ErrInvalid): // u transferred the group since the check above
		return notAllowed("only the owner may transfer the group")
	}
	if err != nil {
		s.republishTail(err, id) // a retry is refused: u owns it no more
		return groupErr("transfer group", err)
	}
	s.publishGroup(ctx, id, m, 0)
	return nil
}

// DeleteGroup deletes group id with its history; only the owner may. Every
// member is cut off.
func (s *Service) DeleteGroup(ctx context.Context, u User, id int64) error {
	mine, err := s.groupRole(ctx, u, id)
	if errors.Is(err, ErrNotFound) {
		// A retry, maybe, of a deletion whose answer was lost: u's log
		// has the group's deletion, by u. Every member's log has it: a
		// former member who did not delete it gets not_found. (A deletion
		// logged before the deleter was kept with it names nobody.)
		if ev, lerr := s.loggedRemoved(ctx, u.ID, id); lerr == nil && ev != nil && ev.Reason == reasonDeleted &&
			(ev.UserID == u.ID || ev.UserID == 0) {
			return nil
		}
	}
	if err != nil {
		return err
	}
	if mine != RoleOwner {
		return notAllowed("only the owner may delete the group")
	}
	// The members go with the group: they are read before, for a
	// republish of their removed should the store fail to answer.
	members, err := s.store.GroupMembers(ctx, id)
	if err != nil {
		return groupErr("load group members", err)
	}
	removed, err := s.store.DeleteGroup(ctx, id, u.ID, s.cfg.Now(), Event{Type: EventRemoved, ConvID: id, Reason: reasonDeleted, UserID: u.ID})
	if errors.Is(err, ErrForbidden) { // u transferred the group since the check above
		return notAllowed("only the owner may delete the group")
	}
	if err != nil {
		s.republishDeleted(err, id, members)
		return groupErr("delete group", err)
	}
	s.kinds.forget(id) // gone: nothing of this node's memory should outlive it
	for _, r := range removed {
		s.publish(ctx, UserTopic(r.UserID), r.Event)
	}
	return nil
}

// roomForGroup returns a limit_reached conflict if user userID is in
// Config.MaxUserGroups groups already; who names them in its message. It
// is read before the change, not in its transaction: requests made at
// once may go past the limit by as many as they are.
func (s *Service) roomForGroup(ctx context.Context, userID int64, who string) error {
	gs, err := s.store.UserGroups(ctx, userID)
	if err != nil {
		return internal("list groups", err)
	}
	if len(gs) >= s.cfg.MaxUserGroups {
		return Errorf(ErrConflict, CodeLimitReached, "%s in %d groups, as many as the server allows: one must be left first", who, len(gs))
	}
	return nil
}

// allowStrangerAdd counts an add of user userID by u, unless they are
// friends (or the same user), against u's Config.StrangerAddsPerHour and
// userID's Config.AddsByStrangersPerDay, both in the Limiter, which is
// shared by every node. The first refuses an account that sprays adds,
// the second a few accounts that fill a user's MaxUserGroups places with
// groups they never asked for: each is 429 rate_limited, the second with
// Field "user_id", as the user named is the one who may be added no
// more. The returned undo takes back what was counted, for an add that
// then fails.
func (s *Service) allowStrangerAdd(ctx context.Context, u User, userID int64) (undo func(), err error) {
	nothing := func() {}
	if userID == u.ID {
		return nothing, nil
	}
	friends, err := s.store.AreFriends(ctx, u.ID, userID)
	if err != nil {
		return nil, internal("check friends", err)
	}
	if friends {
		return nothing, nil
	}
	byKey := "stranger-adds:" + strconv.FormatInt(u.ID, 10)
	if err := s.allowOr(ctx, byKey, s.cfg.StrangerAddsPerHour, time.Hour, "",
		"you have added as many users who are not your friends to groups as the server allows in an hour"); err != nil {
		return nil, err
	}
	toKey := "added-by-strangers:" + strconv.FormatInt(userID, 10)
	if err := s.allowOr(ctx, toKey, s.cfg.AddsByStrangersPerDay, 24*time.Hour, "user_id",
		"this user has been added to as many groups in a day as the server allows by users who are not their friends"); err != nil {
		s.undo(ctx, byKey)
		return nil, err
	}
	return func() {
		s.undo(ctx, toKey)
		s.undo(ctx, byKey)
	}, nil
}

func notAllowedAdd() error { return notAllowed("only the owner and admins may add members") }

// notAllowedUpdate refuses a change a member of role may not make.
func notAllowedUpdate(role Role) error {
	if role == RoleAdmin {
		return notAllowed("only the owner may change the member cap")
	}
	return notAllowed("only the owner and admins may change the group")
}
