package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parley-chat/parley/internal/mailer/smtptest"
)

const (
	browserTestTimeout = 60 * time.Second // the whole conversation
	browserStepTimeout = 15 * time.Second // one wait or action
)

// TestBrowserChat drives the web UI served by run() in two real headless
// Chromium sessions, each with its own profile and so its own cookie jar:
// both sign in with a mailed code, enter a room, and talk live.
//
// It needs Chromium: /usr/bin/chromium or $PARLEY_CHROMIUM. Without it the
// test skips, or fails when PARLEY_TEST_BROWSER=1. With PARLEY_SCREENSHOT=
// path.png it also saves the room as Ada sees it on a 1280x800 screen to
// path.png, and on a 390x844 phone to path-phone.png (a relative path is
// taken from cmd/parley, where go test runs).
func TestBrowserChat(t *testing.T) {
	s, ada, grace := startPair(t, browserTestTimeout)

	ada.signIn(t, s, "ada@example.com", "Ada")
	grace.signIn(t, s, "grace@example.com", "Grace")
	ada.enterRoom(t, "lobby")
	grace.enterRoom(t, "lobby")

	talk := func(from, to *browser, text string) {
		t.Helper()
		seq := from.send(t, text)
		got := to.waitMessage(t, text)
		if got.Seq != seq || got.Kind != "text" || got.SenderID != from.userID || got.Sender != from.name || got.Pending {
			t.Fatalf("%s sees %q as %+v; want seq %d, kind text, sender %d %q, not pending",
				to.name, text, got, seq, from.userID, from.name)
		}
	}
	talk(ada, grace, "hello from Ada")
	talk(grace, ada, "Hi Ada! Grace here, reading you loud and clear.")

	// Message bodies are text, never markup: the payload is shown as typed,
	// no element is made from it, and its onerror never runs.
	const xss = `<img src=x onerror=alert(1)>`
	talk(ada, grace, xss)
	for _, b := range []*browser{ada, grace} {
		if n := evaluate[int](t, b, "count images", `document.querySelectorAll("#messages img").length`); n != 0 {
			t.Errorf("%s: #messages holds %d <img> elements after %q was sent; want 0", b.name, n, xss)
		}
	}

	ada.waitOnline(t, grace)
	grace.waitOnline(t, ada)

	// Typing shows on the other side, and goes when the message arrives.
	grace.do(t, "start typing", chromedp.SendKeys(chromedp.ID("composer"), "Nice try"))
	waitFor[bool](t, ada, "Grace is shown typing", `document.getElementById("typing").outerHTML`, `() => {
		const el = document.getElementById("typing");
		return !el.hidden && el.textContent === "Grace is typing…";
	}`)
	grace.do(t, "finish the message", chromedp.SendKeys(chromedp.ID("composer"), ". It shows up as plain text on my side."+kb.Enter))
	ada.waitMessage(t, "Nice try. It shows up as plain text on my side.")
	waitFor[bool](t, ada, "the typing notice is gone", viewState, `() => document.getElementById("typing").hidden`)
	talk(ada, grace, "Good. Shall we ship the release on Friday?")
	talk(grace, ada, "Friday works for me. I'll write the release notes.")

	shot := os.Getenv("PARLEY_SCREENSHOT")
	if shot != "" {
		ada.screenshot(t, shot)
	}

	// On a phone the room fills the screen and the composer is in reach.
	ada.do(t, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait))
	ada.waitPhoneLayout(t)
	talk(ada, grace, "Sent from my phone: see you on Friday!")
	if shot != "" {
		ada.screenshot(t, strings.TrimSuffix(shot, filepath.Ext(shot))+"-phone"+filepath.Ext(shot))
	}

	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// chromiumPath returns the Chromium to run, or skips the test when there is
