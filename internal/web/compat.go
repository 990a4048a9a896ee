package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// compatFrame is the Django Channels tutorial's only frame, both ways.
type compatFrame struct {
	Message *string `json:"message"`
}

func encodeCompat(ev chat.Event) []byte {
	if ev.Type != chat.EventMessage || ev.Message == nil || ev.Message.Kind != chat.KindText {
		return nil
	}
	b, err := json.Marshal(compatFrame{Message: &ev.Message.Body})
	if err != nil {
		return nil
	}
	return b
}

// handleCompatWS serves /ws/chat/{room}/ with the Django Channels tutorial
// protocol, anonymously, on the same path as native messages.
func (s *server) handleCompatWS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("room")
		if err := chat.ValidRoomName(name); err != nil {
			s.fail(w, err)
			return
		}
		// A request the upgrade will refuse (another site's Origin, no
		// WebSocket at all: an <img> on any page, or a handshake gorilla
		// does not take) must not make the room: the upgrader refuses it
		// now, and says why.
		if !upgradable(r) || !s.checkOrigin(r) {
			_, _ = s.upgrader.Upgrade(hijacker{w}, r, nil)
			return
		}
		ip := s.clientIP(r)
		// Anonymous, they are not bound by the cap of a user's connections
		// (roomForConn), but cost as much.
		release, err := s.compat.take(ip, s.cfg.MaxUserConns, func() int { return 0 }, "too many connections from this address: close some first")
		if err == nil {
			// How often an address opens connections is limited as a
			// user's (allowCompatOpen): each enters a room, which it may
			// make, and subscribes.
			if err = s.allowCompatOpen(ip); err != nil {
				release()
			}
		}
		if err != nil {
			s.fail(w, err)
			return
		}
		served := false
		defer func() {
			if !served {
				release()
			}
		}()
		room, err := s.svc.EnterRoomAnonymous(r.Context(), name, ip)
		if err != nil {
			s.fail(w, err)
			return
		}
		// Subscribe before the upgrade answers, so that a message sent as
		// soon as the client is connected reaches it (this protocol has
		// no resync). A wake before the socket is there waits for it; after,
		// the server's writers flush it, as a native connection.
		c := &conn{s: s, format: formatCompat, ctx: context.Background()}
		upgraded := make(chan struct{})
		wake := func(cl *hub.Client) {
			<-upgraded
			if c.ws != nil {
				c.Wake(cl)
			}
		}
		c.client, err = s.hub.Register(0, 0, s.cfg.Outbox, hub.WakeFunc(func(cl *hub.Client) {
			select {
			case <-upgraded:
				wake(cl)
			default:
				go wake(cl)
			}
		}))
		if err == nil {
			if err = s.hub.Subscribe(c.client, chat.ConvTopic(room.ID)); err != nil {
				s.hub.Unregister(c.client)
			}
		}
		if err != nil {
			close(upgraded)
			s.fail(w, err)
			return
		}
		ws, err := s.upgrader.Upgrade(hijacker{w}, r, nil)
		if err != nil {
			s.hub.Unregister(c.client)
			close(upgraded)
			return
		}
		c.setWS(ws)
		close(upgraded)
		served = true // the connection's cleanup releases its place
		// The limits of a connection of the address's that ended are
		// taken over, as a user's (leftLimits).
		lims := s.leftAnon.take(ip)
		// Frames that are no send are limited as a native connection's
		// frames other than sends: each is answered with an error.
		refuse := func(err error) {
			if limit, burst := s.otherFrames(); !lims.other.allow(limit, burst) {
				err = rateLimited(limit)
			}
			c.pushError("", 0, err)
		}
		go c.serve(func(data []byte, text bool) {
			if !text {
				refuse(errNotText)
				return
			}
			var f compatFrame
			if err := unmarshal(data, &f); err == errNotUTF8 {
				refuse(chat.Errorf(chat.ErrInvalid, chat.CodeBadJSON, "frame is not valid JSON: %v", err))
				return
			} else if err != nil {
				refuse(chat.Errorf(chat.ErrInvalid, chat.CodeBadJSON, "frame is not JSON of the form {\"message\": \"...\"}"))
				return
			}
			if f.Message == nil {
				refuse(chat.Invalid(chat.CodeMissingField, "message", "message is required"))
				return
			}
			if limit := rate.Limit(s.cfg.SendRate); !lims.send.allow(limit, s.cfg.SendBurst) {
				c.pushError("", 0, rateLimited(limit))
				return
			}
			ctx, cancel := c.opContext()
			defer cancel()
			if _, err := s.svc.SendAnonymous(ctx, room.ID, *f.Message); err != nil {
				c.pushError("", 0, compatField(err))
			}
		}, func() {
			s.leftAnon.put(ip, lims, s.cfg.MaxUserConns)
			release()
		})
	})
}

// compatField is err with the field "body", the native protocol's name for
// a message's text, named "message", as this protocol's clients send it.
func compatField(err error) error {
	if e := chat.AsError(err); e != nil && e.Field == "body" {
		e2 := *e
		e2.Field = "message"
		return &e2
	}
	return err
}

// upgradable reports whether the upgrader takes r's handshake, its
// Origin aside: what gorilla's Upgrade checks of a GET before it
// answers 101.
func upgradable(r *http.Request) bool {
	if !websocket.IsWebSocketUpgrade(r) {
		return false
	}
	version := false
	for _, v := range r.Header.Values("Sec-Websocket-Version") {
		for t := range strings.SplitSeq(v, ",") {
			version = version || strings.TrimSpace(t) == "13"
		}
	}
	key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-Websocket-Key"))
	return version && err == nil && len(key) == 16
}
