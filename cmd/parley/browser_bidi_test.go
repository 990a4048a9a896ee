package main

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
)

// crewPreviewOrder measures, in Ada's conversation list, where the
// preview of the group Crew shows its sender's name and its body's "5":
// the left edges, in pixels, of each.
const crewPreviewOrder = `(() => {
	const li = [...document.querySelectorAll("#conversations li")].find((li) => li.querySelector(".conv-name")?.textContent === "Crew");
	const p = li?.querySelector(".conv-preview");
	if (!p || !p.textContent.includes("5 apples")) return null;
	` + textLeftJS + `
	return {text: p.textContent, name: left(p, "\u05de\u05d9\u05db\u05dc"), five: left(p, "5")};
})()`

// textLeftJS defines left(el, s): the left edge, in pixels, of the first
// s in the text of el, null if there is none.
const textLeftJS = `const left = (el, s) => {
		const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
		for (let n = walk.nextNode(); n; n = walk.nextNode()) {
			const i = n.data.indexOf(s);
			if (i < 0) continue;
			const r = document.createRange();
			r.setStart(n, i);
			r.setEnd(n, i + s.length);
			return Math.min(...[...r.getClientRects()].map((q) => q.left));
		}
		return null;
	};`

// TestBrowserBidiIsolated: Grace, named in Hebrew (מיכל, a name the
// server takes), writes "5 apples" to the group Crew. Ada's page, in
// English, previews it as "מיכל: 5 apples": the name is isolated from the
// text around it, so the ": " the page puts after it and the body's "5"
// stay to its right, where an English line has them, instead of being
// drawn into the name's right-to-left run ("5 :מיכל apples").
func TestBrowserBidiIsolated(t *testing.T) {
	s, ada := startAdaBy(t, "")
	ada.userID = userIDOf(t, s, nil, ada)
	grace, groupID, _ := graceAddsToCrew(t, s, ada.userID)
	postJSON(t, grace, "PATCH", s.URL+"/api/me", map[string]string{"name": "\u05de\u05d9\u05db\u05dc"}, http.StatusOK, nil)
	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/conversations/%d/messages", s.URL, groupID),
		map[string]string{"client_id": "c-apples", "body": "5 apples"}, http.StatusOK, nil)

	type order struct {
		Text string   `json:"text"`
		Name *float64 `json:"name"`
		Five *float64 `json:"five"`
	}
	got := waitFor[order](t, ada, "Crew's preview shows Grace's message", crewPreviewOrder,
		`() => { const o = `+crewPreviewOrder+`; return o && o.name !== null && o.five !== null ? o : null; }`)
	if *got.Five < *got.Name {
		t.Errorf("preview %q: the 5 shows at x=%v, left of the name at x=%v; want it right of the name", got.Text, *got.Five, *got.Name)
	}
	ada.checkQuiet(t)
}

// describedOrder measures, in the open conversation, the line of the
// event that set the group's description: the right edge of the
// description's text and the left edge of the line's time, in pixels.
const describedOrder = `(() => {
	const line = document.querySelector('.msg[data-kind="described"] .notice-text');
	const time = line?.querySelector("time");
	if (!time) return null;
	const walk = document.createTreeWalker(line, NodeFilter.SHOW_TEXT);
	for (let n = walk.nextNode(); n; n = walk.nextNode()) {
		const i = n.data.indexOf("\u05e9\u05dc\u05d5\u05dd");
		if (i < 0) continue;
		const r = document.createRange();
		r.setStart(n, i);
		r.setEnd(n, i + 4);
		return {text: line.textContent, desc: Math.max(...[...r.getClientRects()].map((q) => q.right)), time: time.getBoundingClientRect().left};
	}
	return null;
})()`

