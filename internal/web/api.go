package web

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/parley-chat/parley/internal/chat"
)

// me is the signed-in user's own view of themselves.
type me struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Email       string `json:"email"`
	NameVersion int64  `json:"name_version,omitempty"` // as userRef's
}

func meOf(u chat.User) me {
	return me{ID: u.ID, Name: u.Name, Email: u.Email, NameVersion: u.NameVersion}
}

func (s *server) handleHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Health != nil {
			if err := s.cfg.Health(r.Context()); err != nil {
				s.log.Warn("health check failed", "err", err)
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
}

// handleNotFound answers a request under /api/ that no route of mux
// serves: 405 method_not_allowed, with the methods that are served in
// Allow, when its path is an endpoint, 404 not_found otherwise.
func (s *server) handleNotFound(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); allow != "" {
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: errorDetail{Code: codeMethodNotAllowed, Message: r.Method + " is not allowed on " + r.URL.Path + "; allowed: " + allow}})
			return
		}
		writeJSON(w, http.StatusNotFound, errorBody{Error: errorDetail{Code: chat.CodeNotFound, Message: "no such endpoint: " + r.Method + " " + r.URL.Path}})
	})
}

// allowedMethods lists, as an Allow header has them, the methods mux
// routes r's path with to a handler other than the catch-alls, "" if none.
func allowedMethods(mux *http.ServeMux, r *http.Request) string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		other := r.WithContext(r.Context()) // a shallow copy
		other.Method = m
		if _, pattern := mux.Handler(other); pattern != "" && pattern != "/api/" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}

func (s *server) handleRequestCode() http.Handler {
	type request struct {
		Email string `json:"email"`
	}
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		var req request
		if err := s.decodeBody(w, r, &req); err != nil {
			return err
		}
		if err := s.svc.RequestCode(r.Context(), req.Email, s.clientIP(r)); err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, map[string]bool{"sent": true})
		return nil
	})
}

func (s *server) handleVerify() http.Handler {
	type request struct {
		Email string `json:"email"`
		Code  string `json:"code"`
	}
	type response struct {
		User    me   `json:"user"`
		NewUser bool `json:"new_user"`
	}
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		var req request
		if err := s.decodeBody(w, r, &req); err != nil {
			return err
		}
		in, err := s.svc.VerifyCode(r.Context(), req.Email, req.Code, s.clientIP(r))
		if err != nil {
			return err
		}
		s.setSessionCookie(w, r, in.Token, in.Session.ExpiresAt)
		writeJSON(w, http.StatusOK, response{User: meOf(in.User), NewUser: in.NewUser})
		return nil
	})
}

func (s *server) handleSignOut() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		if err := s.svc.SignOut(r.Context(), authFrom(r.Context()).Session); err != nil {
			return err
		}
		s.clearSessionCookie(w, r)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// handleMe answers GET /api/me with the user and when a request renews
// their session next (sessionRenewal): a page kept open asks again then.
func (s *server) handleMe() http.Handler {
	type response struct {
		User me `json:"user"`
		sessionRenewal
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := authFrom(r.Context())
		writeJSON(w, http.StatusOK, response{User: meOf(a.User), sessionRenewal: s.renewalOf(a.Session)})
	})
}

func (s *server) handleSetName() http.Handler {
	type request struct {
		Name string `json:"name"`
	}
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		var req request
		if err := s.decodeBody(w, r, &req); err != nil {
			return err
		}
		u, err := s.svc.SetName(r.Context(), authFrom(r.Context()).User, req.Name)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]me{"user": meOf(u)})
		return nil
	})
}

func (s *server) handleRooms() http.Handler {
	type response struct {
		Joined []chat.Room `json:"joined"`
		Active []chat.Room `json:"active"`
	}
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		joined, active, err := s.svc.Rooms(r.Context(), authFrom(r.Context()).User, 20)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, response{Joined: nonNil(joined), Active: nonNil(active)})
		return nil
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *server) handleEnterRoom() http.Handler {
	type request struct {
		Name string `json:"name"`
	}
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		var req request
		if err := s.decodeBody(w, r, &req); err != nil {
			return err
		}
		room, err := s.svc.EnterRoom(r.Context(), authFrom(r.Context()).User, strings.TrimSpace(req.Name))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]chat.Room{"room": room})
		return nil
	})
}

// pathID parses the {id} path value.
func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, chat.Invalid(chat.CodeInvalidField, "id", "room id must be a positive integer")
	}
	return id, nil
}

// queryParams reads parameters names from a raw query, decoded; one
// absent is not in the map. Each is read as given: one given twice, or
// that does not decode, is refused (url.Values would take the first, and
// drop one that does not decode, as if it were absent). Other parameters
// are left alone.
func queryParams(rawQuery string, names ...string) (map[string]string, error) {
	params := make(map[string]string, len(names))
	for part := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil || !slices.Contains(names, name) {
			continue
		}
		if _, ok := params[name]; ok {
			return nil, chat.Invalid(chat.CodeInvalidField, name, "%s is given more than once", name)
		}
		if params[name], err = url.QueryUnescape(v); err != nil {
			return nil, chat.Invalid(chat.CodeInvalidField, name, "%s is not escaped as a URL's query must be", name)
		}
	}
	return params, nil
}

