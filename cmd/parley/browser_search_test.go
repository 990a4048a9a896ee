package main

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserSearchAddressOnEnter: the server allows a user only so many
// searches by a whole email address an hour (--email-lookups-per-hour).
// The people search runs as a name is typed, but not as an address is:
// "grace@example.c", "grace@example.co" are whole addresses too, each one
// counted. An address is looked up once, when Enter is pressed.
func TestBrowserSearchAddressOnEnter(t *testing.T) {
	s, ada, grace := startPair(t, browserTestTimeout)
	ada.signIn(t, s, "ada@example.com", "Ada")
	grace.signIn(t, s, "grace@example.com", "Grace")
	evaluate[chromedp.Void](t, ada, "count searches", `(() => {
		window.parleySearches = [];
		const fetch = window.fetch;
		window.fetch = (url, init) => {
			if (String(url).startsWith("/api/users")) window.parleySearches.push(decodeURIComponent(String(url).split("q=")[1]));
			return fetch(url, init);
		};
	})()`)

	// Ada types the address slowly, stopping after each of its last
	// characters for longer than the search waits for typing to end.
	const address = "grace@example.com"
	ada.do(t, "type the address but its last 3 characters", chromedp.SendKeys(chromedp.ID("people-search"), address[:len(address)-3]))
	for _, c := range address[len(address)-3:] {
		time.Sleep(400 * time.Millisecond)
		ada.do(t, "type "+string(c), chromedp.SendKeys(chromedp.ID("people-search"), string(c)))
	}
	time.Sleep(400 * time.Millisecond)
	ada.do(t, "press Enter", chromedp.SendKeys(chromedp.ID("people-search"), kb.Enter))
	waitFor[bool](t, ada, "Grace is found", `{
		view: `+viewState+`,
		results: [...document.querySelectorAll("#people-results li")].map((li) => li.textContent),
		info: document.getElementById("people-info").textContent,
		searches: window.parleySearches,
	}`, `() => [...document.querySelectorAll("#people-results .person-name")].some((e) => e.textContent === "Grace")`)
	searches := evaluate[[]string](t, ada, "read the searches", `window.parleySearches`)
	var addresses []string
	for _, q := range searches {
		if q == address || q == address[:len(address)-1] || q == address[:len(address)-2] {
			addresses = append(addresses, q)
		}
	}
	if len(addresses) != 1 || addresses[0] != address {
		t.Errorf("the page searched for the addresses %q (all searches: %q); want only %q, once", addresses, searches, address)
	}
	ada.checkQuiet(t)
}
