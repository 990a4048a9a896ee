package chat_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// TestSendInvisibleBody: a message of characters that show nothing (zero-
// width spaces and joiners, Hangul fillers, a byte order mark) is empty
// as one of white space is, and nothing is stored; one with anything seen
// in it is a message.
func TestSendInvisibleBody(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	room, err := f.svc.EnterRoom(ctx, ada, "general")
	if err != nil {
		t.Fatal(err)
	}
	for i, body := range []string{"\u200b", " \u200b\u200d \n", "\u3164\u3164", "\ufeff", "\u2060\u00ad"} {
		_, err := f.svc.Send(ctx, ada, room.ID, fmt.Sprintf("c-%d", i), body)
		wantError(t, fmt.Sprintf("Send(%q)", body), err, chat.ErrInvalid, chat.CodeEmpty, "body")
	}
	for i, body := range []string{"a\u200bb", "👍\ufe0f", "x"} {
		if _, err := f.svc.Send(ctx, ada, room.ID, fmt.Sprintf("ok-%d", i), body); err != nil {
			t.Errorf("Send(%q) = %v; want stored", body, err)
		}
	}
	ms, err := f.svc.History(ctx, ada, room.ID, chat.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ms); n != 4 { // the join and three messages
		t.Errorf("history holds %d messages; want 4 (the join and three)", n)
	}
}
