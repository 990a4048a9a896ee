package chat_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// BenchmarkSend is a send through the Service, back to back, by kind of
// conversation: a room, a private group, and a direct conversation, whose
// sends need its peer and the friendship. The node knows each
// conversation from an open, as it does a client's. On SQLite and, when
// PARLEY_TEST_POSTGRES names one (or one answers at the default URL),
// PostgreSQL, where each read before the write is a round trip.
func BenchmarkSend(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchmarkSend(b, newGroupFixture(b)) })
	b.Run("postgres", func(b *testing.B) { benchmarkSend(b, newGroupFixtureOn(b, postgresFixture(b))) })
}

func benchmarkSend(b *testing.B, f *groupFixture) {
	ctx := context.Background()
	r := f.enter(b, f.m, "lobby")
	d := f.befriend(b, f.m, f.t)
	for _, c := range []struct {
		name string
		id   int64
	}{{"room", r.ID}, {"group", f.g.ID}, {"direct", d.ID}} {
		if _, _, _, err := f.svc.OpenConversation(ctx, f.m, c.id); err != nil {
			b.Fatal(err)
		}
		i := 0 // over -count's runs too: each send is a new message
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				i++
				if _, err := f.svc.Send(ctx, f.m, c.id, c.name+"-"+strconv.Itoa(i), "hello"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMarkRead is a member moving their read position in a room or a
// group the node has read, which the web app does for every message that
// arrives while the conversation is shown: the position moves one message
// at a time over markReadSends messages, then stays; each move within an
// operation's deadline, as the server's (markRead). On both stores, as
// BenchmarkSend.
func BenchmarkMarkRead(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchmarkMarkRead(b, newGroupFixture(b)) })
	b.Run("postgres", func(b *testing.B) { benchmarkMarkRead(b, newGroupFixtureOn(b, postgresFixture(b))) })
}

func benchmarkMarkRead(b *testing.B, f *groupFixture) {
	ctx := context.Background()
	r := f.enter(b, f.m, "lobby")
	f.enter(b, f.t, "lobby")
	for _, c := range []struct {
		name string
		id   int64
	}{{"room", r.ID}, {"group", f.g.ID}} {
		for i := range markReadSends {
			if _, err := f.svc.Send(ctx, f.t, c.id, c.name+"-"+strconv.Itoa(i), "hello"); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, _, err := f.svc.OpenConversation(ctx, f.m, c.id); err != nil {
			b.Fatal(err)
		}
		seq := int64(0)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				seq++
				if err := markRead(f, f.m, c.id, seq); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

const markReadSends = 6000

// markRead moves u's read position in conversation id to seq as a server
// does: within an operation's deadline (web's opContext), which reaches
// the store. A context that can end costs the SQLite driver more than one
// that cannot (sqlite.unwatched).
func markRead(f *groupFixture, u chat.User, id, seq int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := f.svc.MarkRead(ctx, u, id, seq)
	return err
}

// BenchmarkMarkReadViewers is many members of a conversation moving their
// read positions at once, as the web app does for each member watching a
// busy group (about once a second each): markReadViewers goroutines, each a
// member of its own, each moving its position one message at a time. On
// both stores, as BenchmarkSend.
func BenchmarkMarkReadViewers(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchmarkMarkReadViewers(b, newGroupFixture(b)) })
	b.Run("postgres", func(b *testing.B) { benchmarkMarkReadViewers(b, newGroupFixtureOn(b, postgresFixture(b))) })
}

const markReadViewers = 64

func benchmarkMarkReadViewers(b *testing.B, f *groupFixture) {
	ctx := context.Background()
	r := f.enter(b, f.m, "lobby")
	viewers := make([]chat.User, markReadViewers)
	for i := range viewers {
		in, err := f.svc.IssueSession(ctx, "viewer-"+strconv.Itoa(i)+"@example.com", "Viewer")
		if err != nil {
			b.Fatal(err)
		}
		viewers[i] = in.User
		f.enter(b, viewers[i], "lobby")
	}
	for i := range markReadSends {
		if _, err := f.svc.Send(ctx, f.m, r.ID, "m-"+strconv.Itoa(i), "hello"); err != nil {
			b.Fatal(err)
		}
	}
	if _, _, _, err := f.svc.OpenConversation(ctx, f.m, r.ID); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(max(1, markReadViewers/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		u := viewers[int(next.Add(1)-1)%markReadViewers]
		seq := int64(0)
		for pb.Next() {
			seq++
			if err := markRead(f, u, r.ID, seq); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkOpen is a member opening a room or a group, as a client's "open"
// frame does (web's session.open): the membership checked, then the
// conversation opened (marked present, who else is present read) and, so
// that each open is the first, closed again; within an operation's
// deadline, as the server's. On both stores, as BenchmarkSend.
func BenchmarkOpen(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchmarkOpen(b, newGroupFixture(b)) })
	b.Run("postgres", func(b *testing.B) { benchmarkOpen(b, newGroupFixtureOn(b, postgresFixture(b))) })
}

func benchmarkOpen(b *testing.B, f *groupFixture) {
	r := f.enter(b, f.m, "lobby")
	for _, c := range []struct {
		name string
		id   int64
	}{{"room", r.ID}, {"group", f.g.ID}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := open(f, f.m, c.id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// open opens conversation id for u and closes it again, as BenchmarkOpen
// describes.
func open(f *groupFixture, u chat.User, id int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := f.svc.CheckMember(ctx, u, id); err != nil {
		return err
	}
	if _, _, _, err := f.svc.OpenConversation(ctx, u, id); err != nil {
		return err
	}
	return f.svc.CloseRoom(ctx, u, id)
}

// BenchmarkEnter is a member entering a room again, as a reload or a
// reconnect of the web app does, one at a time and from several
// goroutines at once; on SQLite and, when configured, PostgreSQL.
func BenchmarkEnter(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchmarkEnter(b, newGroupFixture(b)) })
	b.Run("postgres", func(b *testing.B) { benchmarkEnter(b, newGroupFixtureOn(b, postgresFixture(b))) })
}

func benchmarkEnter(b *testing.B, f *groupFixture) {
	f.enter(b, f.m, "lobby")
	enter := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_, err := f.svc.EnterRoom(ctx, f.m, "lobby")
		return err
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := enter(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := enter(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkEndedSessions is a node's check of its connections' sessions
// (hub.CheckSessions, every 15 s, Service.OpenSessions; the name is the
// one its results were recorded under): 19,000 sessions, target 5's idle
// connections, one of them signed out, none due for a record of its use;
// on both stores, as BenchmarkSend.
func BenchmarkEndedSessions(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchmarkEndedSessions(b, newFixture(b, chat.Config{})) })
	b.Run("postgres", func(b *testing.B) { benchmarkEndedSessions(b, postgresFixture(b)) })
}

func benchmarkEndedSessions(b *testing.B, f *fixture) {
	ctx := context.Background()
	const n = 19000
	ids := make([]int64, 0, n)
	for i := range n {
		in, err := f.svc.IssueSession(ctx, fmt.Sprintf("u%d@example.com", i%1000), "U")
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, in.Session.ID)
	}
	if err := f.store.DeleteSession(ctx, ids[n/2]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ended, err := f.svc.OpenSessions(ctx, ids)
		if err != nil || len(ended) != 1 {
			b.Fatalf("OpenSessions = %d ids, %v; want 1", len(ended), err)
		}
	}
}

// BenchmarkAddGroupMember is a member added to a group by its owner, a
// friend, and removed again, through the Service: one op is both, each
// logging the member's event in its transaction. On SQLite and, when
// configured, PostgreSQL.
func BenchmarkAddGroupMember(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchmarkAddGroupMember(b, newGroupFixture(b)) })
	b.Run("postgres", func(b *testing.B) { benchmarkAddGroupMember(b, newGroupFixtureOn(b, postgresFixture(b))) })
}

func benchmarkAddGroupMember(b *testing.B, f *groupFixture) {
	ctx := context.Background()
	f.befriend(b, f.owner, f.out)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.svc.AddGroupMember(ctx, f.owner, f.g.ID, f.out.ID); err != nil {
			b.Fatal(err)
		}
		if err := f.svc.RemoveGroupMember(ctx, f.owner, f.g.ID, f.out.ID); err != nil {
			b.Fatal(err)
		}
	}
}