// TestBrowserBidiEventIsolated: Grace gives the group Crew the
// description "שלום" (Hebrew). Ada's page tells it in an English line,
// `Grace changed the description to “שלום” 10:42`: the description is
// isolated, so the closing quote and the time stay after it, on its
// right, instead of being drawn into its right-to-left run.
func TestBrowserBidiEventIsolated(t *testing.T) {
	s, ada := startAdaBy(t, "")
	ada.userID = userIDOf(t, s, nil, ada)
	grace, groupID, _ := graceAddsToCrew(t, s, ada.userID)
	postJSON(t, grace, "PATCH", fmt.Sprintf("%s/api/groups/%d", s.URL, groupID),
		map[string]string{"description": "\u05e9\u05dc\u05d5\u05dd"}, http.StatusOK, nil)
	ada.do(t, "open Crew", chromedp.Navigate(ada.appURL(s, fmt.Sprintf("#conv/%d", groupID))))

	type order struct {
		Text string  `json:"text"`
		Desc float64 `json:"desc"`
		Time float64 `json:"time"`
	}
	got := waitFor[order](t, ada, "Crew shows the description's event", describedOrder,
		`() => `+describedOrder)
	if got.Time < got.Desc {
		t.Errorf("event line %q: its time shows at x=%v, left of the description's end at x=%v; want it right of it", got.Text, got.Time, got.Desc)
	}
	ada.checkQuiet(t)
}

// directNameOrder measures, in the open direct chat, where its title and
// the line that begins its history show the peer's name "2 מיכל": the
// left edges, in pixels, of its "2" and of its Hebrew word, in each; and
// the composer's placeholder.
const directNameOrder = `(() => {
	` + textLeftJS + `
	const at = (id) => {
		const el = document.getElementById(id);
		return {text: el.textContent, two: left(el, "2"), name: left(el, "\u05de\u05d9\u05db\u05dc")};
	};
	return {title: at("room-title"), history: at("history-text"), placeholder: document.getElementById("composer").placeholder};
})()`

// TestBrowserBidiDirectName: Ada opens her chat with Grace, named
// "2 מיכל" (a digit, then a Hebrew word). Where the page names her in
// its own text, the name is isolated, as everywhere else: its direction is
// its own (right to left, from its first letter), so it shows as it does
// in the lists, the "2" on the right of the word, and does not take the
// page's left-to-right direction ("2" on the left). The composer's
// placeholder, plain text, isolates it with U+2068 FIRST STRONG ISOLATE
// and U+2069 POP DIRECTIONAL ISOLATE.
func TestBrowserBidiDirectName(t *testing.T) {
	s, ada := startAdaBy(t, "")
	ada.userID = userIDOf(t, s, nil, ada)
	grace := signIn(t, s, "grace@example.com", "Grace")
	graceID := userIDOf(t, s, grace, nil)
	const name = "2 \u05de\u05d9\u05db\u05dc"
	postJSON(t, grace, "PATCH", s.URL+"/api/me", map[string]string{"name": name}, http.StatusOK, nil)
	postJSON(t, grace, "POST", s.URL+"/api/contacts", map[string]int64{"user_id": ada.userID}, http.StatusOK, nil)
	ada.fetchJSON(t, "POST", fmt.Sprintf("/api/contacts/%d/accept", graceID), nil, nil)
	ada.do(t, "open the chat with Grace", chromedp.Navigate(ada.appURL(s, fmt.Sprintf("#dm/%d", graceID))))

	type place struct {
		Text string   `json:"text"`
		Two  *float64 `json:"two"`
		Name *float64 `json:"name"`
	}
	type order struct {
		Title       place  `json:"title"`
		History     place  `json:"history"`
		Placeholder string `json:"placeholder"`
	}
	got := waitFor[order](t, ada, "the chat with Grace is open", directNameOrder,
		`() => { const o = `+directNameOrder+`; return o.title.name !== null && o.history.name !== null ? o : null; }`)
	for _, p := range []struct {
		where string
		place
	}{{"title", got.Title}, {"history's first line", got.History}} {
		if p.Two == nil {
			t.Errorf("%s %q: no 2 in it", p.where, p.Text)
		} else if *p.Two < *p.Name {
			t.Errorf("%s %q: the name's 2 shows at x=%v, left of its Hebrew word at x=%v; want it right of it, the name isolated", p.where, p.Text, *p.Two, *p.Name)
		}
	}
	if want := "Message \u2068" + name + "\u2069"; got.Placeholder != want {
		t.Errorf("composer placeholder = %q; want %q, the name isolated", got.Placeholder, want)
	}
	ada.checkQuiet(t)
}
