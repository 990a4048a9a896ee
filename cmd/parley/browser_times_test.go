package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/chat"
)

// oldMark in a message's body has backdateStore store it as sent 50 hours
// ago: on another day than today in every time zone.
const oldMark = "[old]"

// yesterdayMark in a message's body has backdateStore store it as sent
// 24 hours ago: yesterday in a time zone without daylight saving time.
const yesterdayMark = "[yesterday]"

// backdateStore stores messages marked with oldMark as sent 50 hours ago,
// and those marked with yesterdayMark 24 hours ago.
type backdateStore struct{ store }

func backdate(nm chat.NewMessage) chat.NewMessage {
	for mark, ago := range map[string]time.Duration{oldMark: 50 * time.Hour, yesterdayMark: 24 * time.Hour} {
		if !strings.Contains(nm.Body, mark) {
			continue
		}
		if nm.At.IsZero() {
			nm.At = time.Now()
		}
		nm.At = nm.At.Add(-ago)
	}
	return nm
}

func (s backdateStore) Append(ctx context.Context, nm chat.NewMessage) (chat.Message, bool, error) {
	return s.store.Append(ctx, backdate(nm))
}

func (s backdateStore) QueueAppend(ctx context.Context, nm chat.NewMessage) chat.PendingAppend {
	return s.store.QueueAppend(ctx, backdate(nm))
}

