package chat_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/chat/chattest"
	"github.com/parley-chat/parley/internal/inmem"
	"github.com/parley-chat/parley/internal/postgres"
	"github.com/parley-chat/parley/internal/sqlite"
	"github.com/parley-chat/parley/internal/testenv"
)

// fakeMailer records the mail it is given; it fails with err when set.
type fakeMailer struct {
	mu    sync.Mutex
	mails []chat.Mail
	err   error
}

func (m *fakeMailer) Send(_ context.Context, mail chat.Mail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.mails = append(m.mails, mail)
	return nil
}

var codeRE = regexp.MustCompile(`\b[0-9]{6}\b`)

// lastCode returns the code of the latest mail to email.
func (m *fakeMailer) lastCode(tb testing.TB, email string) string {
	tb.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.mails) - 1; i >= 0; i-- {
		if m.mails[i].To == email {
			code := codeRE.FindString(m.mails[i].Text)
			if code == "" {
				tb.Fatalf("no code in mail to %s:\n%s", email, m.mails[i].Text)
			}
			return code
		}
	}
	tb.Fatalf("no mail to %s", email)
	return ""
}

// fixture is a Service on SQLite in a temporary directory, inmem parts and
// a fake mailer.
type fixture struct {
	svc    *chat.Service
	store  chat.Store
	clock  *chattest.Clock
	mail   *fakeMailer
	broker *inmem.Broker
}

func newFixture(tb testing.TB, cfg chat.Config) *fixture {
	tb.Helper()
	return newFixtureWith(tb, cfg, inmem.NewPresence())
}

// newFixtureWith is newFixture with Presence p.
func newFixtureWith(tb testing.TB, cfg chat.Config, p chat.Presence) *fixture {
	tb.Helper()
	db := sqliteStore(tb)
	return newFixtureOn(tb, cfg, p, db)
}

// newFixtureOn is newFixtureWith on store db.
func newFixtureOn(tb testing.TB, cfg chat.Config, p chat.Presence, db chat.Store) *fixture {
	tb.Helper()
	f := &fixture{store: db, clock: chattest.NewClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)), mail: &fakeMailer{}, broker: inmem.NewBroker()}
	tb.Cleanup(func() { f.broker.Close() })
	cfg.Now = f.clock.Now
	f.svc = chat.NewService(cfg, chat.Deps{
		Store:    db,
		Broker:   f.broker,
		Presence: p,
		Limiter:  inmem.NewLimiter(f.clock.Now),
		Mailer:   f.mail,
	})
	tb.Cleanup(f.svc.Close)
	return f
}

// sqliteStore opens a SQLite store in a file of tb's temporary directory,
// closed when tb ends.
func sqliteStore(tb testing.TB) chat.Store {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "parley.db"))
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close database: %v", err)
		}
	})
	return db
}

