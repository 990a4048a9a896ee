package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// groupsState describes the group parts of the page, for failure messages.
const groupsState = `{
	view: document.getElementById("app").dataset.view,
	hash: location.hash,
	conn: document.getElementById("conn-status").dataset.state,
	title: document.getElementById("room-title").textContent,
	sub: document.getElementById("room-sub").textContent,
	ended: document.getElementById("room-ended").hidden ? null : document.getElementById("room-ended").textContent,
	composerError: document.getElementById("composer-error").textContent,
	createError: document.getElementById("group-create-error").textContent,
	dialog: document.getElementById("group-dialog").open,
	panelErrors: [...document.querySelectorAll("#group-dialog .error:not([hidden])")].map((e) => e.textContent),
	members: [...document.querySelectorAll("#group-members li")].map((li) => li.dataset.userId + " " + li.dataset.role + " " + li.textContent),
	friends: [...document.querySelectorAll("#friends li")].map((li) => li.dataset.userId + " " + li.textContent),
	conversations: [...document.querySelectorAll("#conversations li")].map((li) =>
		[li.dataset.convId, li.dataset.kind, li.textContent, li.querySelector(".badge")?.hidden].join(" | ")),
	messages: [...document.querySelectorAll("#messages .msg")].map((m) =>
		[m.dataset.seq, m.dataset.kind, m.className, m.textContent].join(" | ")),
}`