// none (fails under PARLEY_TEST_BROWSER=1).
func chromiumPath(t *testing.T) string {
	t.Helper()
	required := os.Getenv("PARLEY_TEST_BROWSER") == "1"
	if testing.Short() && !required {
		t.Skip("browser test skipped in -short mode")
	}
	exe := os.Getenv("PARLEY_CHROMIUM")
	if exe == "" {
		exe = "/usr/bin/chromium"
	}
	path, err := exec.LookPath(exe)
	if err != nil {
		msg := fmt.Sprintf("no Chromium at %s (%v): install it (Debian: apt-get install chromium) or set PARLEY_CHROMIUM", exe, err)
		if required {
			t.Fatal(msg + "; PARLEY_TEST_BROWSER=1 requires the browser test")
		}
		t.Skip(msg + "; set PARLEY_TEST_BROWSER=1 to make this a failure")
	}
	return path
}

// browser is one Chromium process with its own profile, and its one tab.
type browser struct {
	name     string          // display name, once signed in; the profile name before
	query    string          // of the app's URL: "?transport=poll" forces long-polling
	ctx      context.Context // the tab; no deadline, it lives until cleanup
	deadline time.Time       // of the whole test
	userID   int64
	output   *syncBuffer // Chromium's stdout and stderr

	mu       sync.Mutex
	dialogs  []string // JavaScript dialogs the page opened
	console  []chromedp.ConsoleMessage
	problems []string // uncaught exceptions and console.error calls
	// Content-Security-Policy violations: the browser logs them as
	// entries of its own, which are otherwise noise (problems).
	violations []string
}

// startPair starts a server (with serverArgs) and Ada's and Grace's
// browsers, all given timeout; the server's log is shown if the test fails.
func startPair(t *testing.T, timeout time.Duration, serverArgs ...string) (s *testServer, ada, grace *browser) {
	t.Helper()
	exe := chromiumPath(t)
	deadline := time.Now().Add(timeout)
	s = startServer(t, serverArgs...)
	return s, startBrowser(t, exe, "ada", deadline), startBrowser(t, exe, "grace", deadline)
}

// startBrowser starts Chromium with a fresh profile in a temporary
// directory and opens a blank tab at a 1280x800 viewport. On failure it
// saves a screenshot and logs where, with the page's console.
func startBrowser(t *testing.T, exe, profile string, deadline time.Time) *browser {
	t.Helper()
	b := &browser{name: profile, deadline: deadline, output: newSyncBuffer()}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(b.output),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	var watchers sync.WaitGroup
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the process to exit
		watchers.Wait()
	})
	b.ctx = ctx

	// The first Run starts the browser and ties it to the context it gets,
	// so it gets the tab context, bounded here by a timer instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("%s: start %s: %v\n%s", profile, exe, err, b.output)
		}
	case <-time.After(browserStepTimeout):
		t.Fatalf("%s: %s did not start within %v\n%s", profile, exe, browserStepTimeout, b.output)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b.dumpState(t)
		}
	})

	// Dismiss every dialog, so that one cannot block the page, and
	// remember it, so that the test can fail.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	console := chromedp.Console(ctx)
	watchers.Go(func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, fmt.Sprintf("%s(%q)", ev.Type, ev.Message))
			b.mu.Unlock()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			chromedp.Call(cctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			cancel()
		}
	})
	watchers.Go(func() {
		for m, err := range console {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			// console.error comes from the app (handler failures are caught
			// and logged); browser log entries have a Source and are noise.
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source == "") {
				b.problems = append(b.problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
			}
			if isViolation(m) {
				b.violations = append(b.violations, fmt.Sprintf("%s (%s:%d)", m.Text, m.URL, m.Line+1))
			}
			b.mu.Unlock()
		}
	})

	b.do(t, "set viewport", chromedp.EmulateViewport(1280, 800))
	// Prove the dialog watcher works before any message can trigger one.
	b.do(t, "probe alert", chromedp.Evaluate[chromedp.Void](`alert("probe")`))
	if got := b.takeDialogs(); len(got) != 1 || got[0] != `alert("probe")` {
		t.Fatalf("%s: dialogs seen after alert(\"probe\") = %q; want just that one", b.name, got)
	}
	return b
}