// paramInt parses parameter name of params, a non-negative integer;
// given tells whether it is there. An empty value is no integer. One too
// large for an int64 is still a non-negative integer, past every seq and
// every limit: it is taken as math.MaxInt64 (ParseInt's value for it).
func paramInt(params map[string]string, name string) (n int64, given bool, err error) {
	v, given := params[name]
	if !given {
		return 0, false, nil
	}
	n, err = strconv.ParseInt(v, 10, 64)
	if errors.Is(err, strconv.ErrRange) && n > 0 {
		err = nil
	}
	if err != nil || n < 0 {
		return 0, true, chat.Invalid(chat.CodeInvalidField, name, "%s must be a non-negative integer", name)
	}
	return n, true, nil
}

func (s *server) handleRoom() http.Handler {
	type response struct {
		Room   chat.Room `json:"room"`
		Member bool      `json:"member"`
	}
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		room, member, err := s.svc.RoomFor(r.Context(), authFrom(r.Context()).User, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, response{Room: room, Member: member})
		return nil
	})
}

func (s *server) handleLeaveRoom() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		if err := s.svc.LeaveRoom(r.Context(), authFrom(r.Context()).User, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

type historyPage struct {
	RoomID   int64          `json:"room_id,omitempty"`
	Messages []chat.Message `json:"messages"`
	HasMore  bool           `json:"has_more"`
}

func (s *server) handleHistory() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		params, err := queryParams(r.URL.RawQuery, "before", "after", "limit")
		if err != nil {
			return err
		}
		var p chat.Page
		var before, after bool
		if p.Before, before, err = paramInt(params, "before"); err != nil {
			return err
		}
		if p.Before == 0 && before {
			// Nothing is before seq 0, as nothing is before seq 1: a client
			// paging back to the start gets an empty page, not the newest
			// again (a Page's Before 0 has no bound).
			p.Before = 1
		}
		if p.After, after, err = paramInt(params, "after"); err != nil {
			return err
		}
		if before && after {
			// A page has one bound: a range would be two requests' work.
			return chat.Invalid(chat.CodeInvalidField, "before", "before and after do not go together: page backwards with before, forwards with after")
		}
		limit, _, err := paramInt(params, "limit")
		if err != nil {
			return err
		}
		p.Limit = int(min(limit, 1000))
		page, err := s.history(r.Context(), authFrom(r.Context()).User, id, p, after)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, page)
		return nil
	})
}

// history loads a page and tells whether more exist beyond it. With
// forward (an after parameter, 0 included) it reads the oldest messages
// after p.After, otherwise the newest before p.Before.
func (s *server) history(ctx context.Context, u chat.User, id int64, p chat.Page, forward bool) (historyPage, error) {
	limit := p.Limit
	if limit <= 0 || limit > s.svc.Config().HistoryLimit {
		limit = s.svc.Config().HistoryLimit
	}
	var ms []chat.Message
	var err error
	if forward {
		ms, err = s.svc.Sync(ctx, u, id, p.After, limit)
	} else {
		ms, err = s.svc.History(ctx, u, id, chat.Page{Before: p.Before, Limit: limit})
	}
	if err != nil {
		return historyPage{}, err
	}
	more, err := s.hasMore(ctx, u, id, ms, limit, forward)
	if err != nil {
		return historyPage{}, err
	}
	return historyPage{Messages: nonNil(ms), HasMore: more}, nil
}

// hasMore reports whether messages exist beyond ms, a page of at most limit
// messages: after its last one when forward, before its first otherwise.
func (s *server) hasMore(ctx context.Context, u chat.User, id int64, ms []chat.Message, limit int, forward bool) (bool, error) {
	if len(ms) < limit {
		return false, nil
	}
	p := chat.Page{Before: ms[0].Seq, Limit: 1}
	if forward {
		p = chat.Page{After: ms[len(ms)-1].Seq, Limit: 1}
	}
	next, err := s.svc.History(ctx, u, id, p)
	return len(next) > 0, err
}

func (s *server) handleSend() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		req, err := s.decodeSend(w, r)
		if err != nil {
			return err
		}
		m, err := s.svc.Send(r.Context(), authFrom(r.Context()).User, id, req.ClientID, *req.Body)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]chat.Message{"message": m})
		return nil
	})
}

// sendRequest is the body of a REST send.
type sendRequest struct {
	ClientID string  `json:"client_id"`
	Body     *string `json:"body"`
}

// decodeSend reads a sendRequest with both fields present, then counts the
// send against its user's send rate (allowSend): a malformed send costs
// nothing.
func (s *server) decodeSend(w http.ResponseWriter, r *http.Request) (sendRequest, error) {
	var req sendRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		return sendRequest{}, err
	}
	if err := requireSendFields(req.ClientID, req.Body); err != nil {
		return sendRequest{}, err
	}
	return req, s.allowSend(authFrom(r.Context()).User)
}

func requireSendFields(clientID string, body *string) error {
	if clientID == "" {
		return chat.Invalid(chat.CodeMissingField, "client_id", "client_id is required")
	}
	if body == nil {
		return chat.Invalid(chat.CodeMissingField, "body", "body is required")
	}
	return nil
}

func (s *server) handleOnline() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		us, n, err := s.svc.OnlineFor(r.Context(), authFrom(r.Context()).User, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct {
			Users []userRef `json:"users"`
			Count int       `json:"count"`
		}{userRefs(us), n})
		return nil
	})
}

func (s *server) handleUI(ui fs.FS) http.Handler {
	files := http.FileServerFS(ui)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