// TestBrowserGroups drives groups in two Chromium sessions: Ada and Grace
// are friends; Ada creates a group and invites Grace, who sees it appear
// live and writes in it; Ada renames it, promotes Grace to admin, and
// removes her, and Grace's page follows each step live. Group names are
// text, never markup.
func TestBrowserGroups(t *testing.T) {
	_, ada, grace := startFriends(t)

	// Ada creates a group from the main screen; it opens and is listed.
	ada.createGroup(t, "Crew", "Release crew", "5")
	groupID := waitFor[int64](t, ada, "Crew is open and listed", groupsState, `() => {
		const m = /^#conv\/(\d+)$/.exec(location.hash);
		const li = m && document.querySelector('#conversations li[data-conv-id="' + m[1] + '"][data-kind="group"]');
		const created = [...document.querySelectorAll("#messages .msg.event .notice-text")]
			.some((e) => e.textContent.startsWith("You created the group “Crew”"));
		return document.getElementById("room-title").textContent === "Crew" &&
			!document.getElementById("group-settings").hidden &&
			li && li.querySelector(".conv-name").textContent === "Crew" && created && Number(m[1]);
	}`)
	convSel := fmt.Sprintf(`#conversations li[data-conv-id="%d"]`, groupID)

	// A taken name is refused, readably, next to the form.
	ada.do(t, "open the new group form", chromedp.Click(chromedp.ID("new-group")))
	ada.do(t, "try a taken name",
		chromedp.SendKeys(chromedp.ID("group-create-name"), "crew"),
		chromedp.Click(chromedp.ID("group-create-submit")),
	)
	waitFor[bool](t, ada, "the taken name is reported", groupsState, `() => {
		const e = document.getElementById("group-create-error");
		return document.getElementById("group-create").open && !e.hidden &&
			e.textContent === "Another group already has this name.";
	}`)
	ada.do(t, "cancel", chromedp.Click(chromedp.ID("group-create-cancel")))

	// Ada invites Grace from the group's settings.
	ada.openGroupSettings(t)
	waitFor[bool](t, ada, "Ada is the owner and may invite Grace", groupsState, `(me, grace) =>
		document.querySelector('#group-members li[data-user-id="' + me + '"]')?.dataset.role === "owner" &&
		!document.getElementById("group-invite").hidden &&
		!document.getElementById("group-edit").hidden &&
		!document.getElementById("group-delete").hidden &&
		document.getElementById("group-leave").hidden &&
		[...document.getElementById("group-invite-user").options].some((o) => o.value === String(grace))`,
		ada.userID, grace.userID)
	ada.do(t, "invite Grace",
		chromedp.SetValue(chromedp.CSS("#group-invite-user"), strconv.FormatInt(grace.userID, 10)),
		chromedp.Click(chromedp.ID("group-invite-submit")),
	)
	waitFor[bool](t, ada, "Grace is a member", groupsState, `(grace) =>
		document.querySelector('#group-members li[data-user-id="' + grace + '"]')?.dataset.role === "member" &&
		[...document.querySelectorAll("#messages .msg.event .notice-text")].some((e) => e.textContent.startsWith("You added Grace"))`,
		grace.userID)
	ada.do(t, "close the settings", chromedp.Click(chromedp.ID("group-dialog-close")))

	// Grace sees the group appear live, opens it and writes.
	waitFor[bool](t, grace, "Crew appears in Grace's list", groupsState, `(sel) =>
		document.querySelector(sel + '[data-kind="group"] .conv-name')?.textContent === "Crew"`, convSel)
	grace.click(t, "open Crew", convSel+" button")
	waitFor[bool](t, grace, "Crew is open with Ada's invitation", groupsState, `() =>
		document.getElementById("room-title").textContent === "Crew" &&
		document.getElementById("history-text").textContent !== "Loading messages…" &&
		[...document.querySelectorAll("#messages .msg.event .notice-text")].some((e) => e.textContent.startsWith("Ada added you"))`)
	evaluate[chromedp.Void](t, grace, "mark the history", `document.querySelector("#messages .msg[data-seq]").parleyKept = true`)
	for _, p := range []struct {
		from, to *browser
		text     string
	}{{grace, ada, "Thanks for the invite!"}, {ada, grace, "Welcome aboard."}} {
		seq := p.from.send(t, p.text)
		m := p.to.waitMessage(t, p.text)
		if m.Seq != seq || m.SenderID != p.from.userID || m.Pending {
			t.Fatalf("%s sees %q as %+v; want seq %d from %d", p.to.name, p.text, m, seq, p.from.userID)
		}
	}
	// Ada has the group open, so she has read Grace's message.
	waitFor[bool](t, grace, "Grace's message is read by 1", groupsState, `(text) => {
		const own = [...document.querySelectorAll("#messages .msg.own")].at(-1);
		const r = own && own.querySelector("[data-receipt]");
		return own.querySelector(".msg-body").textContent === text &&
			!!r && r.dataset.receipt === "read-by" && r.dataset.count === "1" && r.textContent === "Read by 1" &&
			document.querySelectorAll("#messages [data-receipt]").length === 1;
	}`, "Thanks for the invite!")

	// Ada renames the group: Grace's title and list follow live.
	ada.openGroupSettings(t)
	evaluate[chromedp.Void](t, ada, "clear the name", `document.getElementById("group-edit-name").value = ""`)
	ada.do(t, "rename the group",
		chromedp.SendKeys(chromedp.ID("group-edit-name"), "Crew 2"),
		chromedp.Click(chromedp.ID("group-edit-save")),
	)
	waitFor[bool](t, ada, "the rename is saved", groupsState, `() =>
		document.getElementById("group-edit-info").textContent === "Saved." &&
		document.getElementById("room-title").textContent === "Crew 2"`)
	waitFor[bool](t, grace, "Grace sees the new name", groupsState, `(sel) =>
		document.querySelector(sel + " .conv-name")?.textContent === "Crew 2" &&
		document.getElementById("room-title").textContent === "Crew 2" &&
		[...document.querySelectorAll("#messages .msg.event .notice-text")]
			.some((e) => e.textContent.startsWith("Ada renamed the group to “Crew 2”"))`, convSel)

	// Ada promotes Grace to admin; Grace may now manage the group, but not
	// what only the owner may do.
	ada.click(t, "make Grace an admin", fmt.Sprintf(`#group-members li[data-user-id="%d"] .make-admin`, grace.userID))
	waitFor[bool](t, ada, "Grace is an admin", groupsState, `(grace) =>
		document.querySelector('#group-members li[data-user-id="' + grace + '"]')?.dataset.role === "admin"`, grace.userID)
	waitFor[bool](t, grace, "Grace is told she is an admin", groupsState, `() =>
		[...document.querySelectorAll("#messages .msg.event .notice-text")].some((e) => e.textContent.startsWith("Ada made you an admin"))`)
	shot := os.Getenv("PARLEY_SCREENSHOT")
	base, ext := strings.TrimSuffix(shot, filepath.Ext(shot)), filepath.Ext(shot)
	if shot != "" {
		ada.screenshot(t, base+"-group-settings"+ext)
		grace.screenshot(t, base+"-group"+ext)
	}
	grace.openGroupSettings(t)
	waitFor[bool](t, grace, "Grace has an admin's actions", groupsState, `(me, ada) =>
		document.querySelector('#group-members li[data-user-id="' + me + '"]')?.dataset.role === "admin" &&
		!document.getElementById("group-edit").hidden &&
		!document.getElementById("group-invite").hidden &&
		document.getElementById("group-edit-cap").hidden &&
		document.getElementById("group-delete").hidden &&
		!document.getElementById("group-leave").hidden &&
		!document.querySelector('#group-members li[data-user-id="' + ada + '"] button')`, grace.userID, ada.userID)
	grace.do(t, "close the settings", chromedp.Click(chromedp.ID("group-dialog-close")))

	// A group's name is text: markup in it makes no element.
	const markup = `<b>x</b>`
	ada.do(t, "close the settings", chromedp.Click(chromedp.ID("group-dialog-close")))
	evaluate[chromedp.Void](t, ada, "mark the history", `document.querySelector("#messages .msg[data-seq]").parleyKept = true`)
	ada.createGroup(t, markup, "", "")
	waitFor[bool](t, ada, "the markup group is open, as text", groupsState, `(name) =>
		document.getElementById("room-title").textContent === name &&
		[...document.querySelectorAll("#conversations .conv-name")].some((e) => e.textContent === name) &&
		[...document.querySelectorAll("#messages .msg.event .notice-text")].some((e) => e.textContent.includes(name))`, markup)
	if n := evaluate[int](t, ada, "count <b> elements", `document.querySelectorAll(".chat b").length`); n != 0 {
		t.Errorf("Ada's page holds %d <b> elements after creating a group named %q; want 0", n, markup)
	}

	// Grace writes in Crew 2 while Ada looks at the other group: Ada's list
	// shows the message and an unread badge, and her open pane stays as it was.
	const news = "Still on for Friday?"
	grace.send(t, news)
	waitFor[bool](t, ada, "Crew 2 has 1 unread", groupsState, `(sel, text) => {
		const li = document.querySelector(sel);
		const badge = li && li.querySelector(".badge");
		return !!badge && !badge.hidden && badge.textContent === "1" &&
			li.querySelector(".conv-preview").textContent === "Grace: " + text;
	}`, convSel, news)
	if n := evaluate[int](t, ada, "count texts in the open pane", `document.querySelectorAll("#messages .msg[data-kind=text]").length`); n != 0 {
		t.Errorf("Ada's pane for %q shows %d text messages; want 0", markup, n)
	}

	// Grace, an admin, cannot take a name another group has: the error is
	// shown next to the form, and nothing changes.
	grace.openGroupSettings(t)
	evaluate[chromedp.Void](t, grace, "clear the name", `document.getElementById("group-edit-name").value = ""`)
	grace.do(t, "rename to a taken name",
		chromedp.SendKeys(chromedp.ID("group-edit-name"), strings.ToUpper(markup)),
		chromedp.Click(chromedp.ID("group-edit-save")),
	)
	waitFor[bool](t, grace, "the taken name is reported", groupsState, `() => {
		const e = document.getElementById("group-edit-error");
		return !e.hidden && e.textContent === "Another group already has this name." &&
			document.getElementById("room-title").textContent === "Crew 2";
	}`)
	grace.do(t, "close the settings", chromedp.Click(chromedp.ID("group-dialog-close")))

	// Back in Crew 2, Ada's history is shown as she left it.
	ada.click(t, "back to Crew 2", convSel+" button")
	waitFor[bool](t, ada, "Crew 2 is shown from the cache, with what she missed", groupsState, `(sel, text) => {
		const badge = document.querySelector(sel + " .badge");
		return document.getElementById("room-title").textContent === "Crew 2" &&
			document.querySelector("#messages .msg[data-seq]")?.parleyKept === true &&
			[...document.querySelectorAll("#messages .msg-body")].at(-1)?.textContent === text &&
			!!badge && badge.hidden;
	}`, convSel, news)

	// Ada removes Grace: the group leaves Grace's list and her open pane
	// says her access ended.
	ada.openGroupSettings(t)
	remove := fmt.Sprintf(`#group-members li[data-user-id="%d"] .remove-member`, grace.userID)
	ada.click(t, "remove Grace", remove)
	waitFor[bool](t, ada, "the removal asks to be confirmed", groupsState, `(sel) =>
		document.querySelector(sel)?.dataset.armed === "true"`, remove)
	ada.click(t, "confirm", remove)
	waitFor[bool](t, ada, "Grace is no longer a member", groupsState, `(grace) =>
		!document.querySelector('#group-members li[data-user-id="' + grace + '"]') &&
		[...document.querySelectorAll("#messages .msg.event .notice-text")].some((e) => e.textContent.startsWith("You removed Grace"))`,
		grace.userID)
	waitFor[bool](t, grace, "Grace's access ended", groupsState, `(sel) => {
		const ended = document.getElementById("room-ended");
		return !document.querySelector(sel) && !ended.hidden && ended.dataset.reason === "removed" &&
			document.getElementById("composer").disabled &&
			document.getElementById("group-settings").hidden;
	}`, convSel)
	grace.checkSamePage(t)
	if shot != "" {
		grace.screenshot(t, base+"-group-removed"+ext)
	}

	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// TestBrowserPresence checks friends' presence dots and read receipts in
// a direct chat: Grace's dot is green while her page is open and grey once
// she closes it; Ada's message is marked "Read" once Grace has read it.
func TestBrowserPresence(t *testing.T) {
	_, ada, grace := startFriends(t)

	friendDot := fmt.Sprintf(`#friends li[data-user-id="%d"] .presence-dot`, grace.userID)
	convDot := fmt.Sprintf(`#conversations li[data-kind="direct"][data-peer-id="%d"] .presence-dot`, grace.userID)
	waitFor[bool](t, ada, "Grace is shown online", groupsState, `(sel) =>
		document.querySelector(sel)?.dataset.online === "true"`, friendDot)

	// Ada writes to Grace; nothing is read yet.
	ada.click(t, "open the chat with Grace", fmt.Sprintf(`#friends li[data-user-id="%d"] .person-open`, grace.userID))
	waitFor[bool](t, ada, "the chat with Grace is open", groupsState, `() =>
		document.getElementById("room-title").textContent === "Grace" &&
		document.getElementById("history-text").textContent !== "Loading messages…"`)
	first := ada.send(t, "Are you there?")
	waitFor[bool](t, ada, "the direct chat has Grace's dot", groupsState, `(sel) =>
		document.querySelector(sel)?.dataset.online === "true"`, convDot)
	if n := evaluate[int](t, ada, "count receipts", `document.querySelectorAll("#messages [data-receipt]").length`); n != 0 {
		t.Errorf("Ada sees %d read receipts before Grace opened the chat; want 0", n)
	}

	// Grace opens the chat: Ada's message is marked read.
	grace.click(t, "open the chat with Ada", fmt.Sprintf(`#conversations li[data-kind="direct"][data-peer-id="%d"] button`, ada.userID))
	grace.waitMessage(t, "Are you there?")
	readUnder := `(seq) => {
		const rs = document.querySelectorAll("#messages [data-receipt]");
		const r = document.querySelector('#messages .msg.own[data-seq="' + seq + '"] [data-receipt="read"]');
		return rs.length === 1 && !!r && r.textContent === "Read";
	}`
	waitFor[bool](t, ada, "the message is marked read", groupsState, readUnder, first)

	// The mark moves to her next message once Grace, who has the chat open, reads it.
	second := ada.send(t, "Great, see you on Friday.")
	grace.waitMessage(t, "Great, see you on Friday.")
	waitFor[bool](t, ada, "the newest message is marked read", groupsState, readUnder, second)

	// Grace closes her page: her dots turn grey, with when she was last seen.
	grace.do(t, "leave the page", chromedp.Navigate("about:blank"))
	for _, sel := range []string{friendDot, convDot} {
		waitFor[bool](t, ada, "Grace is shown offline", groupsState, `(sel) => {
			const dot = document.querySelector(sel);
			return !!dot && dot.dataset.online === "false" && dot.title.startsWith("Offline") &&
				(!dot.dataset.lastSeen || dot.title.includes("last seen"));
		}`, sel)
	}
	if shot := os.Getenv("PARLEY_SCREENSHOT"); shot != "" {
		ada.screenshot(t, strings.TrimSuffix(shot, filepath.Ext(shot))+"-presence"+filepath.Ext(shot))
	}
	ada.checkQuiet(t)
}

// startFriends starts a server and two signed-in browsers, Ada's and
// Grace's, whose users are friends.
func startFriends(t *testing.T) (s *testServer, ada, grace *browser) {
	t.Helper()
	s, ada, grace = startPair(t, 2*browserTestTimeout)

	ada.signIn(t, s, "ada@example.com", "Ada")
	grace.signIn(t, s, "grace@example.com", "Grace")
	for _, b := range []*browser{ada, grace} {
		waitFor[bool](t, b, "connected", groupsState,
			`() => document.getElementById("conn-status").dataset.state === "connected"`)
		evaluate[chromedp.Void](t, b, "mark the page", `window.parleyTestPage = true`)
		b.userID = userIDOf(t, s, nil, b)
	}

	// They become friends through the API, with the pages' own sessions;
	// both pages follow it live.
	ada.fetchJSON(t, "POST", "/api/contacts", map[string]int64{"user_id": grace.userID}, nil)
	grace.fetchJSON(t, "POST", fmt.Sprintf("/api/contacts/%d/accept", ada.userID), nil, nil)
	for _, p := range []struct{ b, other *browser }{{ada, grace}, {grace, ada}} {
		waitFor[bool](t, p.b, p.other.name+" is a friend", groupsState, `(id) =>
			!!document.querySelector('#friends li[data-user-id="' + id + '"]')`, p.other.userID)
	}
	return s, ada, grace
}

// createGroup fills in and submits the new group form.
func (b *browser) createGroup(t *testing.T, name, description, limit string) {
	t.Helper()
	b.do(t, "open the new group form", chromedp.Click(chromedp.ID("new-group")))
	waitFor[bool](t, b, "the form is open", groupsState, `() => document.getElementById("group-create").open`)
	steps := []chromedp.Action[chromedp.Void]{chromedp.SendKeys(chromedp.ID("group-create-name"), name)}
	if description != "" {
		steps = append(steps, chromedp.SendKeys(chromedp.ID("group-create-desc"), description))
	}
	if limit != "" {
		steps = append(steps, chromedp.SendKeys(chromedp.ID("group-create-cap"), limit))
	}
	steps = append(steps, chromedp.Click(chromedp.ID("group-create-submit")))
	b.do(t, "create "+name, steps...)
	waitFor[bool](t, b, "the form is closed", groupsState, `() => !document.getElementById("group-create").open`)
}

// openGroupSettings opens the open group's settings and waits for its members.
func (b *browser) openGroupSettings(t *testing.T) {
	t.Helper()
	b.do(t, "open the group settings", chromedp.Click(chromedp.ID("group-settings")))
	waitFor[bool](t, b, "the settings list the members", groupsState, `(me) =>
		document.getElementById("group-dialog").open &&
		!!document.querySelector('#group-members li[data-user-id="' + me + '"]')`, b.userID)
}

// fetchJSON calls the API from b's page, with its session, and decodes the
// answer into out (unless out is nil). A status other than 2xx fails the test.
func (b *browser) fetchJSON(t *testing.T, method, path string, body, out any) {
	t.Helper()
	var payload string
	if body != nil {
		p, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		payload = string(p)
	}
	args, err := json.Marshal([]string{method, path, payload})
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	ctx, cancel := b.stepCtx()
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[answer](`(async ([method, path, body]) => {
		const init = {method, headers: {Accept: "application/json"}};
		if (body) {
			init.headers["Content-Type"] = "application/json";
			init.body = body;
		}
		const res = await fetch(path, init);
		return {status: res.status, body: await res.text()};
	})(`+string(args)+`)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %s %s: %v", b.name, method, path, err)
	}
	if got.Status < 200 || got.Status > 299 {
		t.Fatalf("%s: %s %s = %d %s; want 2xx", b.name, method, path, got.Status, strings.TrimSpace(got.Body))
	}
	if out != nil {
		if err := json.Unmarshal([]byte(got.Body), out); err != nil {
			t.Fatalf("%s: %s %s: decode %q: %v", b.name, method, path, got.Body, err)
		}
	}
}