// stepCtx bounds one step by browserStepTimeout and the test's deadline.
// onEveryPage has b run the script src in every page it loads from now
// on, before the page's own; what says what it does, for a failure.
func (b *browser) onEveryPage(t testing.TB, what, src string) {
	t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
		t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

func (b *browser) stepCtx() (context.Context, context.CancelFunc) {
	return context.WithDeadline(b.ctx, b.stepDeadline())
}

func (b *browser) stepDeadline() time.Time {
	if d := time.Now().Add(browserStepTimeout); d.Before(b.deadline) {
		return d
	}
	return b.deadline
}

func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// click clicks the element sel selects, once it exists, in one script: a
// list re-rendered between finding a node and clicking it (as chromedp's
// Click does in two steps) cannot make it miss.
func (b *browser) click(t *testing.T, what, sel string) {
	t.Helper()
	waitFor[bool](t, b, what, `({hash: location.hash, title: document.getElementById("room-title")?.textContent})`, `(sel) => {
		const e = document.querySelector(sel);
		if (!e || e.disabled) return false;
		e.click();
		return true;
	}`, sel)
}

// evaluate returns the value of a JavaScript expression in b's page.
func evaluate[T any](t *testing.T, b *browser, what, expr string) T {
	t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %s: %v", b.name, what, err)
	}
	return v
}

// waitFor polls the JavaScript function fn with args until it returns a
// truthy value, and returns that value. When the step times out it fails
// the test with the value of the expression state, to show what the page
// held instead.
func waitFor[T any](t *testing.T, b *browser, what, state, fn string, args ...any) T {
	t.Helper()
	return waitForWithin[T](t, b, browserStepTimeout, what, state, fn, args...)
}

// waitForWithin is waitFor for a step that may take up to d, within the
// browser's deadline: one the page makes on a timer of its own.
func waitForWithin[T any](t *testing.T, b *browser, d time.Duration, what, state, fn string, args ...any) T {
	t.Helper()
	dl := time.Now().Add(d)
	if b.deadline.Before(dl) {
		dl = b.deadline
	}
	ctx, cancel := context.WithDeadline(b.ctx, dl)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.PollFunction[T](fn,
		chromedp.WithPollingArgs(args...),
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(d)))
	if err != nil {
		sctx, scancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer scancel()
		now, serr := chromedp.Run(sctx, chromedp.Evaluate[string](`JSON.stringify(`+state+`)`))
		if serr != nil {
			now = "(unreadable: " + serr.Error() + ")"
		}
		t.Fatalf("%s: waiting until %s: %v\npage state: %s", b.name, what, err, now)
	}
	return v
}

// viewState describes what the user sees, for failure messages.
const viewState = `{
	view: document.getElementById("app").dataset.view,
	screen: document.querySelector(".chat").dataset.screen,
	conn: document.getElementById("conn-status").dataset.state,
	transport: document.getElementById("conn-status").dataset.transport,
	room: document.getElementById("room-title").textContent,
	authError: document.getElementById("auth-error").textContent,
	composerError: document.getElementById("composer-error").textContent,
	online: [...document.querySelectorAll("#online-list li")].map((li) => li.textContent),
	messages: [...document.querySelectorAll("#messages .msg")].map((m) =>
		[m.dataset.seq, m.dataset.kind, m.className, m.textContent].join(" | ")),
}`

// appURL is the address of the app, with b's query, and hash if not empty.
func (b *browser) appURL(s *testServer, hash string) string {
	return s.URL + "/" + b.query + hash
}

// signIn walks the UI's sign-in: email, the code from the mail, and a
// display name for the new user.
func (b *browser) signIn(t *testing.T, s *testServer, email, name string) {
	t.Helper()
	b.do(t, "open the app",
		chromedp.Navigate(b.appURL(s, "")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.Click(chromedp.ID("send-code")),
	)
	ctx, cancel := context.WithDeadline(context.Background(), b.stepDeadline())
	defer cancel()
	m, err := s.Mail.WaitFor(ctx, email)
	if err != nil {
		t.Fatalf("%s: no sign-in mail for %s: %v", b.name, email, err)
	}
	code := smtptest.ExtractCode(m.Text)
	if code == "" {
		t.Fatalf("%s: no code in the mail to %s:\n%s", b.name, email, m.Text)
	}
	b.do(t, "enter the code",
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.ID("verify")),
		chromedp.SendKeys(chromedp.ID("display-name"), name),
		chromedp.Click(chromedp.ID("save-name")),
	)
	waitFor[bool](t, b, "the chat view shows "+name, viewState, `(name) =>
		document.getElementById("app").dataset.view === "chat" &&
		document.getElementById("me-name").textContent === name`, name)
	b.name = name
}

