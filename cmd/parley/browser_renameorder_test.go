package main

import (
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// recordSockets is run in a tab before the app: window.parleySockets
// holds the page's WebSockets, so that a test can hand the page a frame
// as if one came.
const recordSockets = `(() => {
	window.parleySockets = [];
	const Orig = window.WebSocket;
	window.WebSocket = class extends Orig {
		constructor(...args) {
			super(...args);
			window.parleySockets.push(this);
		}
	};
})()`

// TestBrowserOlderRenameLate: Ada renames herself twice; Grace, her
// friend, shows the second name. The first rename's frame then comes
// late, as when two nodes told the two renames and the first node's
// publish was slow: Grace keeps the newer name, the one the store has.
func TestBrowserOlderRenameLate(t *testing.T) {
	ada, grace := startRenamedTwice(t, false)

	grace.handFrame(t, "the first rename's frame comes late",
		`{"type": "user", "user": {"id": `+strconv.FormatInt(ada.userID, 10)+`, "name": "Ada Byron"}, "version": 1}`)
	time.Sleep(300 * time.Millisecond)
	if got := evaluate[string](t, grace, "Grace's name of Ada", `(`+friendName+`)(`+strconv.FormatInt(ada.userID, 10)+`)`); got != "Ada Lovelace" {
		t.Errorf("after the older rename's frame, Grace shows Ada as %q; want %q", got, "Ada Lovelace")
	}

	// A contact frame of Ada's with the name of its time, as one replayed
	// from the log has it.
	grace.handFrame(t, "a contact frame with an older name comes",
		`{"type": "contact", "user": {"id": `+strconv.FormatInt(ada.userID, 10)+`, "name": "Ada Byron", "name_version": 1}, "state": "friends"}`)
	time.Sleep(300 * time.Millisecond)
	if got := evaluate[string](t, grace, "Grace's name of Ada", `(`+friendName+`)(`+strconv.FormatInt(ada.userID, 10)+`)`); got != "Ada Lovelace" {
		t.Errorf("after a contact frame with the older name, Grace shows Ada as %q; want %q", got, "Ada Lovelace")
	}
	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// TestBrowserOlderRenameAfterReload: Ada renames herself twice; Grace,
// her friend, and Ada herself then load the page again, whose lists
// (Grace's contacts, Ada's own record) give the newest name and its
// version, and no user frame of Ada has come to the new page. The first
// rename's frame then comes late, as when another node told it and its
// publish was slow: each keeps the newer name, the one the lists showed.
func TestBrowserOlderRenameAfterReload(t *testing.T) {
	ada, grace := startRenamedTwice(t, true)

	const connected = `() => document.getElementById("conn-status").dataset.state === "connected" &&
		window.parleySockets.length > 0 && window.parleySockets.at(-1).readyState === WebSocket.OPEN`
	for _, b := range []*browser{ada, grace} {
		b.do(t, "reload the page", chromedp.Reload())
		waitFor[bool](t, b, "the page is connected again", viewState, connected)
	}
	waitFor[bool](t, grace, "Grace lists Ada by her newest name", viewState, `(id) => (`+friendName+`)(id) === "Ada Lovelace"`, ada.userID)
	waitFor[bool](t, ada, "Ada's header has her newest name", viewState, `() => document.getElementById("me-name").textContent === "Ada Lovelace"`)

	// Ada's first rename (her second name, version 2) told late.
	for _, b := range []*browser{ada, grace} {
		b.handFrame(t, "the first rename's frame comes late",
			`{"type": "user", "user": {"id": `+strconv.FormatInt(ada.userID, 10)+`, "name": "Ada Byron"}, "version": 2}`)
	}
	time.Sleep(300 * time.Millisecond)
	if got := evaluate[string](t, grace, "Grace's name of Ada", `(`+friendName+`)(`+strconv.FormatInt(ada.userID, 10)+`)`); got != "Ada Lovelace" {
		t.Errorf("after the older rename's frame, Grace shows Ada as %q; want %q", got, "Ada Lovelace")
	}
	if got := evaluate[string](t, ada, "Ada's header", `document.getElementById("me-name").textContent`); got != "Ada Lovelace" {
		t.Errorf("after the older rename's frame, Ada's header shows %q; want %q", got, "Ada Lovelace")
	}
	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// friendName is a script giving the name under which the page lists the
// friend of id.
const friendName = `(id) => document.querySelector('#friends li[data-user-id="' + id + '"] .person-name')?.textContent`

// startRenamedTwice starts Ada's and Grace's browsers, Grace's page (and
// Ada's too if both) recording its WebSockets, makes them friends, and has
// Ada rename herself to "Ada Byron", then "Ada Lovelace", which Grace's
// page shows.
func startRenamedTwice(t *testing.T, both bool) (ada, grace *browser) {
	t.Helper()
	s, ada, grace := startPair(t, browserTestTimeout)
	grace.onEveryPage(t, "record the WebSockets", recordSockets)
	if both {
		ada.onEveryPage(t, "record the WebSockets", recordSockets)
	}
	ada.signIn(t, s, "ada@example.com", "Ada")
	grace.signIn(t, s, "grace@example.com", "Grace")
	befriend(t, s, ada, grace)
	waitFor[bool](t, grace, "Grace lists Ada as a friend", viewState, `(id) => (`+friendName+`)(id) === "Ada"`, ada.userID)
	ada.rename(t, "Ada Byron")
	ada.rename(t, "Ada Lovelace")
	waitFor[bool](t, grace, "Grace shows Ada's newest name", viewState, `(id) => (`+friendName+`)(id) === "Ada Lovelace"`, ada.userID)
	return ada, grace
}

// handFrame hands b's page the frame data (JSON) as if its newest
// WebSocket (recordSockets) received it.
func (b *browser) handFrame(t *testing.T, what, data string) {
	t.Helper()
	evaluate[bool](t, b, what, `(() => {
		window.parleySockets.at(-1).dispatchEvent(new MessageEvent("message", {data: `+strconv.Quote(data)+`}));
		return true;
	})()`)
}
