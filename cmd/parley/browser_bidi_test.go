package main

import (
	"fmt"
	"net/http"
	"testing"
)

// crewPreviewOrder measures, in Ada's conversation list, where the
// preview of the group Crew shows its sender's name and its body's "5":
// the left edges, in pixels, of each.
const crewPreviewOrder = `(() => {
	const li = [...document.querySelectorAll("#conversations li")].find((li) => li.querySelector(".conv-name")?.textContent === "Crew");
	const p = li?.querySelector(".conv-preview");
	if (!p || !p.textContent.includes("5 apples")) return null;
	const left = (s) => {
		const walk = document.createTreeWalker(p, NodeFilter.SHOW_TEXT);
		for (let n = walk.nextNode(); n; n = walk.nextNode()) {
			const i = n.data.indexOf(s);
			if (i < 0) continue;
			const r = document.createRange();
			r.setStart(n, i);
			r.setEnd(n, i + s.length);
			return Math.min(...[...r.getClientRects()].map((q) => q.left));
		}
		return null;
	};
	return {text: p.textContent, name: left("\u05de\u05d9\u05db\u05dc"), five: left("5")};
})()`

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
