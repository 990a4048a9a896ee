package main

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parley-chat/parley/internal/mailer/smtptest"
)

// TestBrowserNextUserSeesNoOldNotes: Ada searches for someone who is not
// there and types a room name the server would refuse, then signs out;
// Grace signs in on the same page. What the page said to Ada about her
// search and her room name is gone: Grace's sidebar starts clean.
func TestBrowserNextUserSeesNoOldNotes(t *testing.T) {
	s, ada := startAda(t)
	ada.do(t, "search for nobody", chromedp.SendKeys(chromedp.ID("people-search"), "Nobody here"+kb.Enter))
	waitFor[bool](t, ada, "no one is found", viewState, `() =>
		!document.getElementById("people-info").hidden &&
		document.getElementById("people-info").textContent.startsWith("No one found")`)
	ada.do(t, "type a bad room name", chromedp.SendKeys(chromedp.ID("room-input"), "no spaces"))
	waitFor[bool](t, ada, "the room name is refused", viewState, `() =>
		document.getElementById("room-hint").classList.contains("error")`)

	ada.click(t, "sign out", "#signout")
	waitFor[bool](t, ada, "signed out", viewState, `() => document.getElementById("app").dataset.view === "signin"`)
	evaluate[chromedp.Void](t, ada, "clear the address", `document.getElementById("email").value = ""`)
	ada.do(t, "ask for Grace's code",
		chromedp.SendKeys(chromedp.ID("email"), "grace@example.com"),
		chromedp.Click(chromedp.ID("send-code")),
	)
	ctx, cancel := context.WithDeadline(context.Background(), ada.stepDeadline())
	defer cancel()
	m, err := s.Mail.WaitFor(ctx, "grace@example.com")
	if err != nil {
		t.Fatalf("no sign-in mail for Grace: %v", err)
	}
	ada.do(t, "sign in as Grace",
		chromedp.SendKeys(chromedp.ID("code"), smtptest.ExtractCode(m.Text)),
		chromedp.Click(chromedp.ID("verify")),
		chromedp.SendKeys(chromedp.ID("display-name"), "Grace"),
		chromedp.Click(chromedp.ID("save-name")),
	)
	ada.name = "Grace"
	waitFor[bool](t, ada, "Grace's sidebar starts clean", `{
		view: `+viewState+`,
		me: document.getElementById("me-name").textContent,
		search: document.getElementById("people-search").value,
		info: document.getElementById("people-info").hidden + " " + document.getElementById("people-info").textContent,
		room: document.getElementById("room-input").value,
		hint: document.getElementById("room-hint").className + " " + document.getElementById("room-hint").textContent,
	}`, `() =>
		document.getElementById("app").dataset.view === "chat" &&
		document.getElementById("me-name").textContent === "Grace" &&
		document.getElementById("people-search").value === "" && document.getElementById("people-info").hidden &&
		document.getElementById("room-input").value === "" && !document.getElementById("room-hint").classList.contains("error")`)
	ada.checkQuiet(t)
}
