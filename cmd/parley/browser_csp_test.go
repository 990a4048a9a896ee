package main

import (
	"strings"
	"testing"
	"time"
)

// TestBrowserCSP: the app runs under the server's Content-Security-Policy,
// which refuses script and style written into the page (where markup
// injected into it would put them), and the browser tests see a refusal:
// checkQuiet fails every one of them whose page breaks the policy, so the
// app cannot come to need a looser one unnoticed.
func TestBrowserCSP(t *testing.T) {
	_, ada := startAda(t)
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")
	ran := evaluate[bool](t, ada, "inject an inline script and style", `(() => {
		window.injected = false;
		const s = document.createElement("script");
		s.textContent = "window.injected = true";
		document.body.append(s);
		const d = document.createElement("p");
		d.id = "injected-style";
		d.setAttribute("style", "display: none");
		document.body.append(d);
		return window.injected;
	})()`)
	if ran {
		t.Errorf("an inline script ran; want it refused by the Content-Security-Policy")
	}
	if shown := evaluate[string](t, ada, "injected style", `getComputedStyle(document.getElementById("injected-style")).display`); shown == "none" {
		t.Errorf("an inline style applied; want it refused by the Content-Security-Policy")
	}
	// Both refusals reach the test's view of the console.
	var seen []string
	for deadline := time.Now().Add(browserStepTimeout); len(seen) < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			ada.mu.Lock()
			for _, m := range ada.console {
				t.Logf("Ada: console [%s/%s] %s", m.Type, m.Source, m.Text)
			}
			ada.mu.Unlock()
			t.Fatalf("Ada: Content-Security-Policy violations seen = %q; want 2 (the script's and the style's)", seen)
		}
		seen = append(seen, ada.takeViolations()...)
	}
	for _, v := range seen {
		if !strings.Contains(v, "inline") {
			t.Errorf("Ada: violation %q; want one of the inline script or style", v)
		}
	}
	ada.checkQuiet(t)
}