// htmlDateTime is a valid global date and time string of HTML, as a
// <time datetime> must be for a machine to read it: at most three digits
// of a second's fraction.
var htmlDateTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2})$`)

// inKathmandu has b's page in the time zone of Kathmandu (UTC+05:45, a
// zone no server or test machine is in by chance, without daylight saving
// time) and in locale, and returns that zone.
func (b *browser) inKathmandu(t *testing.T, locale string) *time.Location {
	t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Kathmandu"}); err != nil {
		t.Fatalf("%s: set the time zone: %v", b.name, err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetLocaleOverride, emulation.SetLocaleOverrideParams{Locale: locale}); err != nil {
		t.Fatalf("%s: set the locale: %v", b.name, err)
	}
	return time.FixedZone("Asia/Kathmandu", 5*3600+45*60)
}

// TestBrowserMessageTimes: a message shows when it was sent in the user's
// time zone and locale, here Kathmandu (UTC+05:45, a zone no server or
// test machine is in by chance) and German; the time alone for a message
// of today, with its date for one of another day; and in a <time> whose
// datetime a machine reads.
func TestBrowserMessageTimes(t *testing.T) {
	exe := chromiumPath(t)
	s := startServerWith(t, func(db store) store { return backdateStore{db} })
	ada := startBrowser(t, exe, "ada", time.Now().Add(browserTestTimeout))
	kathmandu := ada.inKathmandu(t, "de_DE")

	ada.signIn(t, s, "ada@example.com", "Ada")
	ada.enterRoom(t, "lobby")
	const today, old = "sent today", oldMark + " sent two days ago"
	ada.send(t, old)
	ada.send(t, today)

	type shownTime struct {
		Sent     string `json:"sent"` // created_at, as the server gave it
		DateTime string `json:"dateTime"`
		Text     string `json:"text"`
	}
	for _, body := range []string{today, old} {
		got := evaluate[shownTime](t, ada, "read the time of "+body, `(() => {
			const m = [...document.querySelectorAll("#messages .msg")].find((m) => m.querySelector(".msg-body")?.textContent === `+strconv.Quote(body)+`);
			const t = m && m.querySelector("time");
			return {sent: m?.dataset.time || "", dateTime: t?.getAttribute("datetime") || "", text: t?.textContent || ""};
		})()`)
		sent, err := time.Parse(time.RFC3339Nano, got.Sent)
		if err != nil {
			t.Fatalf("%q: the message's time %q: %v", body, got.Sent, err)
		}
		local := sent.In(kathmandu)
		if !htmlDateTime.MatchString(got.DateTime) {
			t.Errorf("%q: <time datetime=%q>; want a valid HTML date and time (at most milliseconds)", body, got.DateTime)
		} else if dt, err := time.Parse(time.RFC3339Nano, strings.Replace(got.DateTime, " ", "T", 1)); err != nil || !dt.Equal(sent.Truncate(time.Millisecond)) {
			t.Errorf("%q: <time datetime=%q> is %v (%v); want %v", body, got.DateTime, dt, err, sent)
		}
		clock := regexp.MustCompile(`(^|\D)0?` + strconv.Itoa(local.Hour()) + `:` + local.Format("04") + `(\D|$)`)
		if !clock.MatchString(got.Text) {
			t.Errorf("%q: shown at %q; want %s, its time in Kathmandu", body, got.Text, local.Format("15:04"))
		}
		year := strconv.Itoa(local.Year())
		if body == today && strings.Contains(got.Text, year) {
			t.Errorf("%q: shown at %q; want the time alone for a message of today", body, got.Text)
		}
		if body == old && (!strings.Contains(got.Text, year) || !strings.Contains(got.Text, strconv.Itoa(local.Day()))) {
			t.Errorf("%q: shown at %q; want its date (%s) too, as it is not of today", body, got.Text, local.Format("2.1.2006"))
		}
	}
	ada.checkQuiet(t)
}

// TestBrowserDayLabels: the label above the first message of a day says
// "today" and "yesterday" in the user's language, here German, and the
// date for an older day.
func TestBrowserDayLabels(t *testing.T) {
	exe := chromiumPath(t)
	s := startServerWith(t, func(db store) store { return backdateStore{db} })
	ada := startBrowser(t, exe, "ada", time.Now().Add(browserTestTimeout))
	kathmandu := ada.inKathmandu(t, "de_DE")

	ada.signIn(t, s, "ada@example.com", "Ada")
	ada.enterRoom(t, "lobby")
	const old, yesterday, today = oldMark + " two days ago", yesterdayMark + " yesterday", "today"
	ada.send(t, old)
	ada.send(t, yesterday)
	ada.send(t, today)

	type label struct {
		Sent string `json:"sent"`
		Day  string `json:"day"`
	}
	labelOf := func(body string) label {
		return evaluate[label](t, ada, "read the day label of "+body, `(() => {
			const m = [...document.querySelectorAll("#messages .msg")].find((m) => m.querySelector(".msg-body")?.textContent === `+strconv.Quote(body)+`);
			return {sent: m?.dataset.time || "", day: m?.classList.contains("new-day") ? m.dataset.day : ""};
		})()`)
	}
	for body, want := range map[string]string{today: "Heute", yesterday: "Gestern"} {
		if got := labelOf(body); got.Day != want {
			t.Errorf("%q: the day above it is labelled %q; want %q", body, got.Day, want)
		}
	}
	got := labelOf(old)
	sent, err := time.Parse(time.RFC3339Nano, got.Sent)
	if err != nil {
		t.Fatalf("%q: the message's time %q: %v", old, got.Sent, err)
	}
	if day := strconv.Itoa(sent.In(kathmandu).Day()); !regexp.MustCompile(`(^|\D)` + day + `\D`).MatchString(got.Day) {
		t.Errorf("%q: the day above it is labelled %q; want its date (the %s.)", old, got.Day, day)
	}
	ada.checkQuiet(t)
}

// fakeClock is run in a page before the app: its clock (Date.now, new
// Date()) is ahead of the real one by localStorage.parleyClockOffset ms.
const fakeClock = `(() => {
	const offset = Number(localStorage.getItem("parleyClockOffset")) || 0;
	if (!offset) return;
	const RealDate = Date;
	window.Date = class extends RealDate {
		constructor(...args) {
			if (args.length) super(...args);
			else super(RealDate.now() + offset);
		}
		static now() {
			return RealDate.now() + offset;
		}
	};
})()`

// TestBrowserTimesAtMidnight: a message of today shows its time alone,
// its day labelled "Today"; when the day changes while it is shown (the
// page's clock passes midnight a few seconds after it was drawn), it is
// of yesterday, and shows its date too, its day "Yesterday", without
// anything else drawing it again.
func TestBrowserTimesAtMidnight(t *testing.T) {
	exe := chromiumPath(t)
	s := startServer(t)
	ada := startBrowser(t, exe, "ada", time.Now().Add(browserTestTimeout))
	ada.inKathmandu(t, "en_US")
	ada.onEveryPage(t, "install the fake clock", fakeClock)
	ada.signIn(t, s, "ada@example.com", "Ada")
	ada.enterRoom(t, "lobby")
	const body = "Sent before midnight."
	ada.send(t, body)

	// The reloaded page's clock reaches midnight 12 s from now: time for
	// a loaded machine to show the page before, within the wait after.
	evaluate[chromedp.Void](t, ada, "set the clock ahead", `(() => {
		const now = new Date();
		const midnight = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
		localStorage.setItem("parleyClockOffset", String(midnight - now - 12000));
	})()`)
	ada.do(t, "reload the page", chromedp.Reload())
	shown := `(() => {
		const m = [...document.querySelectorAll("#messages .msg")].find((m) => m.querySelector(".msg-body")?.textContent === ` + strconv.Quote(body) + `);
		let d = m;
		while (d && !d.classList.contains("new-day")) d = d.previousElementSibling;
		return {time: m?.querySelector("time")?.textContent || "", day: d?.dataset.day || "", clock: new Date().toString()};
	})()`
	type drawn struct {
		Time  string `json:"time"`
		Day   string `json:"day"`
		Clock string `json:"clock"`
	}
	before := waitFor[drawn](t, ada, "the message is shown again", shown, `() => {
		const d = `+shown+`;
		return d.time ? d : null;
	}`)
	if before.Day != "Today" || strings.Contains(before.Time, ",") {
		t.Fatalf("before midnight (%s), the message shows %q under %q; want its time alone, under %q", before.Clock, before.Time, before.Day, "Today")
	}
	after := waitFor[drawn](t, ada, "the message is shown as of yesterday after midnight", shown, `() => {
		const d = `+shown+`;
		return d.day === "Yesterday" && d.time.includes(",") ? d : null;
	}`)
	t.Logf("after midnight (%s): %q under %q", after.Clock, after.Time, after.Day)
	ada.checkQuiet(t)
}