// postgresStore opens a PostgreSQL store in a schema of its own; it skips
// tb unless PARLEY_TEST_POSTGRES names a database (testenv).
func postgresStore(tb testing.TB) chat.Store {
	tb.Helper()
	db, err := postgres.Open(context.Background(), testenv.PostgresSchema(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// postgresFixture is newFixture on postgresStore.
func postgresFixture(tb testing.TB) *fixture {
	tb.Helper()
	return newFixtureOn(tb, chat.Config{}, inmem.NewPresence(), postgresStore(tb))
}

// signIn signs email in and gives the user name.
func (f *fixture) signIn(tb testing.TB, email, name string) (chat.User, chat.SignIn) {
	tb.Helper()
	ctx := context.Background()
	if err := f.svc.RequestCode(ctx, email, "192.0.2.1"); err != nil {
		tb.Fatalf("RequestCode(%s): %v", email, err)
	}
	in, err := f.svc.VerifyCode(ctx, email, f.mail.lastCode(tb, email), "192.0.2.1")
	if err != nil {
		tb.Fatalf("VerifyCode(%s): %v", email, err)
	}
	u, err := f.svc.SetName(ctx, in.User, name)
	if err != nil {
		tb.Fatalf("SetName(%s): %v", name, err)
	}
	return u, in
}

func (f *fixture) enter(tb testing.TB, u chat.User, name string) chat.Room {
	tb.Helper()
	r, err := f.svc.EnterRoom(context.Background(), u, name)
	if err != nil {
		tb.Fatalf("EnterRoom(%s, %q): %v", u.Name, name, err)
	}
	return r
}

// recorder collects the events of topics. The inmem broker delivers
// synchronously, so an event is recorded when Publish returns.
type recorder struct {
	mu     sync.Mutex
	events []chat.Event
}

func (f *fixture) record(tb testing.TB, t chat.Topic) *recorder {
	tb.Helper()
	r := &recorder{}
	cancel, err := f.broker.Subscribe(t, func(ev chat.Event) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.events = append(r.events, ev)
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cancel)
	return r
}

// take returns and forgets the events recorded so far.
func (r *recorder) take() []chat.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.events
	r.events = nil
	return evs
}

// wantError checks that err is a *chat.Error of kind and code (and field,
// when not empty).
func wantError(tb testing.TB, what string, err error, kind error, code, field string) {
	tb.Helper()
	e := chat.AsError(err)
	if e == nil || !errors.Is(err, kind) || e.Code != code || e.Field != field || e.Message == "" {
		tb.Errorf("%s: error %#v; want kind %v, code %q, field %q and a message", what, err, kind, code, field)
	}
}

// emailCase is an address given to chat.NormalizeEmail, and what it
// gives: the address kept, or the code of its error ("" when valid).
type emailCase struct {
	in, want string
	code     string
}

// wantNormalizedEmails checks chat.NormalizeEmail on each of tests.
func wantNormalizedEmails(t *testing.T, tests []emailCase) {
	t.Helper()
	for _, tt := range tests {
		got, err := chat.NormalizeEmail(tt.in)
		if tt.code == "" {
			if err != nil || got != tt.want {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("NormalizeEmail(%q) = %q; want an error", tt.in, got)
			continue
		}
		wantError(t, fmt.Sprintf("NormalizeEmail(%q)", tt.in), err, chat.ErrInvalid, tt.code, "email")
	}
}

func TestNormalizeEmail(t *testing.T) {
	tests := []emailCase{
		{"ada@example.com", "ada@example.com", ""},
		{"  Ada@Example.COM \n", "ada@example.com", ""},
		{"a.b+tag@mail.example.org", "a.b+tag@mail.example.org", ""},
		{"Cafe\u0301@Example.com", "caf\u00e9@example.com", ""},
		{"CAF\u00c9@example.com", "caf\u00e9@example.com", ""},
		{"\u0130@example.com", "i@example.com", ""},            // İ precomposed
		{"I\u0307@example.com", "i@example.com", ""},           // the same, decomposed
		{"\u0130\u0301@example.com", "\u00ed@example.com", ""}, // í once lower case
		{"\u212b@example.com", "\u00e5@example.com", ""},       // ANGSTROM SIGN
		// A letter outside the Basic Multilingual Plane, with a mark
		// that composes with nothing: x/text before v0.44.0 composed it
		// to U+04F8, a Cyrillic letter, another mailbox.
		{"\U0001042B\u0308@example.com", "\U0001042B\u0308@example.com", ""},
		{"", "", chat.CodeMissingField},
		{"   ", "", chat.CodeMissingField},
		{"ada", "", chat.CodeInvalidField},
		{"ada@", "", chat.CodeInvalidField},
		{"@example.com", "", chat.CodeInvalidField},
		{"ada@localhost", "", chat.CodeInvalidField},
		// A domain literal: a host by its IP address, such as the
		// relay's own or one inside its network, which ada@localhost
		// is refused for; no mailbox a user signs in with.
		{"ada@[127.0.0.1]", "", chat.CodeInvalidField},
		{"ada@[10.0.0.5]", "", chat.CodeInvalidField},
		// The same host by its address without brackets, which a relay
		// resolving names with getaddrinfo takes as that address: no
		// top-level domain is all digits.
		{"ada@127.0.0.1", "", chat.CodeInvalidField},
		{"ada@10.0.0.5", "", chat.CodeInvalidField},
		{"ada@example.123", "", chat.CodeInvalidField},
		{"ada@123.example", "ada@123.example", ""},
		{"ada@@example.com", "", chat.CodeInvalidField},
		{"Ada <ada@example.com>", "", chat.CodeInvalidField},
		{"ada@example.com, bob@example.com", "", chat.CodeInvalidField},
		{"ada lovelace@example.com", "", chat.CodeInvalidField},
		{strings.Repeat("a", 243) + "@example.com", "", chat.CodeTooLong},
	}
	wantNormalizedEmails(t, tests)
}

// roomNameCase is a name given to chat.ValidRoomName, and the code of its
// error ("" when valid).
type roomNameCase struct {
	name string
	code string
}

// wantValidRoomNames checks chat.ValidRoomName on each of tests.
func wantValidRoomNames(t *testing.T, tests []roomNameCase) {
	t.Helper()
	for _, tt := range tests {
		err := chat.ValidRoomName(tt.name)
		if tt.code == "" {
			if err != nil {
				t.Errorf("ValidRoomName(%q) = %v; want nil", tt.name, err)
			}
			continue
		}
		wantError(t, fmt.Sprintf("ValidRoomName(%q)", tt.name), err, chat.ErrInvalid, tt.code, "name")
	}
}

func TestValidRoomName(t *testing.T) {
	tests := []roomNameCase{
		{"general", ""},
		{"General", ""},
		{"go-nuts_2026", ""},
		{"Été", ""},
		{"日本語", ""},
		{strings.Repeat("r", 64), ""},
		{strings.Repeat("é", 64), ""},
		{"", chat.CodeMissingField},
		{strings.Repeat("r", 65), chat.CodeTooLong},
		{"two words", chat.CodeInvalidField},
		{"a/b", chat.CodeInvalidField},
		{"dot.name", chat.CodeInvalidField},
		{"tab\t", chat.CodeInvalidField},
		{"smile😀", chat.CodeInvalidField},
		// Hangul fillers are letters that show as nothing: "general"
		// followed by one looks like "general" and is another room.
		{"general\u3164", chat.CodeInvalidField},
		{"\u3164\u3164", chat.CodeInvalidField},
		{"\u115fgeneral", chat.CodeInvalidField},
		{"gen\u1160eral", chat.CodeInvalidField},
		{"general\uffa0", chat.CodeInvalidField},
		{"한국어", ""},
	}
	wantValidRoomNames(t, tests)
}

func TestNormalizeUserName(t *testing.T) {
	tests := []struct {
		in, want string
		code     string // "" when valid
	}{
		{"Ada", "Ada", ""},
		{"  Ada \t Lovelace\n", "Ada Lovelace", ""},
		{strings.Repeat("n", 40), strings.Repeat("n", 40), ""},
		{strings.Repeat("é", 40), strings.Repeat("é", 40), ""},
		{"", "", chat.CodeMissingField},
		{" \t\n ", "", chat.CodeMissingField},
		{strings.Repeat("n", 41), "", chat.CodeTooLong},
		{"Ada\x00", "", chat.CodeInvalidField},
		{"Ada\x1b[31m", "", chat.CodeInvalidField},
		{"Ada\xff", "", chat.CodeInvalidField},
	}
	for _, tt := range tests {
		got, err := chat.NormalizeUserName(tt.in)
		if tt.code == "" {
			if err != nil || got != tt.want {
				t.Errorf("NormalizeUserName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		wantError(t, fmt.Sprintf("NormalizeUserName(%q)", tt.in), err, chat.ErrInvalid, tt.code, "name")
	}
}

// TestNamesShowSomething: display and group names, which others see, may
// not be made of characters that show nothing, nor hold the controls that
// turn the direction of the text after them (U+202E makes "Ann\u202Egnp.exe"
// show as "Annexe.png").
func TestNamesShowSomething(t *testing.T) {
	for _, tt := range []struct {
		in, code string
	}{
		{"\u200b", chat.CodeMissingField},
		{"\u3164", chat.CodeMissingField},
		{"\u200b \u2060\ufe0f", chat.CodeMissingField},
		{"Ann\u202Egnp.exe", chat.CodeInvalidField},
		{"Ann\u2067x", chat.CodeInvalidField},
	} {
		for what, normalize := range map[string]func(string) (string, error){
			"NormalizeUserName": chat.NormalizeUserName, "NormalizeGroupName": chat.NormalizeGroupName,
		} {
			_, err := normalize(tt.in)
			wantError(t, fmt.Sprintf("%s(%q)", what, tt.in), err, chat.ErrInvalid, tt.code, "name")
		}
	}
	// Marks that join or shape letters stay allowed inside a name, and the
	// right-to-left mark after punctuation that ends a Hebrew name.
	for _, in := range []string{"\u05e9\u05e8\u05d4!\u200f", "\U0001F469\u200d\U0001F4BB Ada", "\u0645\u0631\u064a\u0645"} {
		if _, err := chat.NormalizeUserName(in); err != nil {
			t.Errorf("NormalizeUserName(%q) = %v; want it accepted", in, err)
		}
	}
}

func TestSend(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{MaxMessageLen: 10})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	eve, _ := f.signIn(t, "eve@example.com", "Eve")
	room := f.enter(t, ada, "general")
	events := f.record(t, chat.ConvTopic(room.ID))

	tests := []struct {
		name     string
		u        chat.User
		roomID   int64
		clientID string
		body     string
		kind     error // nil when the send succeeds
		code     string
		field    string
	}{
		{"text", ada, room.ID, "c-1", "hello", nil, "", ""},
		{"longest body", ada, room.ID, "c-2", strings.Repeat("é", 10), nil, "", ""},
		{"no client id", ada, room.ID, "", "no key", nil, "", ""},
		{"not a member", eve, room.ID, "e-1", "let me in", chat.ErrForbidden, chat.CodeNotMember, ""},
		{"no such room", ada, 999999, "c-3", "hello?", chat.ErrNotFound, chat.CodeNotFound, ""},
		{"empty body", ada, room.ID, "c-4", "", chat.ErrInvalid, chat.CodeEmpty, "body"},
		{"white space body", ada, room.ID, "c-5", " \t\n", chat.ErrInvalid, chat.CodeEmpty, "body"},
		{"body too long", ada, room.ID, "c-6", strings.Repeat("é", 11), chat.ErrInvalid, chat.CodeTooLong, "body"},
		{"body not UTF-8", ada, room.ID, "c-7", "bad \xff", chat.ErrInvalid, chat.CodeInvalidField, "body"},
		{"body with a NUL", ada, room.ID, "c-9", "a\x00b", chat.ErrInvalid, chat.CodeInvalidField, "body"},
		{"client id too long", ada, room.ID, strings.Repeat("c", 65), "hi", chat.ErrInvalid, chat.CodeTooLong, "client_id"},
		{"client id with a space", ada, room.ID, "c 8", "hi", chat.ErrInvalid, chat.CodeInvalidField, "client_id"},
		{"client id not ASCII", ada, room.ID, "c-é", "hi", chat.ErrInvalid, chat.CodeInvalidField, "client_id"},
	}
	seq := room.LastSeq
	for _, tt := range tests {
		m, err := f.svc.Send(ctx, tt.u, tt.roomID, tt.clientID, tt.body)
		evs := events.take()
		if tt.kind != nil {
			wantError(t, tt.name, err, tt.kind, tt.code, tt.field)
			if len(evs) != 0 {
				t.Errorf("%s: published %+v; want nothing", tt.name, evs)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: Send: %v", tt.name, err)
			continue
		}
		seq++
		want := chat.Message{ConvID: room.ID, Seq: seq, Kind: chat.KindText, SenderID: tt.u.ID, SenderName: tt.u.Name,
			ClientID: tt.clientID, Body: tt.body, CreatedAt: f.clock.Now()}
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("%s: message mismatch (-want +got):\n%s", tt.name, diff)
		}
		if diff := cmp.Diff([]chat.Event{{Type: chat.EventMessage, ConvID: room.ID, Message: &want}}, evs); diff != "" {
			t.Errorf("%s: events mismatch (-want +got):\n%s", tt.name, diff)
		}
	}

	// A retry returns the stored message and publishes it again, marked
	// Repeat (the first try may have been stored, and then failed, and
	// published nothing); an empty client id is no key.
	first, err := f.svc.Send(ctx, ada, room.ID, "c-1", "hi again")
	if err != nil || first.Seq != room.LastSeq+1 || first.Body != "hello" {
		t.Errorf("retry of c-1 = %+v, %v; want the stored message %d", first, err, room.LastSeq+1)
	}
	if diff := cmp.Diff([]chat.Event{{Type: chat.EventMessage, ConvID: room.ID, Message: &first, Repeat: true}}, events.take()); diff != "" {
		t.Errorf("retry: events mismatch (-want +got):\n%s", diff)
	}
	if m, err := f.svc.Send(ctx, ada, room.ID, "", "no key"); err != nil || m.Seq != seq+1 {
		t.Errorf("second send without a client id = %+v, %v; want a new message %d", m, err, seq+1)
	}
	got, err := f.svc.Room(ctx, room.ID)
	if err != nil || got.LastSeq != seq+1 {
		t.Errorf("room = %+v, %v; want last_seq %d", got, err, seq+1)
	}

	// Anonymous messages need an existing room, no membership.
	m, err := f.svc.SendAnonymous(ctx, room.ID, "anon")
	if err != nil || m.SenderID != 0 || m.SenderName != "anonymous" || m.Seq != seq+2 {
		t.Errorf("SendAnonymous = %+v, %v; want anonymous message %d", m, err, seq+2)
	}
	_, err = f.svc.SendAnonymous(ctx, 999999, "anon")
	wantError(t, "SendAnonymous to no room", err, chat.ErrNotFound, chat.CodeNotFound, "")
	_, err = f.svc.SendAnonymous(ctx, room.ID, " ")
	wantError(t, "SendAnonymous of a blank", err, chat.ErrInvalid, chat.CodeEmpty, "body")
}

func TestRoomEvents(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	room := f.enter(t, ada, "General")
	if room.Name != "General" || room.LastSeq != 1 || room.Members != 1 {
		t.Fatalf("EnterRoom = %+v; want General, last_seq 1, 1 member", room)
	}
	events := f.record(t, chat.ConvTopic(room.ID))
	ignore := cmpopts.IgnoreFields(chat.Message{}, "CreatedAt")
	msgEvent := func(seq int64, kind chat.MessageKind, u chat.User) chat.Event {
		return chat.Event{Type: chat.EventMessage, ConvID: room.ID, Message: &chat.Message{ConvID: room.ID, Seq: seq, Kind: kind, SenderID: u.ID, SenderName: u.Name}}
	}

	// Entering joins once, whatever the case of the name.
	if r := f.enter(t, grace, "general"); r.ID != room.ID || r.Name != "General" || r.Members != 2 || r.LastSeq != 2 {
		t.Errorf("EnterRoom(general) = %+v; want room %d, 2 members, last_seq 2", r, room.ID)
	}
	if r := f.enter(t, grace, "GENERAL"); r.LastSeq != 2 || r.Members != 2 {
		t.Errorf("entering again = %+v; want no new message or member", r)
	}
	if diff := cmp.Diff([]chat.Event{msgEvent(2, chat.KindJoin, grace)}, events.take(), ignore); diff != "" {
		t.Errorf("join events mismatch (-want +got):\n%s", diff)
	}
	_, err := f.svc.EnterRoom(ctx, grace, "no spaces")
	wantError(t, "EnterRoom with a bad name", err, chat.ErrInvalid, chat.CodeInvalidField, "name")

	// Opening counts connections; presence changes on the first and last.
	// Each carries the count after it; the user as anyone may see them;
	// and a version (Presence.State), greater than the one before.
	presence := func(u chat.User, online bool, count int) chat.Event {
		pu := chat.User{ID: u.ID, Name: u.Name, CreatedAt: u.CreatedAt, NameVersion: u.NameVersion}
		return chat.Event{Type: chat.EventPresence, ConvID: room.ID, User: &pu, Online: online, OnlineCount: count}
	}
	var version int64
	versioned := func(evs []chat.Event) []chat.Event {
		t.Helper()
		for i, ev := range evs {
			if ev.Seq <= version {
				t.Errorf("presence event %+v has version %d after %d; want a greater one", ev, ev.Seq, version)
			}
			version = ev.Seq
			evs[i].Seq = 0
		}
		return evs
	}
	r, online, n, err := f.svc.OpenRoom(ctx, ada, room.ID)
	if err != nil || r.ID != room.ID || n != 1 {
		t.Fatalf("OpenRoom = %+v, %d, %v", r, n, err)
	}
	if diff := cmp.Diff([]chat.User{ada}, online); diff != "" {
		t.Errorf("online mismatch (-want +got):\n%s", diff)
	}
	if _, online, n, err = f.svc.OpenRoom(ctx, grace, room.ID); err != nil || n != 2 {
		t.Fatal(n, err)
	}
	if diff := cmp.Diff([]chat.User{ada, grace}, online); diff != "" {
		t.Errorf("online mismatch (-want +got):\n%s", diff)
	}
	if _, _, _, err := f.svc.OpenRoom(ctx, grace, room.ID); err != nil { // a second tab
		t.Fatal(err)
	}
	if diff := cmp.Diff([]chat.Event{presence(ada, true, 1), presence(grace, true, 2)}, versioned(events.take())); diff != "" {
		t.Errorf("presence events mismatch (-want +got):\n%s", diff)
	}
	if err := f.svc.CloseRoom(ctx, grace, room.ID); err != nil {
		t.Fatal(err)
	}
	if evs := events.take(); len(evs) != 0 {
		t.Errorf("closing one of two tabs published %+v; want nothing", evs)
	}
	if err := f.svc.CloseRoom(ctx, grace, room.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]chat.Event{presence(grace, false, 1)}, versioned(events.take())); diff != "" {
		t.Errorf("presence events mismatch (-want +got):\n%s", diff)
	}
	if online, n, err := f.svc.Online(ctx, ada, room.ID); err != nil || !cmp.Equal(online, []chat.User{ada}) || n != 1 {
		t.Errorf("Online = %v, %d, %v; want Ada", online, n, err)
	}

	// Leaving appends a leave message; a non-member can neither leave nor open.
	if err := f.svc.LeaveRoom(ctx, grace, room.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]chat.Event{msgEvent(3, chat.KindLeave, grace)}, events.take(), ignore); diff != "" {
		t.Errorf("leave events mismatch (-want +got):\n%s", diff)
	}
	wantError(t, "LeaveRoom again", f.svc.LeaveRoom(ctx, grace, room.ID), chat.ErrForbidden, chat.CodeNotMember, "")
	wantError(t, "LeaveRoom of no room", f.svc.LeaveRoom(ctx, grace, 999999), chat.ErrNotFound, chat.CodeNotFound, "")
	_, _, _, err = f.svc.OpenRoom(ctx, grace, room.ID)
	wantError(t, "OpenRoom as a non-member", err, chat.ErrForbidden, chat.CodeNotMember, "")
	_, _, _, err = f.svc.OpenRoom(ctx, grace, 999999)
	wantError(t, "OpenRoom of no room", err, chat.ErrNotFound, chat.CodeNotFound, "")
	if evs := events.take(); len(evs) != 0 {
		t.Errorf("failed calls published %+v; want nothing", evs)
	}
	if r, member, err := f.svc.RoomFor(ctx, grace, room.ID); err != nil || member || r.Members != 1 || r.LastSeq != 3 {
		t.Errorf("RoomFor = %+v, %v, %v; want 1 member, last_seq 3, not a member", r, member, err)
	}
	joined, _, err := f.svc.Rooms(ctx, grace, 10)
	if err != nil || len(joined) != 0 {
		t.Errorf("Grace's rooms = %+v, %v; want none", joined, err)
	}
}

// TestLargeRoomPresence: above OnlineMax present, the online list is cut
// to OnlineMax and arrivals and departures become a count, sent once per
// OnlineCountEvery.
func TestLargeRoomPresence(t *testing.T) {
	const every = 50 * time.Millisecond
	p := inmem.NewPresence()
	f := newFixtureWith(t, chat.Config{OnlineMax: 2, OnlineCountEvery: every}, p)
	ctx := context.Background()
	var us []chat.User
	for i, name := range []string{"Dee", "Cy", "Bo", "Al"} {
		u, _ := f.signIn(t, fmt.Sprintf("u%d@example.com", i), name)
		us = append(us, u)
	}
	room := f.enter(t, us[0], "big")
	for _, u := range us[1:] {
		f.enter(t, u, "big")
	}
	events := f.record(t, chat.ConvTopic(room.ID))
	open := func(u chat.User, wantCount int) []chat.User {
		t.Helper()
		_, online, n, err := f.svc.OpenRoom(ctx, u, room.ID)
		if err != nil || n != wantCount {
			t.Fatalf("OpenRoom(%s) = %d present, %v; want %d", u.Name, n, err, wantCount)
		}
		return online
	}
	open(us[0], 1)
	open(us[1], 2)
	if evs := events.take(); len(evs) != 2 || evs[1].Type != chat.EventPresence || evs[1].OnlineCount != 2 {
		t.Fatalf("events up to OnlineMax = %+v; want a presence each, the last counting 2", evs)
	}
	// Past OnlineMax: no presence event; the list holds OnlineMax, by name.
	online := open(us[2], 3)
	if len(online) != 2 || online[0].Name > online[1].Name || !slices.ContainsFunc(online, func(o chat.User) bool { return o.ID == us[2].ID }) {
		t.Errorf("online list of 3 present = %+v; want 2 of them by name, Bo among them", online)
	}
	online = open(us[3], 4)
	if len(online) != 2 || !slices.ContainsFunc(online, func(o chat.User) bool { return o.ID == us[3].ID }) {
		t.Errorf("online list of 4 present = %+v; want 2 of them, Al among them", online)
	}
	if evs := events.take(); len(evs) != 0 {
		t.Errorf("arrivals past OnlineMax published %+v at once; want nothing until the count is due", evs)
	}
	if err := f.svc.CloseRoom(ctx, us[3], room.ID); err != nil {
		t.Fatal(err)
	}
	// One count for the three changes, once it is due.
	var evs []chat.Event
	for deadline := time.Now().Add(5 * time.Second); len(evs) == 0 && time.Now().Before(deadline); {
		time.Sleep(every / 5)
		evs = events.take()
	}
	// Its version is the count's (Presence.StateCount), by which hubs
	// drop an older count.
	version, err := p.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []chat.Event{{Type: chat.EventOnlineCount, ConvID: room.ID, OnlineCount: 3, Seq: version}}
	if diff := cmp.Diff(want, evs); diff != "" {
		t.Fatalf("count event mismatch (-want +got):\n%s", diff)
	}
	time.Sleep(2 * every)
	if evs := events.take(); len(evs) != 0 {
		t.Errorf("after the count: %+v; want nothing more", evs)
	}
	// Back to OnlineMax: presence events again, each with its count.
	if err := f.svc.CloseRoom(ctx, us[2], room.ID); err != nil {
		t.Fatal(err)
	}
	evs = events.take()
	if len(evs) != 1 || evs[0].Type != chat.EventPresence || evs[0].Online || evs[0].User.ID != us[2].ID || evs[0].OnlineCount != 2 {
		t.Errorf("leaving down to OnlineMax published %+v; want Bo offline, 2 present", evs)
	}
	if online, n, err := f.svc.Online(ctx, us[0], room.ID); err != nil || n != 2 || len(online) != 2 {
		t.Errorf("Online = %+v, %d, %v; want both present", online, n, err)
	}
}

// TestQuietJoins: in a room of AnnounceMax members, joining and leaving
// append no message and publish nothing; the newcomer has nothing unread.
func TestQuietJoins(t *testing.T) {
	f := newFixture(t, chat.Config{AnnounceMax: 2})
	ctx := context.Background()
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bo, _ := f.signIn(t, "bo@example.com", "Bo")
	cy, _ := f.signIn(t, "cy@example.com", "Cy")
	room := f.enter(t, ada, "town")
	events := f.record(t, chat.ConvTopic(room.ID))
	if r := f.enter(t, bo, "town"); r.LastSeq != 2 || r.Members != 2 {
		t.Errorf("Bo enters = %+v; want a join message, 2 members", r)
	}
	if evs := events.take(); len(evs) != 1 || evs[0].Message == nil || evs[0].Message.Kind != chat.KindJoin {
		t.Errorf("Bo's join published %+v; want the join message", evs)
	}
	if r := f.enter(t, cy, "town"); r.LastSeq != 2 || r.Members != 3 {
		t.Errorf("Cy enters a room of AnnounceMax = %+v; want no message, 3 members", r)
	}
	if c, err := f.svc.ConversationFor(ctx, cy, room.ID); err != nil || c.Unread != 0 {
		t.Errorf("Cy's conversation = %+v, %v; want nothing unread", c, err)
	}
	if err := f.svc.LeaveRoom(ctx, cy, room.ID); err != nil {
		t.Fatal(err)
	}
	if evs := events.take(); len(evs) != 0 {
		t.Errorf("a quiet join and leave published %+v; want nothing", evs)
	}
	if err := f.svc.LeaveRoom(ctx, bo, room.ID); err != nil {
		t.Fatal(err)
	}
	if evs := events.take(); len(evs) != 1 || evs[0].Message == nil || evs[0].Message.Kind != chat.KindLeave || evs[0].Message.Seq != 3 {
		t.Errorf("Bo leaving a room of 2 published %+v; want the leave message, seq 3", evs)
	}
}

func TestSync(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{HistoryLimit: 10})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace") // not a member: rooms are public
	room := f.enter(t, ada, "general")
	const total = 26 // the join and 25 messages
	for i := 2; i <= total; i++ {
		if _, err := f.svc.Send(ctx, ada, room.ID, fmt.Sprintf("c-%d", i), fmt.Sprintf("message %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(ms []chat.Message) []int64 {
		out := []int64{}
		for _, m := range ms {
			out = append(out, m.Seq)
		}
		return out
	}
	span := func(from, to int64) []int64 {
		out := []int64{}
		for s := from; s <= to; s++ {
			out = append(out, s)
		}
		return out
	}
	tests := []struct {
		after    int64
		limit    int
		from, to int64
	}{
		{0, 10, 1, 10},
		{0, 0, 1, 10},   // the default limit
		{0, 100, 1, 10}, // capped
		{0, 3, 1, 3},
		{10, 10, 11, 20},
		{20, 10, 21, 26},
		{25, 10, 26, 26},
		{26, 10, 1, 0},
		{1000, 10, 1, 0},
	}
	for _, tt := range tests {
		ms, err := f.svc.Sync(ctx, grace, room.ID, tt.after, tt.limit)
		if err != nil {
			t.Errorf("Sync(after %d, limit %d): %v", tt.after, tt.limit, err)
			continue
		}
		if diff := cmp.Diff(span(tt.from, tt.to), seqs(ms)); diff != "" {
			t.Errorf("Sync(after %d, limit %d) seqs mismatch (-want +got):\n%s", tt.after, tt.limit, diff)
		}
	}
	ms, err := f.svc.Sync(ctx, grace, room.ID, 1, 1)
	if err != nil || len(ms) != 1 || ms[0].Body != "message 2" || ms[0].SenderName != "Ada" || ms[0].ClientID != "c-2" {
		t.Errorf("Sync(after 1, limit 1) = %+v, %v; want Ada's message 2", ms, err)
	}
	_, err = f.svc.Sync(ctx, grace, room.ID, -1, 10)
	wantError(t, "Sync after -1", err, chat.ErrInvalid, chat.CodeInvalidField, "after")
	_, err = f.svc.Sync(ctx, grace, 999999, 0, 10)
	wantError(t, "Sync of no room", err, chat.ErrNotFound, chat.CodeNotFound, "")
}

func TestRequestCode(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{PublicURL: "https://chat.example.com/", CodesPerIP: 3})
	if err := f.svc.RequestCode(ctx, " Ada@Example.com", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	m := f.mail.mails[0]
	code := f.mail.lastCode(t, "ada@example.com")
	if !strings.Contains(m.Subject, code) || !strings.Contains(m.HTML, ">"+code+"<") ||
		!strings.Contains(m.Text, "https://chat.example.com/#login?email=ada%40example.com") {
		t.Errorf("mail = %+v; want the code in subject, text and HTML, and a link to chat.example.com", m)
	}
	err := f.svc.RequestCode(ctx, "not an address", "192.0.2.1")
	wantError(t, "RequestCode(not an address)", err, chat.ErrInvalid, chat.CodeInvalidField, "email")

	// Per client IP: the invalid address did not count.
	for _, email := range []string{"b@example.com", "c@example.com"} {
		if err := f.svc.RequestCode(ctx, email, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	err = f.svc.RequestCode(ctx, "d@example.com", "192.0.2.1")
	wantError(t, "fourth code from one IP", err, chat.ErrRateLimited, chat.CodeRateLimited, "")
	if e := chat.AsError(err); e == nil || e.RetryAfter <= 0 || e.RetryAfter > 15*time.Minute {
		t.Errorf("RetryAfter of %v; want within the 15-minute window", err)
	}
	f.clock.Advance(15 * time.Minute)
	if err := f.svc.RequestCode(ctx, "d@example.com", "192.0.2.1"); err != nil {
		t.Errorf("RequestCode after the window: %v", err)
	}

	f.mail.mu.Lock()
	f.mail.err = errors.New("relay down")
	f.mail.mu.Unlock()
	err = f.svc.RequestCode(ctx, "e@example.com", "192.0.2.2")
	wantError(t, "RequestCode with the relay down", err, chat.ErrUnavailable, chat.CodeUnavailable, "")
}

// TestRequestCodeMailFails checks that a code request whose mail fails
// changes nothing: the code mailed before still works.
func TestRequestCodeMailFails(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	if err := f.svc.RequestCode(ctx, "ada@example.com", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	code := f.mail.lastCode(t, "ada@example.com")
	f.mail.mu.Lock()
	f.mail.err = errors.New("relay down")
	f.mail.mu.Unlock()
	err := f.svc.RequestCode(ctx, "ada@example.com", "192.0.2.1")
	wantError(t, "RequestCode with the relay down", err, chat.ErrUnavailable, chat.CodeUnavailable, "")
	if _, err := f.svc.VerifyCode(ctx, "ada@example.com", code, "192.0.2.1"); err != nil {
		t.Errorf("VerifyCode with the code mailed before the failed request: %v; want a session", err)
	}
}

// TestRequestCodeAddressRefused: a relay refusing the address for good
// (the Mailer's ErrInvalid) is the address's fault: the request is
// refused as invalid, for the user to correct, not as unavailable, which
// would have them retry an address that never works.
func TestRequestCodeAddressRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	f.mail.mu.Lock()
	f.mail.err = fmt.Errorf("550 5.1.1 no such mailbox: %w", chat.ErrInvalid)
	f.mail.mu.Unlock()
	err := f.svc.RequestCode(ctx, "nobody@example.com", "192.0.2.1")
	wantError(t, "RequestCode with the address refused", err, chat.ErrInvalid, chat.CodeInvalidField, "email")
}

func TestVerifyCode(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	request := func(email string) string {
		t.Helper()
		if err := f.svc.RequestCode(ctx, email, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		return f.mail.lastCode(t, email)
	}
	wrong := func(code string) string {
		n, _ := strconv.Atoi(code)
		return fmt.Sprintf("%06d", (n+1)%1_000_000)
	}

	code := request("ada@example.com")
	for i := 1; i <= 5; i++ {
		_, err := f.svc.VerifyCode(ctx, "ada@example.com", wrong(code), "192.0.2.1")
		wantError(t, fmt.Sprintf("wrong try %d", i), err, chat.ErrUnauthorized, chat.CodeBadCode, "")
	}
	_, err := f.svc.VerifyCode(ctx, "ada@example.com", code, "192.0.2.1")
	wantError(t, "right code after five wrong tries", err, chat.ErrUnauthorized, chat.CodeBadCode, "")

	code = request("ada@example.com")
	in, err := f.svc.VerifyCode(ctx, "ADA@example.com", code, "192.0.2.1")
	if err != nil || !in.NewUser || in.User.Email != "ada@example.com" || in.Token == "" || in.Session.UserID != in.User.ID {
		t.Fatalf("VerifyCode = %+v, %v; want a new user's session", in, err)
	}
	if in.Session.TokenHash != chat.HashToken(in.Token) || strings.Contains(in.Session.TokenHash, in.Token) {
		t.Errorf("session stores %q for token %q; want only its hash", in.Session.TokenHash, in.Token)
	}
	_, err = f.svc.VerifyCode(ctx, "ada@example.com", code, "192.0.2.1")
	wantError(t, "a used code", err, chat.ErrUnauthorized, chat.CodeBadCode, "")

	code = request("ada@example.com")
	f.clock.Advance(10 * time.Minute)
	_, err = f.svc.VerifyCode(ctx, "ada@example.com", code, "192.0.2.1")
	wantError(t, "an expired code", err, chat.ErrUnauthorized, chat.CodeBadCode, "")
	_, err = f.svc.VerifyCode(ctx, "ada@example.com", "", "192.0.2.1")
	wantError(t, "no code", err, chat.ErrInvalid, chat.CodeMissingField, "code")
	_, err = f.svc.VerifyCode(ctx, "nobody@example.com", "123456", "192.0.2.1")
	wantError(t, "no pending code", err, chat.ErrUnauthorized, chat.CodeBadCode, "")
}

// failingSessions is a Store whose CreateSession fails while fail is set,
// as a database that is briefly unreachable.
type failingSessions struct {
	chat.Store
	fail *atomic.Bool
}

func (s failingSessions) CreateSession(ctx context.Context, sess chat.Session) (chat.Session, error) {
	if s.fail.Load() {
		return chat.Session{}, chat.Errorf(chat.ErrUnavailable, chat.CodeUnavailable, "the database is unavailable; try again later")
	}
	return s.Store.CreateSession(ctx, sess)
}

// TestVerifyCodeFailsAfterUse checks that a right code whose sign-in
// fails afterwards (the database unreachable) can be tried again: the
// error says to retry, and the code must still be there.
func TestVerifyCodeFailsAfterUse(t *testing.T) {
	ctx := context.Background()
	db := sqliteStore(t)
	var fail atomic.Bool
	f := newFixtureOn(t, chat.Config{}, inmem.NewPresence(), failingSessions{db, &fail})
	if err := f.svc.RequestCode(ctx, "ada@example.com", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	code := f.mail.lastCode(t, "ada@example.com")
	fail.Store(true)
	_, err := f.svc.VerifyCode(ctx, "ada@example.com", code, "192.0.2.1")
	wantError(t, "VerifyCode with the database down", err, chat.ErrUnavailable, chat.CodeUnavailable, "")
	fail.Store(false)
	if in, err := f.svc.VerifyCode(ctx, "ada@example.com", code, "192.0.2.1"); err != nil || in.Token == "" {
		t.Errorf("VerifyCode again once the database is back = %+v, %v; want a session", in, err)
	}
	if _, err := f.svc.VerifyCode(ctx, "ada@example.com", code, "192.0.2.1"); err == nil {
		t.Error("VerifyCode a third time = nil; want the used code refused")
	}
}

// codeDeletesFail is a Store whose DeleteLoginCode fails, as it does for
// a request whose client gave up on it (its context canceled) once the
// try was counted against the code.
type codeDeletesFail struct{ chat.Store }

func (s codeDeletesFail) DeleteLoginCode(ctx context.Context, email, hash string) (bool, error) {
	return false, context.Canceled
}

// TestWrongCodeCountedWhenItsRemovalFails: a wrong code counts against
// its client's wrong codes even when the removal of the code it used up
// fails: the try was spent on the code all the same (no one signs in with
// it any more). Else a client that gives up on each code's last try
// before the removal would spend every code's last try unbounded.
func TestWrongCodeCountedWhenItsRemovalFails(t *testing.T) {
	ctx := context.Background()
	db := sqliteStore(t)
	// One code of two tries: two wrong codes from a client.
	f := newFixtureOn(t, chat.Config{CodesPerIP: 1, CodeAttempts: 2}, inmem.NewPresence(), codeDeletesFail{db})
	for i, email := range []string{"ada@example.com", "grace@example.com"} {
		if err := f.svc.RequestCode(ctx, email, fmt.Sprintf("192.0.2.%d", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	wrong := func(email string) string {
		if f.mail.lastCode(t, email) == "000000" {
			return "000001"
		}
		return "000000"
	}
	const attacker = "198.51.100.7"
	_, err := f.svc.VerifyCode(ctx, "ada@example.com", wrong("ada@example.com"), attacker)
	wantError(t, "first wrong code", err, chat.ErrUnauthorized, chat.CodeBadCode, "")
	if _, err := f.svc.VerifyCode(ctx, "ada@example.com", wrong("ada@example.com"), attacker); err == nil {
		t.Fatal("second wrong code = nil; want an error")
	}
	_, err = f.svc.VerifyCode(ctx, "grace@example.com", wrong("grace@example.com"), attacker)
	wantError(t, "third wrong code", err, chat.ErrRateLimited, chat.CodeRateLimited, "")
}

// sessionsFailingOnce is a Store whose first CreateSession runs before
// and then fails, as a database that becomes unreachable while something
// else happens; those after it succeed.
type sessionsFailingOnce struct {
	chat.Store
	before func()
	failed *atomic.Bool
}

func (s sessionsFailingOnce) CreateSession(ctx context.Context, sess chat.Session) (chat.Session, error) {
	if s.failed.CompareAndSwap(false, true) {
		s.before()
		return chat.Session{}, chat.Errorf(chat.ErrUnavailable, chat.CodeUnavailable, "the database is unavailable; try again later")
	}
	return s.Store.CreateSession(ctx, sess)
}

// TestVerifyCodeFailsAfterNewCode checks that a right code whose sign-in
// fails puts itself back beside a code asked for and mailed meanwhile
// (the user clicked "send" again), not over it: that one works.
func TestVerifyCodeFailsAfterNewCode(t *testing.T) {
	ctx := context.Background()
	db := sqliteStore(t)
	var (
		f       *fixture
		newCode string
		failed  atomic.Bool
	)
	f = newFixtureOn(t, chat.Config{}, inmem.NewPresence(), sessionsFailingOnce{db, func() {
		if err := f.svc.RequestCode(ctx, "ada@example.com", "192.0.2.1"); err != nil {
			t.Errorf("RequestCode during the sign-in: %v", err)
		}
		newCode = f.mail.lastCode(t, "ada@example.com")
	}, &failed})
	if err := f.svc.RequestCode(ctx, "ada@example.com", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	old := f.mail.lastCode(t, "ada@example.com")
	_, err := f.svc.VerifyCode(ctx, "ada@example.com", old, "192.0.2.1")
	wantError(t, "VerifyCode with the database down", err, chat.ErrUnavailable, chat.CodeUnavailable, "")
	if newCode == old {
		t.Skip("the new code happens to be the old one")
	}
	if in, err := f.svc.VerifyCode(ctx, "ada@example.com", newCode, "192.0.2.1"); err != nil || in.Token == "" {
		t.Errorf("VerifyCode(the code mailed during the failed sign-in) = %+v, %v; want a session", in, err)
	}
}

func TestVerifyCodeConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{CodesPerIP: 1000})
	const rounds, racers = 10, 8
	for round := range rounds {
		email := fmt.Sprintf("user%d@example.com", round)
		if err := f.svc.RequestCode(ctx, email, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		code := f.mail.lastCode(t, email)
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			ins   = make([]chat.SignIn, racers)
			errs  = make([]error, racers)
		)
		for i := range racers {
			wg.Go(func() {
				<-start
				ins[i], errs[i] = f.svc.VerifyCode(ctx, email, code, "192.0.2.1")
			})
		}
		close(start)
		wg.Wait()
		var won []chat.SignIn
		for i, err := range errs {
			if err == nil {
				won = append(won, ins[i])
				continue
			}
			wantError(t, "losing verification", err, chat.ErrUnauthorized, chat.CodeBadCode, "")
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d of %d concurrent verifications won; want exactly 1", round, len(won), racers)
		}
		if u, _, _, err := f.svc.Authenticate(ctx, won[0].Token); err != nil || u.ID != won[0].User.ID {
			t.Errorf("round %d: Authenticate(winner) = %+v, %v", round, u, err)
		}
	}
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, in := f.signIn(t, "ada@example.com", "Ada")
	const day = 24 * time.Hour
	if want := f.clock.Now().Add(30 * day); !in.Session.ExpiresAt.Equal(want) {
		t.Errorf("session expires at %v; want %v", in.Session.ExpiresAt, want)
	}
	auth := func(token string) (chat.User, chat.Session, bool, error) {
		t.Helper()
		return f.svc.Authenticate(ctx, token)
	}

	f.clock.Advance(15 * day) // exactly half left: not yet renewed
	u, sess, renewed, err := auth(in.Token)
	if err != nil || renewed || u.ID != ada.ID || u.Name != "Ada" || !sess.ExpiresAt.Equal(in.Session.ExpiresAt) {
		t.Errorf("Authenticate after 15 days = %+v, %+v, renewed %v, %v; want Ada, not renewed", u, sess, renewed, err)
	}
	f.clock.Advance(time.Second)
	_, sess, renewed, err = auth(in.Token)
	if want := f.clock.Now().Add(30 * day); err != nil || !renewed || !sess.ExpiresAt.Equal(want) {
		t.Errorf("Authenticate after 15 days and 1s = %+v, renewed %v, %v; want renewed until %v", sess, renewed, err, want)
	}
	if _, sess2, renewed, err := auth(in.Token); err != nil || renewed || !sess2.ExpiresAt.Equal(sess.ExpiresAt) {
		t.Errorf("Authenticate right after renewal = %+v, renewed %v, %v; want the renewed session, not renewed again", sess2, renewed, err)
	}

	f.clock.Advance(30*day - time.Second)
	if _, _, _, err := auth(in.Token); err != nil {
		t.Errorf("Authenticate a second before expiry: %v", err)
	}
	f.clock.Advance(30 * day)
	_, _, _, err = auth(in.Token)
	wantError(t, "an expired session", err, chat.ErrUnauthorized, chat.CodeUnauthorized, "")
	f.clock.Advance(-30 * day) // an expired session is gone, not just hidden
	_, _, _, err = auth(in.Token)
	wantError(t, "a deleted session", err, chat.ErrUnauthorized, chat.CodeUnauthorized, "")

	for _, token := range []string{"", "forged", strings.Repeat("t", 300)} {
		_, _, _, err := auth(token)
		wantError(t, fmt.Sprintf("Authenticate(%.10q)", token), err, chat.ErrUnauthorized, chat.CodeUnauthorized, "")
	}

	// Signing out ends one session and tells the user's connections.
	_, phone := f.signIn(t, "ada@example.com", "Ada")
	_, laptop := f.signIn(t, "ada@example.com", "Ada")
	events := f.record(t, chat.UserTopic(ada.ID))
	if err := f.svc.SignOut(ctx, phone.Session); err != nil {
		t.Fatal(err)
	}
	want := []chat.Event{{Type: chat.EventSessionEnded, UserID: ada.ID, SessionID: phone.Session.ID}}
	if diff := cmp.Diff(want, events.take()); diff != "" {
		t.Errorf("sign-out events mismatch (-want +got):\n%s", diff)
	}
	_, _, _, err = auth(phone.Token)
	wantError(t, "a signed-out session", err, chat.ErrUnauthorized, chat.CodeUnauthorized, "")
	if _, _, _, err := auth(laptop.Token); err != nil {
		t.Errorf("the other session: %v", err)
	}
}

// signOutOnExtend is a Store on which each session is signed out (by
// another request) between Authenticate's read of it and its renewal.
type signOutOnExtend struct{ chat.Store }

func (s signOutOnExtend) UseSession(ctx context.Context, id int64, used, expires time.Time) error {
	if err := s.Store.DeleteSession(ctx, id); err != nil {
		return err
	}
	return s.Store.UseSession(ctx, id, used, expires)
}

// TestAuthenticateSignedOutWhileRenewed checks that a session signed out
// while a request renews it is unauthorized, not an internal error.
func TestAuthenticateSignedOutWhileRenewed(t *testing.T) {
	db := sqliteStore(t)
	f := newFixtureOn(t, chat.Config{}, inmem.NewPresence(), signOutOnExtend{db})
	_, in := f.signIn(t, "ada@example.com", "Ada")
	f.clock.Advance(16 * 24 * time.Hour) // in its second half: renewed
	_, _, _, err := f.svc.Authenticate(context.Background(), in.Token)
	wantError(t, "Authenticate of a session signed out as it is renewed", err, chat.ErrUnauthorized, chat.CodeUnauthorized, "")
}

func TestSendConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	rooms := []chat.Room{f.enter(t, ada, "one"), f.enter(t, ada, "two")}
	for _, r := range rooms {
		f.enter(t, grace, r.Name)
	}
	recs := []*recorder{f.record(t, chat.ConvTopic(rooms[0].ID)), f.record(t, chat.ConvTopic(rooms[1].ID))}

	// Retries of one send racing each other store it once.
	const racers = 10
	var wg sync.WaitGroup
	got := make([]chat.Message, racers)
	errs := make([]error, racers)
	for i := range racers {
		u := []chat.User{ada, grace}[i%2]
		wg.Go(func() { got[i], errs[i] = f.svc.Send(ctx, u, rooms[0].ID, "same", "once") })
	}
	wg.Wait()
	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("Send %d: %v", i, errs[i])
		}
		if want := got[i%2]; !cmp.Equal(got[i], want) {
			t.Errorf("Send %d = %+v; want %+v, like the other retries of its sender", i, got[i], want)
		}
	}
	first := 0
	for _, ev := range recs[0].take() {
		if !ev.Repeat {
			first++
		}
	}
	if first != 2 {
		t.Errorf("racing retries published %d events not marked Repeat; want 2 (one per sender)", first)
	}

	// Concurrent senders in two rooms: every room's seqs stay gap-free and
	// every acknowledged message is stored as acknowledged.
	const senders, each = 8, 25
	acked := make([][]chat.Message, senders)
	for i := range senders {
		u := []chat.User{ada, grace}[i%2]
		wg.Go(func() {
			for j := range each {
				m, err := f.svc.Send(ctx, u, rooms[j%2].ID, fmt.Sprintf("s%d-%d", i, j), fmt.Sprintf("from %d: %d", i, j))
				if err != nil {
					t.Errorf("sender %d, message %d: %v", i, j, err)
					return
				}
				acked[i] = append(acked[i], m)
			}
		})
	}
	wg.Wait()
	for k, r := range rooms {
		var all []chat.Message
		for after := int64(0); ; {
			ms, err := f.svc.Sync(ctx, ada, r.ID, after, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) == 0 {
				break
			}
			all = append(all, ms...)
			after = ms[len(ms)-1].Seq
		}
		for i, m := range all {
			if m.Seq != int64(i+1) {
				t.Fatalf("room %s: message %d has seq %d; want gap-free seqs", r.Name, i, m.Seq)
			}
		}
		stored := make(map[int64]chat.Message)
		for _, m := range all {
			stored[m.Seq] = m
		}
		n := 0
		for _, ms := range acked {
			for _, m := range ms {
				if m.ConvID != r.ID {
					continue
				}
				n++
				if diff := cmp.Diff(m, stored[m.Seq]); diff != "" {
					t.Errorf("room %s: acknowledged message differs from stored (-ack +stored):\n%s", r.Name, diff)
				}
			}
		}
		evs := recs[k].take()
		if len(evs) != n {
			t.Errorf("room %s: %d events for %d messages", r.Name, len(evs), n)
		}
	}
}

// TestMissed: what a node's hub asks for after its broker was away.
func TestMissed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{HistoryLimit: 10})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	room := f.enter(t, ada, "general") // seq 1: the join
	for i := 2; i <= 4; i++ {
		if _, err := f.svc.Send(ctx, ada, room.ID, fmt.Sprintf("c-%d", i), fmt.Sprintf("message %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(evs []chat.Event) (out []int64) {
		for _, ev := range evs {
			if ev.Type != chat.EventMessage || ev.ConvID != room.ID {
				t.Fatalf("event %+v is not a message of the room", ev)
			}
			out = append(out, ev.Message.Seq)
		}
		return out
	}
	for _, c := range []struct {
		after int64
		want  []int64
	}{{2, []int64{3, 4}}, {4, nil}, {-1, []int64{4}}} {
		evs, err := f.svc.Missed(ctx, chat.ConvTopic(room.ID), c.after)
		if err != nil {
			t.Fatal(err)
		}
		if got := seqs(evs); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("Missed(room, after %d) = seqs %v; want %v", c.after, got, c.want)
		}
	}

	if _, err := f.svc.RequestFriend(ctx, ada, grace.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AcceptFriend(ctx, grace, ada.ID); err != nil {
		t.Fatal(err)
	}
	all, err := f.svc.Missed(ctx, chat.UserTopic(ada.ID), 0)
	if err != nil || len(all) < 2 {
		t.Fatalf("Missed(ada's topic, after 0) = %d events, %v; want her request and its acceptance", len(all), err)
	}
	newest, err := f.svc.Missed(ctx, chat.UserTopic(ada.ID), -1)
	if err != nil || len(newest) != 1 || newest[0].UserSeq != all[len(all)-1].UserSeq {
		t.Errorf("Missed(ada's topic, newest) = %+v, %v; want the one with user_seq %d", newest, err, all[len(all)-1].UserSeq)
	}
	if _, err := f.svc.Missed(ctx, chat.Topic("bogus"), 0); err == nil {
		t.Error("Missed of a malformed topic succeeded")
	}
}

// TestMissedFromStart: a hub whose topic was opened on an empty
// conversation asks for what follows seq 0, and gets the first page of
// it, not the newest: what it delivers must follow on from 0.
func TestMissedFromStart(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{HistoryLimit: 10})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	room := f.enter(t, ada, "general") // seq 1: the join
	for i := 2; i <= 14; i++ {
		if _, err := f.svc.Send(ctx, ada, room.ID, fmt.Sprintf("c-%d", i), fmt.Sprintf("message %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := f.svc.Missed(ctx, chat.ConvTopic(room.ID), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, ev := range evs {
		got = append(got, ev.Message.Seq)
	}
	if want := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Missed(room, after 0) = seqs %v; want %v", got, want)
	}
}

// seenCheck is a Presence that, as it counts out a user everywhere, records
// whether the store already holds when the user was last seen.
type seenCheck struct {
	chat.Presence
	store chat.Store
	mu    sync.Mutex
	seen  []time.Time // at each Remove, the stored last-seen time
}

func (p *seenCheck) Remove(ctx context.Context, convID, userID int64) (bool, error) {
	if convID == chat.Everywhere {
		m, err := p.store.LastSeen(ctx, []int64{userID})
		if err != nil {
			return false, err
		}
		p.mu.Lock()
		p.seen = append(p.seen, m[userID])
		p.mu.Unlock()
	}
	return p.Presence.Remove(ctx, convID, userID)
}

// TestLastSeenBeforeOffline: a user counted out of the Presence has a
// last-seen time stored already, so that no reader, on any node, finds
// the user offline and never seen.
func TestLastSeenBeforeOffline(t *testing.T) {
	ctx := context.Background()
	p := &seenCheck{Presence: inmem.NewPresence()}
	f := newFixtureWith(t, chat.Config{}, p)
	p.store = f.store
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	for range 2 {
		if err := f.svc.Connect(ctx, ada); err != nil {
			t.Fatal(err)
		}
	}
	f.svc.Disconnect(ada)
	f.svc.Disconnect(ada)
	f.svc.FlushPresence(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) != 2 {
		t.Fatalf("%d connections counted out; want 2", len(p.seen))
	}
	for i, seen := range p.seen {
		if !seen.Equal(f.clock.Now()) {
			t.Errorf("counting out connection %d: last seen %v; want %v, stored before", i+1, seen, f.clock.Now())
		}
	}
}

// TestShortSessionNotRenewed: a session made to live less than half the
// server's lifetime ("parley admin sessions --ttl 1h") ends when it was
// set to, however often it is used; one made for more is renewed as any.
func TestShortSessionNotRenewed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{}) // sessions live 30 days
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	now := f.clock.Now()
	for _, c := range []struct {
		token      string
		lifetime   time.Duration
		usedAfter  time.Duration
		wantExpiry time.Time // after the use
	}{
		{"hour", time.Hour, time.Minute, now.Add(time.Hour)},
		{"week", 7 * 24 * time.Hour, 6 * 24 * time.Hour, now.Add(7 * 24 * time.Hour)},
		{"20 days", 20 * 24 * time.Hour, 6 * 24 * time.Hour, now.Add(6*24*time.Hour + 30*24*time.Hour)},
	} {
		if _, err := f.store.CreateSession(ctx, chat.Session{UserID: ada.ID, TokenHash: chat.HashToken(c.token), CreatedAt: now, ExpiresAt: now.Add(c.lifetime)}); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		f.clock.Advance(c.usedAfter)
		_, sess, _, err := f.svc.Authenticate(ctx, c.token)
		if err != nil || !sess.ExpiresAt.Equal(c.wantExpiry) {
			t.Errorf("a session of %s used after %s: Authenticate = %v, %v; want it to expire at %v", c.token, c.usedAfter, sess.ExpiresAt, err, c.wantExpiry)
		}
		f.clock.Advance(-c.usedAfter)
	}
	f.clock.Advance(time.Hour)
	_, _, _, err := f.svc.Authenticate(ctx, "hour")
	wantError(t, "a session of an hour, an hour later", err, chat.ErrUnauthorized, chat.CodeUnauthorized, "")
}

// TestOpenSessionsEnded: of a node's sessions, those signed out, expired or
// never known are ended; more than one read's worth are all answered.
func TestOpenSessionsEnded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	_, a := f.signIn(t, "ada@example.com", "Ada")
	_, b := f.signIn(t, "ada@example.com", "Ada")
	_, c := f.signIn(t, "bob@example.com", "Bob")
	if err := f.svc.SignOut(ctx, b.Session); err != nil {
		t.Fatalf("SignOut: %v", err)
	}
	ids := []int64{a.Session.ID, b.Session.ID, c.Session.ID}
	for id := int64(1000); len(ids) < 1200; id++ { // sessions that never were
		ids = append(ids, id)
	}
	ended, err := f.svc.OpenSessions(ctx, ids)
	if err != nil {
		t.Fatalf("OpenSessions: %v", err)
	}
	if want := ids[3:]; !slices.Equal(ended, append([]int64{b.Session.ID}, want...)) {
		t.Errorf("OpenSessions = %d ids, first %v; want %d: the signed-out one and the unknown", len(ended), ended[:min(3, len(ended))], len(want)+1)
	}
	f.clock.Advance(31 * 24 * time.Hour)
	if ended, err := f.svc.OpenSessions(ctx, ids[:3]); err != nil || !slices.Equal(ended, ids[:3]) {
		t.Errorf("OpenSessions after expiry = %v, %v; want %v", ended, err, ids[:3])
	}
}

// sessionWrites counts a store's writes of sessions' use.
type sessionWrites struct {
	chat.Store
	mu      sync.Mutex
	renewed []int64   // by UseSession
	used    [][]int64 // by UseSessions, a call each
}

func (s *sessionWrites) UseSession(ctx context.Context, id int64, used, expires time.Time) error {
	s.mu.Lock()
	s.renewed = append(s.renewed, id)
	s.mu.Unlock()
	return s.Store.UseSession(ctx, id, used, expires)
}

func (s *sessionWrites) UseSessions(ctx context.Context, ids []int64, used time.Time) error {
	s.mu.Lock()
	s.used = append(s.used, slices.Clone(ids))
	s.mu.Unlock()
	return s.Store.UseSessions(ctx, ids, used)
}

// take returns and forgets the writes counted so far.
func (s *sessionWrites) take() (renewed []int64, used [][]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	renewed, used = s.renewed, s.used
	s.renewed, s.used = nil, nil
	return renewed, used
}

// TestOpenSessionsUse: a session whose only use is a connection left open
// authenticates no request, so it was counted as used when it connected:
// a sign-in past MaxSessionsPerUser ended it as the least recently used,
// and it expired under its connection. The node's check of its
// connections' sessions records their use as Authenticate does, once
// SessionUseStep has passed since the last, with one write per read of
// sessions and none when none is due, and renews in its last hour a
// session that a request would renew.
func TestOpenSessionsUse(t *testing.T) {
	ctx := context.Background()
	db := sqliteStore(t)
	st := &sessionWrites{Store: db}
	f := newFixtureOn(t, chat.Config{MaxSessionsPerUser: 2}, inmem.NewPresence(), st)
	_, laptop := f.signIn(t, "ada@example.com", "Ada")
	_, phone := f.signIn(t, "ada@example.com", "Ada")
	// Sessions of other users with connections open here: more than one
	// read's worth.
	open := []int64{phone.Session.ID}
	var other chat.User
	for i := range 600 {
		in, err := f.svc.IssueSession(ctx, fmt.Sprintf("u%d@example.com", i%50), "U")
		if err != nil {
			t.Fatalf("IssueSession: %v", err)
		}
		open = append(open, in.Session.ID)
		other = in.User
	}
	// A session issued to end 90 minutes after it was made: never renewed.
	short, err := st.CreateSession(ctx, chat.Session{UserID: other.ID, TokenHash: "short", CreatedAt: f.clock.Now(), ExpiresAt: f.clock.Now().Add(90 * time.Minute)})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	open = append(open, short.ID)
	check := func(what string, wantEnded, wantRenewed []int64, wantUses int) {
		t.Helper()
		ended, err := f.svc.OpenSessions(ctx, open)
		if err != nil || !slices.Equal(ended, wantEnded) {
			t.Errorf("%s: OpenSessions = %d ended (first %v), %v; want %v", what, len(ended), ended[:min(3, len(ended))], err, wantEnded)
		}
		renewed, used := st.take()
		var n int
		for _, ids := range used {
			n += len(ids)
		}
		if !slices.Equal(renewed, wantRenewed) || n != wantUses || len(used) > (len(open)+499)/500 {
			t.Errorf("%s: OpenSessions renewed %d sessions (first %v) and recorded %d uses in %d writes; want %d renewed (first %v) and %d uses, a write per 500 sessions at most",
				what, len(renewed), renewed[:min(3, len(renewed))], n, len(used), len(wantRenewed), wantRenewed[:min(3, len(wantRenewed))], wantUses)
		}
	}
	check("at once", nil, nil, 0)
	f.clock.Advance(chat.SessionUseStep - time.Second)
	check("before an hour has passed", nil, nil, 0)
	f.clock.Advance(time.Second)
	check("an hour on", nil, nil, len(open)) // the phone's and the short one's too
	check("again", nil, nil, 0)

	// The phone's session, used by its connection since, is not the
	// least recently used: the laptop's, unused since its sign-in, is.
	events := f.record(t, chat.UserTopic(phone.User.ID))
	_, desk := f.signIn(t, "ada@example.com", "Ada")
	bySession := cmpopts.SortSlices(func(a, b chat.Event) bool { return a.SessionID < b.SessionID })
	want := []chat.Event{
		{Type: chat.EventSessionEnded, UserID: phone.User.ID, SessionID: laptop.Session.ID},
	}
	if diff := cmp.Diff(want, events.take(), bySession); diff != "" {
		t.Errorf("events of a sign-in past the cap mismatch (-want +got):\n%s", diff)
	}
	for _, in := range []chat.SignIn{phone, desk} {
		if _, _, _, err := f.svc.Authenticate(ctx, in.Token); err != nil {
			t.Errorf("session %d after the sign-in past the cap: %v", in.Session.ID, err)
		}
	}
	open = slices.DeleteFunc(open, func(id int64) bool { return id == short.ID }) // it ends soon

	// In the second half of their life, not yet renewed: a request renews
	// them, and the browser's cookie with them. In their last hour, the
	// check does.
	sess, _, err := st.Session(ctx, phone.Session.TokenHash)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	f.clock.Advance(sess.ExpiresAt.Sub(f.clock.Now()) - 2*time.Hour)
	check("two hours before the end", nil, nil, len(open))
	f.clock.Advance(90 * time.Minute)
	check("half an hour before the end", nil, open, 0)
	if got, _, err := st.Session(ctx, phone.Session.TokenHash); err != nil || !got.ExpiresAt.Equal(f.clock.Now().Add(30*24*time.Hour)) || !got.UsedAt.Equal(f.clock.Now()) {
		t.Errorf("session in its last hour after the check = %+v, %v; want it used now and renewed for 30 days", got, err)
	}
	f.clock.Advance(time.Hour)
	check("past the first end", nil, nil, len(open))
	if _, _, _, err := f.svc.Authenticate(ctx, phone.Token); err != nil {
		t.Errorf("session renewed by the check, past its first end: %v", err)
	}
}

// watchedPresence is a Presence that keeps the function the service
// registers with Watch, for a test to call as a shared Presence would.
type watchedPresence struct {
	chat.Presence
	fn func(convID, userID int64, online bool)
}

func (p *watchedPresence) Watch(fn func(convID, userID int64, online bool)) { p.fn = fn }

// TestPresenceBack: a user reported gone with a dead node, whose node
// turned out alive and wrote its presences again, is shown online again
// to friends.
func TestPresenceBack(t *testing.T) {
	ctx := context.Background()
	p := &watchedPresence{Presence: inmem.NewPresence()}
	f := newFixtureWith(t, chat.Config{}, p)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	if _, err := f.svc.RequestFriend(ctx, ada, grace.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AcceptFriend(ctx, grace, ada.ID); err != nil {
		t.Fatal(err)
	}
	graceEv := f.record(t, chat.UserTopic(grace.ID))
	for _, online := range []bool{false, true} {
		if online { // the node wrote it again, then reports it, as Redis's does
			if _, err := p.Add(ctx, chat.Everywhere, ada.ID); err != nil {
				t.Fatal(err)
			}
		}
		p.fn(chat.Everywhere, ada.ID, online)
		evs := graceEv.take()
		if len(evs) != 1 || evs[0].Type != chat.EventPresence || evs[0].User == nil || evs[0].User.ID != ada.ID || evs[0].Online != online {
			t.Errorf("Ada's presence reported %v: Grace got %+v; want one presence event, online %v", online, evs, online)
		}
	}
}

// onlineFails is a Presence whose Online fails while fail is set.
type onlineFails struct {
	chat.Presence
	fail atomic.Bool
}

func (p *onlineFails) Online(ctx context.Context, convID int64, max int) ([]int64, int, error) {
	if p.fail.Load() {
		return nil, 0, errors.New("presence unreachable")
	}
	return p.Presence.Online(ctx, convID, max)
}

// TestOpenWithPresenceFailing: while who is present cannot be read (a
// shared Presence unreachable), an open still succeeds, with the user
// alone in the list, and the user is counted and announced without a
// count; the close that follows counts them out. (An open used to fail
// then, which kept every conversation unreadable to a client connecting
// during a Redis outage.)
func TestOpenWithPresenceFailing(t *testing.T) {
	ctx := context.Background()
	p := &onlineFails{Presence: inmem.NewPresence()}
	f := newFixtureWith(t, chat.Config{}, p)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	room := f.enter(t, ada, "general")
	f.enter(t, grace, "general")
	events := f.record(t, chat.ConvTopic(room.ID))
	for _, open := range []struct {
		name string
		fn   func() ([]chat.User, int, error)
	}{
		{"OpenRoom", func() ([]chat.User, int, error) {
			_, on, n, err := f.svc.OpenRoom(ctx, ada, room.ID)
			return on, n, err
		}},
		{"OpenConversation", func() ([]chat.User, int, error) {
			_, on, n, err := f.svc.OpenConversation(ctx, ada, room.ID)
			return on, n, err
		}},
	} {
		p.fail.Store(true)
		online, n, err := open.fn()
		p.fail.Store(false)
		if err != nil {
			t.Fatalf("%s with presence failing: %v", open.name, err)
		}
		if len(online) != 1 || online[0].ID != ada.ID || n != 1 {
			t.Errorf("%s with presence failing = %+v (%d); want Ada alone", open.name, online, n)
		}
		if ids, n, err := p.Online(ctx, room.ID, 10); err != nil || n != 1 || ids[0] != ada.ID {
			t.Errorf("after %s: present %v (%d), %v; want Ada", open.name, ids, n, err)
		}
		evs := events.take()
		if len(evs) != 1 || evs[0].Type != chat.EventPresence || !evs[0].Online || evs[0].OnlineCount != 0 {
			t.Errorf("%s published %+v; want Ada's arrival, without a count", open.name, evs)
		}
		if err := f.svc.CloseRoom(ctx, ada, room.ID); err != nil {
			t.Fatal(err)
		}
		if ids, n, err := p.Online(ctx, room.ID, 10); err != nil || n != 0 {
			t.Errorf("after %s and a close: present %v (%d), %v; want nobody", open.name, ids, n, err)
		}
		events.take()
	}
}

// TestRoomJoinsLimited: entering and leaving rooms, each a message to
// everyone in the room, is rate-limited per user like the sends are, by
// the leaves (entering again needs one): past the limit the leave is
// refused, typed, with nothing written, and a member entering again is
// not counted.
func TestRoomJoinsLimited(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	room := f.enter(t, ada, "general")
	var err error
	changes := 0
	for member := false; changes < 1000; changes++ {
		if member {
			err = f.svc.LeaveRoom(ctx, grace, room.ID)
		} else {
			_, err = f.svc.EnterRoom(ctx, grace, "general")
		}
		if err != nil {
			break
		}
		member = !member
	}
	if err == nil {
		t.Fatalf("%d joins and leaves of one room in a row, all accepted; want rate_limited", changes)
	}
	wantError(t, "a join or leave past the limit", err, chat.ErrRateLimited, chat.CodeRateLimited, "")
	if e := chat.AsError(err); e == nil || e.RetryAfter <= 0 {
		t.Errorf("refusal %#v; want a RetryAfter", err)
	}
	r, member, err := f.svc.RoomFor(ctx, grace, room.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(1 + changes); r.LastSeq != want || member != (changes%2 == 1) {
		t.Errorf("after %d changes and a refused one: last_seq %d, member %v; want %d, %v", changes, r.LastSeq, member, want, changes%2 == 1)
	}
	if member {
		if _, err := f.svc.EnterRoom(ctx, grace, "general"); err != nil {
			t.Errorf("a member entering again past the limit: %v; want the room", err)
		}
	}
	f.clock.Advance(time.Hour)
	if member {
		err = f.svc.LeaveRoom(ctx, grace, room.ID)
	} else {
		_, err = f.svc.EnterRoom(ctx, grace, "general")
	}
	if err != nil {
		t.Errorf("a change an hour later: %v; want it accepted", err)
	}
}

// TestTypingBoundedPerConversation: each connection forwards at most one
// typing event per conversation every 2 s, but a room of thousands where
// hundreds type would still send each of its viewers hundreds of frames
// every 2 s. A node forwards at most 10 per conversation in 2 s, and
// drops the rest silently, as a connection's own limit does.
func TestTypingBoundedPerConversation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	var users []chat.User
	var room chat.Room
	for i := range 15 {
		u, _ := f.signIn(t, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("U%d", i))
		room = f.enter(t, u, "general")
		users = append(users, u)
	}
	other, _ := f.signIn(t, "other@example.com", "Other")
	quiet := f.enter(t, other, "quiet")
	events := f.record(t, chat.ConvTopic(room.ID))
	quietEvents := f.record(t, chat.ConvTopic(quiet.ID))
	typed := func() int {
		n := 0
		for _, ev := range events.take() {
			if ev.Type == chat.EventTyping {
				n++
			}
		}
		return n
	}
	for _, u := range users {
		if err := f.svc.Typing(ctx, u, room.ID); err != nil {
			t.Fatalf("Typing: %v", err)
		}
	}
	if err := f.svc.Typing(ctx, other, quiet.ID); err != nil {
		t.Fatal(err)
	}
	if n := typed(); n != 10 {
		t.Errorf("15 users typing at once: %d typing events; want 10", n)
	}
	if n := len(quietEvents.take()); n != 1 {
		t.Errorf("another room's typing: %d events; want 1 (the bound is per conversation)", n)
	}
	f.clock.Advance(2 * time.Second)
	if err := f.svc.Typing(ctx, users[14], room.ID); err != nil {
		t.Fatal(err)
	}
	if n := typed(); n != 1 {
		t.Errorf("typing 2 s later: %d events; want 1", n)
	}
}

// TestCodeMailFailedNotCounted: a sign-in code whose mail could not be
// sent (the relay down) does not count against the address's codes, so
// that the user can ask again once the relay is back; the client's
// address still counts it, which bounds how often one client makes the
// server try the relay.
func TestCodeMailFailedNotCounted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{CodesPerEmail: 2, CodesPerIP: 4})
	f.mail.mu.Lock()
	f.mail.err = errors.New("relay down")
	f.mail.mu.Unlock()
	for i := range 3 {
		err := f.svc.RequestCode(ctx, "ada@example.com", "192.0.2.1")
		wantError(t, fmt.Sprintf("code %d with the relay down", i+1), err, chat.ErrUnavailable, chat.CodeUnavailable, "")
	}
	f.mail.mu.Lock()
	f.mail.err = nil
	f.mail.mu.Unlock()
	if err := f.svc.RequestCode(ctx, "ada@example.com", "192.0.2.1"); err != nil {
		t.Fatalf("a code once the relay is back: %v", err)
	}
	// The fifth from that client is past its 4.
	err := f.svc.RequestCode(ctx, "bob@example.com", "192.0.2.1")
	wantError(t, "a fifth code from one client", err, chat.ErrRateLimited, chat.CodeRateLimited, "")
}

// TestSessionCapSignIn: a sign-in past MaxSessionsPerUser ends the user's
// least recently used sessions and tells every node, as a sign-out does.
// Sessions issued by an operator (IssueSession) are not held to the cap
// as they are made: the next sign-in by mail trims them with the rest.
func TestSessionCapSignIn(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{MaxSessionsPerUser: 2})
	var issued []chat.SignIn
	for range 3 {
		in, err := f.svc.IssueSession(ctx, "ada@example.com", "Ada")
		if err != nil {
			t.Fatalf("IssueSession: %v", err)
		}
		issued = append(issued, in)
		f.clock.Advance(time.Minute)
	}
	for i, in := range issued {
		if _, _, _, err := f.svc.Authenticate(ctx, in.Token); err != nil {
			t.Errorf("issued session %d of 3, cap 2: %v", i+1, err)
		}
	}
	// The first issued is used again an hour later: the second is now the
	// least recently used, and the first the second least.
	f.clock.Advance(chat.SessionUseStep)
	if _, _, _, err := f.svc.Authenticate(ctx, issued[0].Token); err != nil {
		t.Fatal(err)
	}
	events := f.record(t, chat.UserTopic(issued[0].User.ID))
	_, in := f.signIn(t, "ada@example.com", "Ada")
	want := []chat.Event{
		{Type: chat.EventSessionEnded, UserID: in.User.ID, SessionID: issued[1].Session.ID},
		{Type: chat.EventSessionEnded, UserID: in.User.ID, SessionID: issued[2].Session.ID},
	}
	bySession := cmpopts.SortSlices(func(a, b chat.Event) bool { return a.SessionID < b.SessionID })
	if diff := cmp.Diff(want, events.take(), bySession); diff != "" {
		t.Errorf("events of a sign-in past the cap mismatch (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		what  string
		token string
		live  bool
	}{
		{"used an hour ago", issued[0].Token, true},
		{"least recently used", issued[1].Token, false},
		{"second least recently used", issued[2].Token, false},
		{"new", in.Token, true},
	} {
		_, _, _, err := f.svc.Authenticate(ctx, c.token)
		if c.live && err != nil {
			t.Errorf("the session %s: %v", c.what, err)
		}
		if !c.live {
			wantError(t, "the session "+c.what, err, chat.ErrUnauthorized, chat.CodeUnauthorized, "")
		}
	}
}

// usesCounted counts UseSession calls.
type usesCounted struct {
	chat.Store
	n atomic.Int64
}

func (s *usesCounted) UseSession(ctx context.Context, id int64, used, expires time.Time) error {
	s.n.Add(1)
	return s.Store.UseSession(ctx, id, used, expires)
}

// TestAuthenticateRecordsUse: a session's use is recorded for the session
// cap, but once per SessionUseStep, not with every request.
func TestAuthenticateRecordsUse(t *testing.T) {
	db := sqliteStore(t)
	st := &usesCounted{Store: db}
	f := newFixtureOn(t, chat.Config{}, inmem.NewPresence(), st)
	_, in := f.signIn(t, "ada@example.com", "Ada")
	auth := func() chat.Session {
		t.Helper()
		_, sess, _, err := f.svc.Authenticate(context.Background(), in.Token)
		if err != nil {
			t.Fatal(err)
		}
		return sess
	}
	for range 3 {
		auth()
		f.clock.Advance(chat.SessionUseStep / 4)
	}
	if n := st.n.Load(); n != 0 {
		t.Errorf("within %s of signing in: %d uses recorded; want 0", chat.SessionUseStep, n)
	}
	f.clock.Advance(chat.SessionUseStep / 4)
	if sess := auth(); !sess.UsedAt.Equal(f.clock.Now()) {
		t.Errorf("%s after signing in: UsedAt = %v; want %v", chat.SessionUseStep, sess.UsedAt, f.clock.Now())
	}
	auth()
	if n := st.n.Load(); n != 1 {
		t.Errorf("%s after signing in, twice: %d uses recorded; want 1", chat.SessionUseStep, n)
	}
}

// TestOpenSessionsLateCheck: a node checks its connections' sessions
// every 15 s, and a check may come late (the one before took its time, a
// tick was dropped). A one-minute session, the shortest --session-ttl,
// was renewed by the check only in its last 15 s: a check 16 s after the
// one before could find it expired, and its connection was closed
// although open all along. The check's window is twice its interval, or
// as near as the part of the second half left to requests allows.
func TestOpenSessionsLateCheck(t *testing.T) {
	ctx := context.Background()
	const ttl = time.Minute
	for _, gap := range []time.Duration{16 * time.Second, 20 * time.Second} {
		t.Run(gap.String(), func(t *testing.T) {
			f := newFixture(t, chat.Config{SessionTTL: ttl})
			_, in := f.signIn(t, "ada@example.com", "Ada")
			start := f.clock.Now()
			// On time, every 15 s, the last just before the session's
			// last 15 s; from then on, each check gap after the one before.
			next := 14*time.Second + 500*time.Millisecond
			for f.clock.Now().Sub(start) < 5*time.Minute {
				f.clock.Advance(next)
				ended, err := f.svc.OpenSessions(ctx, []int64{in.Session.ID})
				if err != nil || len(ended) != 0 {
					t.Fatalf("a check %s after the one before, %s after signing in: OpenSessions = %v, %v; want the session kept",
						next, f.clock.Now().Sub(start), ended, err)
				}
				next = 15 * time.Second
				if f.clock.Now().Sub(start) > 40*time.Second {
					next = gap
				}
			}
			if _, _, _, err := f.svc.Authenticate(ctx, in.Token); err != nil {
				t.Errorf("Authenticate after 5 minutes of checks %s apart: %v", gap, err)
			}
		})
	}
}

// TestOpenSessionsLeaveRenewalToRequests: a session with a connection
// open is renewed by the node's check only near its end, after the
// first part of its second half, where a request renews it and the
// browser's cookie with it. A session shorter than two hours has such a
// part too: the check waits until a quarter of it remains, or twice the
// check's interval (TestOpenSessionsLateCheck); for the shortest, a
// minute, that would be all of the second half, and the check waits
// until 3/8 of it remains.
func TestOpenSessionsLeaveRenewalToRequests(t *testing.T) {
	ctx := context.Background()
	const ttl = time.Minute
	f := newFixture(t, chat.Config{SessionTTL: ttl})
	_, in := f.signIn(t, "ada@example.com", "Ada")
	start := f.clock.Now()
	cfg := f.svc.Config()
	if from, until, ok := cfg.RenewWindow(in.Session); !ok || !from.Equal(start.Add(ttl/2)) || !until.Equal(start.Add(ttl*5/8)) {
		t.Errorf("RenewWindow of a new session = %v, %v, %v; want %v to %v", from, until, ok, start.Add(ttl/2), start.Add(ttl*5/8))
	}

	f.clock.Advance(ttl/2 + time.Second) // second half, the check's part not reached
	if _, err := f.svc.OpenSessions(ctx, []int64{in.Session.ID}); err != nil {
		t.Fatalf("OpenSessions: %v", err)
	}
	_, sess, renewed, err := f.svc.Authenticate(ctx, in.Token)
	if err != nil || !renewed {
		t.Fatalf("Authenticate after the check, %s in = renewed %v, %v; want renewed by the request, not by the check", ttl/2+time.Second, renewed, err)
	}
	renewedAt := f.clock.Now()
	if from, until, ok := cfg.RenewWindow(sess); !ok || !from.Equal(renewedAt.Add(ttl/2)) || !until.Equal(renewedAt.Add(ttl*5/8)) {
		t.Errorf("RenewWindow of the renewed session = %v, %v, %v; want %v to %v", from, until, ok, renewedAt.Add(ttl/2), renewedAt.Add(ttl*5/8))
	}

	f.clock.Advance(ttl*5/8 + time.Second) // less than 3/8 left
	if _, err := f.svc.OpenSessions(ctx, []int64{in.Session.ID}); err != nil {
		t.Fatalf("OpenSessions: %v", err)
	}
	if _, _, renewed, err := f.svc.Authenticate(ctx, in.Token); err != nil || renewed {
		t.Errorf("Authenticate after the check in the last 3/8 = renewed %v, %v; want renewed by the check already", renewed, err)
	}

	// A two-minute session: a quarter of it is twice the check's
	// interval, and the check waits until a quarter remains.
	f2 := newFixture(t, chat.Config{SessionTTL: 2 * time.Minute})
	_, in2 := f2.signIn(t, "ada@example.com", "Ada")
	if _, until, ok := f2.svc.Config().RenewWindow(in2.Session); !ok || !until.Equal(f2.clock.Now().Add(90*time.Second)) {
		t.Errorf("RenewWindow of a two-minute session ends %v, %v; want %v", until, ok, f2.clock.Now().Add(90*time.Second))
	}
}

// TestNormalizeEmailIDN: an internationalized domain is one address
// whichever way it is written, in Unicode (a U-label) or in its ASCII
// form (an A-label, "xn--" and punycode): NormalizeEmail keeps the
// Unicode form. A domain that is not a valid internationalized name is
// refused. Before, the two forms were two addresses, so two accounts, and
// any "xn--" label passed.
func TestNormalizeEmailIDN(t *testing.T) {
	tests := []emailCase{
		{"ana@bücher.example", "ana@bücher.example", ""},
		{"ana@xn--bcher-kva.example", "ana@bücher.example", ""},
		{"ana@XN--BCHER-KVA.example", "ana@bücher.example", ""},
		{"ANA@BÜCHER.EXAMPLE", "ana@bücher.example", ""},
		{"ana@bu\u0308cher.example", "ana@bücher.example", ""},
		{"ana@faß.de", "ana@faß.de", ""}, // not fass.de: another domain
		{"ana@xn--fa-hia.de", "ana@faß.de", ""},
		{"ana@例え.テスト", "ana@例え.テスト", ""},
		{"ana@xn--r8jz45g.xn--zckzah", "ana@例え.テスト", ""},
		{"ana@mail.xn--bcher-kva.example", "ana@mail.bücher.example", ""},
		{"anä@bücher.example", "anä@bücher.example", ""}, // UTF-8 local parts are kept as before
		// ASCII domains are kept as before.
		{"ana@ab--cd.example", "ana@ab--cd.example", ""},
		{"ana@xn--.example", "", chat.CodeInvalidField},                            // no punycode
		{"ana@xn--bcher-kva9.example", "", chat.CodeInvalidField},                  // not punycode
		{"ana@xn--bucher-xyd.example", "", chat.CodeInvalidField},                  // bücher, not in NFC
		{"ana@xn--abc-fn0a.example", "", chat.CodeInvalidField},                    // a joiner after no virama
		{"ana@xn--bcher-kva-.example", "", chat.CodeInvalidField},                  // trailing hyphen
		{"ana@xn--abc-cec.example", "", chat.CodeInvalidField},                     // a combining mark first
		{"ana@bü_cher.example", "", chat.CodeInvalidField},                         // not a host name's character
		{"ana@-bücher.example", "", chat.CodeInvalidField},                         // leading hyphen
		{"ana@xn--mgbh0fb.xn--kgbechtv", "ana@مثال.إختبار", ""},                    // right to left
		{"ana@a\u05d0.example", "", chat.CodeInvalidField},                         // left to right and right to left in one label
		{"ana@" + strings.Repeat("ü", 60) + ".example", "", chat.CodeInvalidField}, // its A-label is longer than 63
		// Within 254 bytes as kept, past them with its domain in ASCII.
		{strings.Repeat("a", 80) + "@" + strings.Repeat(strings.Repeat("a", 50)+"ü.", 3) + "example", "", chat.CodeTooLong},
	}
	wantNormalizedEmails(t, tests)
}
