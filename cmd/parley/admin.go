package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
	"github.com/parley-chat/parley/internal/sqlite"
)

const adminUsage = `Usage: parley admin COMMAND [flags]

Commands that write to the store directly. They need the database to
themselves (stop a SQLite server first).

  sessions   create users and signed-in sessions without mail, for load
             tests and scripted clients; prints "USER_ID<TAB>EMAIL<TAB>TOKEN"
             per line (the token is the value of the session cookie:
             __Host-parley_session over TLS or with --behind-proxy
             unless its proxy says X-Forwarded-Proto: http,
             parley_session otherwise)
  migrate    apply the database migrations and exit
`

// runAdmin is "parley admin ...".
func runAdmin(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, adminUsage)
		if len(args) == 0 {
			return errors.New("admin: a command is required")
		}
		return nil
	}
	switch args[0] {
	case "sessions":
		return adminSessions(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		return adminMigrate(ctx, args[1:], getenv, stdout, stderr)
	}
	fmt.Fprint(stderr, adminUsage)
	return fmt.Errorf("admin: unknown command %q", args[0])
}

func dbFlag(fs *flag.FlagSet, getenv func(string) string) *string {
	def := getenv("PARLEY_DB")
	if def == "" {
		def = "parley.db"
	}
	return fs.String("db", def, "database (as parley --db; PARLEY_DB)")
}

// lastingDB returns an error for a database that ends with the command,
// SQLite's in memory (as openStore names it): what a command writes there,
// the sessions whose tokens it prints, no server would ever read.
func lastingDB(db string) error {
	if !isPostgresURL(db) && strings.TrimPrefix(strings.TrimPrefix(db, "sqlite:"), "//") == sqlite.Memory {
		return fmt.Errorf("--db %s: a database in memory ends with the command; give the one the server uses", db)
	}
	return nil
}

func adminMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley admin migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := dbFlag(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := lastingDB(*db); err != nil {
		return err
	}
	st, err := openStore(ctx, *db, sqlite.Options{Logger: slog.New(slog.NewTextHandler(stderr, nil))})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if err := st.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is migrated\n", redactURL(*db))
	return nil
}

func adminSessions(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley admin sessions", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := dbFlag(fs, getenv)
	count := fs.Int("count", 1, "number of users (one session each)")
	first := fs.Int("first", 1, "number of the first user")
	prefix := fs.String("prefix", "bench", "users are PREFIX-N@DOMAIN, named PREFIX-N when it creates them")
	domain := fs.String("domain", "bench.invalid", "email domain of the users")
	ttl := fs.Duration("ttl", 0, "session lifetime (default: the server's default, 720h, whatever --session-ttl a server runs with)")
	room := fs.String("room", "", "also make every user a member of this room (created if needed), as entering it does")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := lastingDB(*db); err != nil {
		return err
	}
	if *count < 1 || *count > 1_000_000 {
		return fmt.Errorf("--count must be between 1 and 1000000, not %d", *count)
	}
	if *first < 0 || *first > math.MaxInt-*count {
		return fmt.Errorf("--first must be between 0 and %d, not %d", math.MaxInt-*count, *first)
	}
	if *ttl < 0 {
		return fmt.Errorf("--ttl must not be negative, not %s", *ttl)
	}
	// Every user's name and address must be valid before anything is
	// written: the first's and the last's, the longest, tell.
	if _, err := chat.NormalizeEmail("x@" + *domain); err != nil {
		return fmt.Errorf("--domain: %w", err)
	}
	for _, i := range []int{*first, *first + *count - 1} {
		name := fmt.Sprintf("%s-%d", *prefix, i)
		if _, err := chat.NormalizeUserName(name); err != nil {
			return fmt.Errorf("--prefix: %w", err)
		}
		if _, err := chat.NormalizeEmail(name + "@" + *domain); err != nil {
			return fmt.Errorf("--prefix: %w", err)
		}
	}
	if *room != "" {
		if err := chat.ValidRoomName(*room); err != nil {
			return fmt.Errorf("--room: %w", err)
		}
	}
	st, err := openStore(ctx, *db, sqlite.Options{Logger: slog.New(slog.NewTextHandler(stderr, nil))})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	svc := chat.NewService(chat.Config{SessionTTL: *ttl}, chat.Deps{
		Store: st, Broker: inmem.NewBroker(), Presence: inmem.NewPresence(), Limiter: inmem.NewLimiter(nil),
		Logger: slog.New(slog.NewTextHandler(stderr, nil)),
	})
	// Each line is written as its session is made, and a session whose
	// line could not be written is ended again: every session the
	// command leaves has its token printed, whatever stops it.
	for i := *first; i < *first+*count; i++ {
		name := fmt.Sprintf("%s-%d", *prefix, i)
		in, err := svc.IssueSession(ctx, name+"@"+*domain, name)
		if err != nil {
			return fmt.Errorf("session for %s: %w", name, err)
		}
		if *room != "" {
			if _, err := svc.EnterRoom(ctx, in.User, *room); err != nil {
				return errors.Join(fmt.Errorf("%s enters %s: %w", name, *room, err), endSession(ctx, svc, in))
			}
		}
		if _, err := fmt.Fprintf(stdout, "%d\t%s\t%s\n", in.User.ID, in.User.Email, in.Token); err != nil {
			return errors.Join(fmt.Errorf("print session of %s: %w", name, err), endSession(ctx, svc, in))
		}
	}
	return nil
}

// endSession ends the session of in, whose token was not printed, even
// once ctx has ended.
func endSession(ctx context.Context, svc *chat.Service, in chat.SignIn) error {
	if err := svc.SignOut(context.WithoutCancel(ctx), in.Session); err != nil {
		return fmt.Errorf("end the unprinted session of %s: %w", in.User.Email, err)
	}
	return nil
}
