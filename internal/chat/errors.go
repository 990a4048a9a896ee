package chat

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Error kinds. Every error the domain returns wraps exactly one of these, so
// transports can map it to a status without looking at strings.
var (
	ErrInvalid      = errors.New("invalid")      // bad input; retrying the same request fails again
	ErrNotFound     = errors.New("not found")    // the thing does not exist (or is hidden from the caller)
	ErrForbidden    = errors.New("forbidden")    // the caller may not do this
	ErrConflict     = errors.New("conflict")     // the state does not allow it (already exists, full, ...)
	ErrUnauthorized = errors.New("unauthorized") // no valid session or login code
	ErrRateLimited  = errors.New("rate limited") // too many requests; try again later
	ErrUnavailable  = errors.New("unavailable")  // a dependency is down; retry later

	// ErrNotMember is the ErrNotFound of a store refusing a sender who is
	// not a member (NewMessage.MemberOnly).
	ErrNotMember = fmt.Errorf("not a member: %w", ErrNotFound)

	// ErrNotFriends is the ErrForbidden of a store refusing a direct
	// message to a peer who is not the sender's friend, or who blocks the
	// sender or is blocked (NewMessage.Peer).
	ErrNotFriends = fmt.Errorf("not friends: %w", ErrForbidden)

	// ErrBlocked is the ErrForbidden of a store refusing a change between
	// two users of whom one blocked the other (GroupStore.AddGroupMember).
	ErrBlocked = fmt.Errorf("blocked: %w", ErrForbidden)

	// ErrTooManyFriends is the ErrConflict of a store refusing to make
	// two users friends when one of them has as many as it was told to
	// allow (FriendStore.AcceptFriend).
	ErrTooManyFriends = fmt.Errorf("too many friends: %w", ErrConflict)

	// ErrTooManyRequests is the ErrConflict of a store refusing a new
	// friend request from a user with as many unanswered as it was told
	// to allow (FriendStore.RequestFriend).
	ErrTooManyRequests = fmt.Errorf("too many friend requests: %w", ErrConflict)

	// ErrTooManyBlocks is the ErrConflict of a store refusing a new block
	// by a user who has blocked as many users as it was told to allow
	// (FriendStore.Block).
	ErrTooManyBlocks = fmt.Errorf("too many blocks: %w", ErrConflict)

	// ErrMailerBusy is the ErrUnavailable of a Mailer that did not try to
	// send a mail because as many as it may send at once were under way:
	// the mail surely did not go out.
	ErrMailerBusy = fmt.Errorf("mailer busy: %w", ErrUnavailable)

	// ErrMailPending is the ErrUnavailable of a Mailer whose Send
	// returned, its context ended, before the mail's outcome was known:
	// the mail may still go out, and Mail.Unsent is called if it does
	// not. Any other failure means the mail did not go out.
	ErrMailPending = fmt.Errorf("mail pending: %w", ErrUnavailable)

	// ErrStoreClosed is what a store answers an append once it is closed:
	// the server is shutting down, and the client sends again (to this
	// node once it is back, or to another).
	ErrStoreClosed = &Error{Kind: ErrUnavailable, Code: CodeUnavailable,
		Message: "the server is shutting down; send again"}
)

// Machine-readable error codes, shown to clients next to a human message.
// docs/protocol.md lists them all.
const (
	CodeBadJSON        = "bad_json"
	CodeUnknownType    = "unknown_type"
	CodeMissingField   = "missing_field"
	CodeInvalidField   = "invalid_field"
	CodeTooLong        = "too_long"
	CodeEmpty          = "empty"
	CodeNotMember      = "not_member"
	CodeNotFound       = "not_found"
	CodeForbidden      = "forbidden"
	CodeRateLimited    = "rate_limited"
	CodeUnauthorized   = "unauthorized"
	CodeBadCode        = "bad_code"
	CodeRefused        = "refused" // a friend request to or from a user who blocked or is blocked
	CodeAlreadyFriends = "already_friends"
	CodeNotFriends     = "not_friends"
	CodeUnavailable    = "unavailable"
	CodeGroupFull      = "group_full"          // the group has max_members members
	CodeNameTaken      = "name_taken"          // another group has this name
	CodeNameLookAlike  = "name_look_alike"     // the name looks like another room's or group's (UTS #39 confusables)
	CodeAlreadyMember  = "already_member"      // the user is in the group already
	CodeOwnerMustLeave = "owner_must_transfer" // the owner leaves only after transferring ownership
	CodeBelowMembers   = "cap_below_members"   // a cap lower than the current member count
	CodeLimitReached   = "limit_reached"       // a user has as many of a thing (groups, rooms, ...) as the server allows
	CodeInternal       = "internal"
)

// Conflicts a GroupStore reports; each wraps ErrConflict.
var (
	ErrGroupFull     = fmt.Errorf("group full: %w", ErrConflict)
	ErrNameTaken     = fmt.Errorf("name taken: %w", ErrConflict)
	ErrAlreadyMember = fmt.Errorf("already a member: %w", ErrConflict)
	ErrBelowMembers  = fmt.Errorf("cap below member count: %w", ErrConflict)

	// ErrNameLookAlike is the conflict of a room or group store refusing a
	// name whose NameSkeleton is another's of the kind, though its
	// case-folded name is not: it looks like that one. A store returns it
	// as a *LookAlikeError, naming the other where it can tell.
	ErrNameLookAlike = fmt.Errorf("name looks like another: %w", ErrConflict)
)

// LookAlikeError is ErrNameLookAlike with the name of the room or group
// that the refused name looks like ("" if the store could not tell).
type LookAlikeError struct {
	Name string
}

func (e *LookAlikeError) Error() string { return fmt.Sprintf("the name looks like %q", e.Name) }
func (e *LookAlikeError) Unwrap() error { return ErrNameLookAlike }

// NameClash is the conflict of a name with the name of another room or
// group of its kind, as a store's query found it: ErrNameTaken if
// sameKey (the two differ at most in case), else a *LookAlikeError
// naming the other.
func NameClash(sameKey bool, other string) error {
	if sameKey {
		return ErrNameTaken
	}
	return &LookAlikeError{Name: other}
}

// Error is a domain error: a kind (one of the Err* values), a
// machine-readable code and a message fit to show to the user.
type Error struct {
	Kind       error
	Code       string
	Message    string
	Field      string        // the offending input field, if any
	RetryAfter time.Duration // for ErrRateLimited
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Kind }

// Errorf returns an *Error of the given kind and code.
func Errorf(kind error, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an ErrInvalid error about one input field.
func Invalid(code, field, format string, args ...any) *Error {
	e := Errorf(ErrInvalid, code, format, args...)
	e.Field = field
	return e
}

// AsError returns the *Error in err's chain, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// Unreachable reports whether err is a server's that could not be reached
// or dropped the connection (a network error, refused, reset, a broken
// pipe, an early end of the stream): a store or a broker maps it to
// ErrUnavailable.
func Unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