// enterRoom types a room name into the sidebar and waits until the room is
// open on the WebSocket: the server's opened reply lists the user online.
func (b *browser) enterRoom(t *testing.T, room string) {
	t.Helper()
	b.do(t, "enter "+room,
		chromedp.SendKeys(chromedp.ID("room-input"), room),
		chromedp.Click(chromedp.ID("room-enter")),
	)
	b.userID = waitFor[int64](t, b, "room "+room+" is open and connected", viewState, `(room) => {
		const me = document.querySelector("#online-list li.is-me[data-user-id]");
		return document.getElementById("room-title").textContent === room &&
			document.getElementById("conn-status").dataset.state === "connected" &&
			document.getElementById("history-text").textContent !== "Loading messages…" &&
			me && Number(me.dataset.userId);
	}`, room)
	// A reload would lose this; live messages must arrive without one.
	evaluate[chromedp.Void](t, b, "mark the page", `window.parleyTestPage = true`)
}

// send types text into the composer, presses Enter, and waits for the
// server's ack: the message is shown with its seq and no longer pending.
func (b *browser) send(t *testing.T, text string) int64 {
	t.Helper()
	b.do(t, "type a message", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	seq := waitFor[int64](t, b, fmt.Sprintf("%q is sent and acknowledged", text), viewState, `(text) => {
		if (document.querySelector("#messages .pending")) return 0;
		if (document.getElementById("composer").value !== "") return 0;
		const own = [...document.querySelectorAll("#messages .msg.own[data-seq]")]
			.filter((m) => m.querySelector(".msg-body").textContent === text);
		return own.length === 1 && Number(own[0].dataset.seq);
	}`, text)
	b.checkSamePage(t)
	return seq
}

// shownMessage is a message element as a test hook sees it.
type shownMessage struct {
	Seq      int64  `json:"seq"`
	Kind     string `json:"kind"`
	SenderID int64  `json:"senderId"`
	Sender   string `json:"sender"`
	Pending  bool   `json:"pending"`
}

// waitMessage waits for one message whose body's text is exactly text.
func (b *browser) waitMessage(t *testing.T, text string) shownMessage {
	t.Helper()
	m := waitFor[shownMessage](t, b, fmt.Sprintf("%q is shown", text), viewState, `(text) => {
		const found = [...document.querySelectorAll("#messages .msg")]
			.filter((m) => m.querySelector(".msg-body")?.textContent === text);
		if (found.length !== 1) return null;
		const m = found[0];
		return {
			seq: Number(m.dataset.seq),
			kind: m.dataset.kind,
			senderId: Number(m.dataset.senderId),
			sender: m.querySelector(".msg-sender")?.textContent,
			pending: m.classList.contains("pending"),
		};
	}`, text)
	b.checkSamePage(t)
	return m
}

// checkSamePage fails if the page was reloaded since the room was entered.
func (b *browser) checkSamePage(t *testing.T) {
	t.Helper()
	if !evaluate[bool](t, b, "check the mark", `window.parleyTestPage === true`) {
		t.Fatalf("%s: the page was reloaded; messages must arrive live", b.name)
	}
}

// waitOnline waits until other is in b's online list.
func (b *browser) waitOnline(t *testing.T, other *browser) {
	t.Helper()
	waitFor[bool](t, b, other.name+" is online", viewState, `(id, name) =>
		[...document.querySelectorAll("#online-list li[data-user-id]")]
			.some((li) => Number(li.dataset.userId) === id && li.querySelector(".name").textContent === name)`,
		other.userID, other.name)
}

// waitPhoneLayout waits until the room alone fills a phone-sized screen,
// with the composer inside the viewport and not covered.
func (b *browser) waitPhoneLayout(t *testing.T) {
	t.Helper()
	const layout = `(() => {
		const inView = (el) => {
			const r = el.getBoundingClientRect();
			return r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0 &&
				r.right <= innerWidth && r.bottom <= innerHeight &&
				document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2)?.closest("#" + el.id) === el;
		};
		const last = [...document.querySelectorAll("#messages .msg")].at(-1);
		const box = document.getElementById("messages").getBoundingClientRect();
		return {
			width: innerWidth,
			screen: document.querySelector(".chat").dataset.screen,
			sidebarShown: getComputedStyle(document.querySelector(".sidebar")).display !== "none",
			overflowX: document.documentElement.scrollWidth > innerWidth,
			composer: inView(document.getElementById("composer")),
			send: inView(document.getElementById("send")),
			title: inView(document.getElementById("room-title")),
			back: inView(document.getElementById("back")),
			lastMessageShown: !!last && last.getBoundingClientRect().bottom <= box.bottom + 1,
		};
	})()`
	waitFor[bool](t, b, "the room fits a 390px screen", layout, `() => {
		const s = `+layout+`;
		return s.width === 390 && s.screen === "room" && !s.sidebarShown && !s.overflowX &&
			s.composer && s.send && s.title && s.back && s.lastMessageShown;
	}`)
}

// screenshot saves a PNG of b's viewport to path.
func (b *browser) screenshot(t *testing.T, path string) {
	t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("%s: screenshot: %v", b.name, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: screenshot saved to %s", b.name, path)
}

func (b *browser) takeDialogs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.dialogs
	b.dialogs = nil
	return d
}

// checkQuiet fails the test if the page opened a dialog, threw an uncaught
// exception or logged an error since the probe.
func (b *browser) checkQuiet(t *testing.T) {
	t.Helper()
	if d := b.takeDialogs(); len(d) > 0 {
		t.Errorf("%s: the page opened JavaScript dialogs: %q", b.name, d)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		t.Errorf("%s: the page reported errors:\n%s", b.name, strings.Join(b.problems, "\n"))
	}
	if len(b.violations) > 0 {
		t.Errorf("%s: the page broke the Content-Security-Policy:\n%s", b.name, strings.Join(b.violations, "\n"))
	}
}

// isViolation reports whether m is the browser's report of something the
// page's Content-Security-Policy refused.
func isViolation(m chromedp.ConsoleMessage) bool {
	return m.Source == "security" && strings.Contains(m.Text, "Content Security Policy")
}

// takeViolations returns the Content-Security-Policy violations seen
// since the last call, which checkQuiet then no longer reports.
func (b *browser) takeViolations() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := b.violations
	b.violations = nil
	return v
}

// dumpState saves a screenshot after a failure and logs where, with the
// page's console and Chromium's output. The files go to a directory of
// their own: t.TempDir is removed when the test ends.
func (b *browser) dumpState(t *testing.T) {
	dir, err := os.MkdirTemp("", "parley-browser-test-")
	if err != nil {
		t.Logf("%s: no directory for the screenshot: %v", b.name, err)
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err == nil {
		path := filepath.Join(dir, b.name+".png")
		if err = os.WriteFile(path, png, 0o644); err == nil {
			t.Logf("%s: screenshot of the failure: %s", b.name, path)
		}
	}
	if err != nil {
		t.Logf("%s: no screenshot: %v", b.name, errors.Join(err, ctx.Err()))
	}
	b.mu.Lock()
	var lines []string
	for _, m := range b.console {
		lines = append(lines, m.String())
	}
	b.mu.Unlock()
	t.Logf("%s: console:\n%s", b.name, strings.Join(lines, "\n"))
	var out []string
	for line := range strings.Lines(b.output.String()) {
		if !strings.Contains(line, "dbus") { // a container has no D-Bus
			out = append(out, line)
		}
	}
	t.Logf("%s: chromium output:\n%s", b.name, strings.Join(out[max(0, len(out)-40):], ""))
}
