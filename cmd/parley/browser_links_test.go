package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
)

// bodyPart is a part of a message body, as the web app's linkParts
// returns it or as a child node of a shown body: text, a link to Href
// showing Text (with its Target and Rel, as shown), or an element Tag.
type bodyPart struct {
	Text   string `json:"text"`
	Href   string `json:"href,omitempty"`
	Target string `json:"target,omitempty"`
	Rel    string `json:"rel,omitempty"`
	Tag    string `json:"tag,omitempty"`
}

// wikiURL is a URL with balanced parentheses, longURL one of 2,000 characters.
const wikiURL = "https://en.wikipedia.org/wiki/Go_(programming_language)"

var longURL = "https://a.example/" + strings.Repeat("a", 2000-len("https://a.example/"))

func textPart(s string) bodyPart       { return bodyPart{Text: s} }
func linkPart(href, s string) bodyPart { return bodyPart{Text: s, Href: href} }

// TestBrowserLinkParts runs the web app's linkParts, which finds the web
// addresses in a body, in Chromium on the rules of GitHub's autolinks:
// http and https URLs and www. hosts; a sentence's final punctuation, a
// closing quote and an unbalanced closing bracket stay text; balanced
// brackets stay in the link; no other scheme is linked.
func TestBrowserLinkParts(t *testing.T) {
	s, ada := startAdaUnsigned(t)
	ada.do(t, "open the app", chromedp.Navigate(ada.appURL(s, "")))

	tests := []struct {
		name string
		body string
		want []bodyPart
	}{
		{"plain", "no link here", []bodyPart{textPart("no link here")}},
		{"whole", "https://a.example/x", []bodyPart{linkPart("https://a.example/x", "https://a.example/x")}},
		{"period", "see https://a.example/x.", []bodyPart{textPart("see "), linkPart("https://a.example/x", "https://a.example/x"), textPart(".")}},
		{"punctuation", "https://a.example/x?y=1!?!, ok", []bodyPart{linkPart("https://a.example/x?y=1", "https://a.example/x?y=1"), textPart("!?!, ok")}},
		{"inner punctuation", "https://a.example/a.b,c!d:e", []bodyPart{linkPart("https://a.example/a.b,c!d:e", "https://a.example/a.b,c!d:e")}},
		{"parentheses", "(https://a.example/x)", []bodyPart{textPart("("), linkPart("https://a.example/x", "https://a.example/x"), textPart(")")}},
		{"balanced", wikiURL, []bodyPart{linkPart(wikiURL, wikiURL)}},
		{"balanced in parentheses", "(see " + wikiURL + ").", []bodyPart{textPart("(see "), linkPart(wikiURL, wikiURL), textPart(").")}},
		{"unbalanced inside", "https://a.example/a(b)c))", []bodyPart{linkPart("https://a.example/a(b)c", "https://a.example/a(b)c"), textPart("))")}},
		{"brackets", "[https://a.example/x] {https://b.example/y}", []bodyPart{textPart("["), linkPart("https://a.example/x", "https://a.example/x"), textPart("] {"), linkPart("https://b.example/y", "https://b.example/y"), textPart("}")}},
		{"angle brackets", "<https://a.example/x>", []bodyPart{textPart("<"), linkPart("https://a.example/x", "https://a.example/x"), textPart(">")}},
		{"quotes", `"https://a.example/x" 'https://b.example/y'; “https://c.example/z”`, []bodyPart{
			textPart(`"`), linkPart("https://a.example/x", "https://a.example/x"), textPart(`" '`),
			linkPart("https://b.example/y", "https://b.example/y"), textPart(`'; “`),
			linkPart("https://c.example/z", "https://c.example/z"), textPart("”"),
		}},
		{"several", "http://a.example and https://b.example/p#f\nnext", []bodyPart{
			linkPart("http://a.example", "http://a.example"), textPart(" and "),
			linkPart("https://b.example/p#f", "https://b.example/p#f"), textPart("\nnext"),
		}},
		{"port and no dot", "http://localhost:8080/p", []bodyPart{linkPart("http://localhost:8080/p", "http://localhost:8080/p")}},
		{"capitals", "HTTPS://A.EXAMPLE/X", []bodyPart{linkPart("HTTPS://A.EXAMPLE/X", "HTTPS://A.EXAMPLE/X")}},
		{"www", "go to www.example.com/help?q=1.", []bodyPart{textPart("go to "), linkPart("https://www.example.com/help?q=1", "www.example.com/help?q=1"), textPart(".")}},
		{"www in parentheses", "(www.example.com)", []bodyPart{textPart("("), linkPart("https://www.example.com", "www.example.com"), textPart(")")}},
		{"www without a domain", "www.example and www. and www.example.", []bodyPart{textPart("www.example and www. and www.example.")}},
		{"www inside a word", "a.www.example.com me@www.example.com", []bodyPart{textPart("a.www.example.com me@www.example.com")}},
		{"underscore in the last labels", "https://a_b.example/ www.a_b.com", []bodyPart{textPart("https://a_b.example/ www.a_b.com")}},
		{"scheme inside a word", "xhttps://a.example", []bodyPart{textPart("xhttps://a.example")}},
		{"no host", "https:// https://. https://-a.example", []bodyPart{textPart("https:// https://. https://-a.example")}},
		{"other schemes", "javascript:alert(1) data:text/html,<b>x</b> vbscript:x file:///etc/passwd mailto:a@b.example ftp://a.example", []bodyPart{
			textPart("javascript:alert(1) data:text/html,<b>x</b> vbscript:x file:///etc/passwd mailto:a@b.example ftp://a.example"),
		}},
		{"javascript after a link's scheme", "https://javascript:alert(1)", []bodyPart{linkPart("https://javascript:alert(1)", "https://javascript:alert(1)")}},
		{"markup", `<img src=x onerror=alert(1)> <a href="https://a.example/">x</a>`, []bodyPart{
			textPart(`<img src=x onerror=alert(1)> <a href="`), linkPart("https://a.example/", "https://a.example/"), textPart(`">x</a>`),
		}},
		{"Chinese", "见https://a.example/x。谢谢（https://b.example/y）", []bodyPart{
			textPart("见"), linkPart("https://a.example/x", "https://a.example/x"), textPart("。谢谢（"),
			linkPart("https://b.example/y", "https://b.example/y"), textPart("）"),
		}},
		{"direction control before", "\u202ehttps://a.example/x", []bodyPart{textPart("\u202e"), linkPart("https://a.example/x", "https://a.example/x")}},
		{"direction control", "https://a.example/\u202eexe.txt", []bodyPart{linkPart("https://a.example/", "https://a.example/"), textPart("\u202eexe.txt")}},
		{"long", longURL, []bodyPart{linkPart(longURL, longURL)}},
	}
	bodies := make([]string, len(tests))
	for i, tc := range tests {
		bodies[i] = tc.body
	}
	args, err := json.Marshal(bodies)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := ada.stepCtx()
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[][]bodyPart](`import("/links.js").then(({linkParts}) =>
		`+string(args)+`.map((body) => linkParts(body).map((p) => typeof p === "string" ? {text: p} : {text: p.text, href: p.href})))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("run linkParts: %v", err)
	}
	for i, tc := range tests {
		if diff := cmp.Diff(tc.want, got[i]); diff != "" {
			t.Errorf("%s: linkParts(%q) mismatch (-want +got):\n%s", tc.name, tc.body, diff)
		}
	}
	ada.checkQuiet(t)
}

// shownBodies reads the bodies of the messages in the open conversation:
// for each, its child nodes as text or links, with each link's target and
// rel, and the tags of any other element.
const shownBodies = `[...document.querySelectorAll("#messages .msg:not(.event) .msg-body")].map((b) => ({
	dir: b.dir,
	parts: [...b.childNodes].map((n) =>
		n.nodeType === Node.TEXT_NODE ? {text: n.data} :
		n.tagName === "A" ? {text: n.textContent, href: n.getAttribute("href"), target: n.target, rel: n.rel, tag: n.children.length ? "A with elements" : undefined} :
		{tag: n.tagName}),
}))`

// TestBrowserMessageLinks: Grace writes to the group Crew a message with
// several web addresses among punctuation and brackets, a javascript:
// URL, markup, a link after a right-to-left override and a 2,000-character
// URL; Ada writes one with a link.
// Ada's page shows the addresses as links that open in a new tab with no
// opener, referrer or endorsement, the rest as text and no other
// element; a link reads left to right whatever comes before it; the long
// URL wraps, so the message list does not scroll
// sideways; a link takes focus from the keyboard, and shows it.
func TestBrowserMessageLinks(t *testing.T) {
	s, ada := startAdaBy(t, "")
	ada.userID = userIDOf(t, s, nil, ada)
	grace, groupID, _ := graceAddsToCrew(t, s, ada.userID)

	bodies := []string{
		"Docs: https://a.example/x. Wiki (" + wikiURL + "), www.example.com/help?q=1! and http://localhost:8080/p;\nbye",
		"javascript:alert(1)",
		"<img src=x onerror=alert(1)>",
		"\u202ehttps://a.example/abc",
		longURL,
	}
	for i, body := range bodies {
		postJSON(t, grace, "POST", fmt.Sprintf("%s/api/conversations/%d/messages", s.URL, groupID),
			map[string]string{"client_id": fmt.Sprintf("c-link-%d", i), "body": body}, http.StatusOK, nil)
	}
	ada.do(t, "open Crew", chromedp.Navigate(ada.appURL(s, fmt.Sprintf("#conv/%d", groupID))))
	waitFor[bool](t, ada, "Crew shows Grace's messages", viewState, `(n) =>
		document.getElementById("room-title").textContent === "Crew" &&
		document.querySelectorAll("#messages .msg:not(.event)[data-seq]").length === n`, len(bodies))
	evaluate[chromedp.Void](t, ada, "mark the page", `window.parleyTestPage = true`)
	ada.send(t, "mine: https://b.example/own.")

	const rel = "noopener noreferrer nofollow"
	a := func(href, s string) bodyPart {
		return bodyPart{Text: s, Href: href, Target: "_blank", Rel: rel}
	}
	type body struct {
		Dir   string     `json:"dir"`
		Parts []bodyPart `json:"parts"`
	}
	want := []body{
		{"auto", []bodyPart{
			textPart("Docs: "), a("https://a.example/x", "https://a.example/x"), textPart(". Wiki ("),
			a(wikiURL, wikiURL), textPart("), "),
			a("https://www.example.com/help?q=1", "www.example.com/help?q=1"), textPart("! and "),
			a("http://localhost:8080/p", "http://localhost:8080/p"), textPart(";\nbye"),
		}},
		{"auto", []bodyPart{textPart("javascript:alert(1)")}},
		{"auto", []bodyPart{textPart("<img src=x onerror=alert(1)>")}},
		{"auto", []bodyPart{textPart("\u202e"), a("https://a.example/abc", "https://a.example/abc")}},
		{"auto", []bodyPart{a(longURL, longURL)}},
		{"auto", []bodyPart{textPart("mine: "), a("https://b.example/own", "https://b.example/own"), textPart(".")}},
	}
	got := evaluate[[]body](t, ada, "read the bodies", shownBodies)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("message bodies mismatch (-want +got):\n%s", diff)
	}

	// The override before the link reverses the text after it, but not
	// the link's, which shows as it goes.
	type ends struct {
		First float64 `json:"first"`
		Last  float64 `json:"last"`
	}
	e := evaluate[ends](t, ada, "measure the link after an override", `(() => {
		const n = document.querySelector('#messages a[href="https://a.example/abc"]').firstChild;
		const left = (i) => {
			const r = document.createRange();
			r.setStart(n, i);
			r.setEnd(n, i + 1);
			return r.getBoundingClientRect().left;
		};
		return {first: left(0), last: left(n.data.length - 1)};
	})()`)
	if e.Last < e.First {
		t.Errorf("after a right-to-left override, the link's last character shows at x=%v, left of its first at x=%v; want the link left to right", e.Last, e.First)
	}

	type page struct {
		Hrefs       []string `json:"hrefs"`
		Images      int      `json:"images"`
		ScrollWidth int      `json:"scrollWidth"`
		ClientWidth int      `json:"clientWidth"`
	}
	p := evaluate[page](t, ada, "read the message list", `(() => {
		const box = document.getElementById("messages");
		return {
			hrefs: [...box.querySelectorAll("a")].map((a) => a.getAttribute("href")),
			images: box.querySelectorAll("img").length,
			scrollWidth: box.scrollWidth,
			clientWidth: box.clientWidth,
		};
	})()`)
	for _, h := range p.Hrefs {
		if l := strings.ToLower(h); !strings.HasPrefix(l, "http:") && !strings.HasPrefix(l, "https:") {
			t.Errorf("a link in the messages goes to %q; want only http: and https: links", h)
		}
	}
	if p.Images != 0 {
		t.Errorf("the messages hold %d <img> elements; want 0", p.Images)
	}
	if p.ScrollWidth != p.ClientWidth {
		t.Errorf("with a 2,000-character URL the message list is %d px wide and scrolls to %d px; want no sideways scroll", p.ClientWidth, p.ScrollWidth)
	}

	// The composer has keyboard focus: focus moved from it by the page
	// is shown as the keyboard's would be.
	ada.do(t, "focus the composer", chromedp.Focus(chromedp.ID("composer")))
	type focus struct {
		TabIndex  int    `json:"tabIndex"`
		Visible   bool   `json:"visible"`
		BoxShadow string `json:"boxShadow"`
		Own       string `json:"own"`
		Others    string `json:"others"`
	}
	f := evaluate[focus](t, ada, "focus a link", `(() => {
		const line = (a) => getComputedStyle(a).textDecorationLine;
		const own = document.querySelector("#messages .msg.own .msg-body a");
		const others = document.querySelector("#messages .msg:not(.own) .msg-body a");
		others.focus();
		return {
			tabIndex: others.tabIndex,
			visible: document.activeElement === others && others.matches(":focus-visible"),
			boxShadow: getComputedStyle(others).boxShadow,
			own: line(own),
			others: line(others),
		};
	})()`)
	if f.TabIndex < 0 || !f.Visible || f.BoxShadow == "none" {
		t.Errorf("a link focused: tabIndex %d, focus-visible %v, box-shadow %q; want it in the tab order with a focus ring", f.TabIndex, f.Visible, f.BoxShadow)
	}
	if f.Own != "underline" || f.Others != "underline" {
		t.Errorf("links are underlined %q in Ada's bubble and %q in Grace's; want underline in both", f.Own, f.Others)
	}
	ada.checkQuiet(t)
}
