package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

type errorDetail struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	Field        string `json:"field,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

// codeTooLarge is the code of a REST body over the limit.
const codeTooLarge = "too_large"

// codeMethodNotAllowed is the code of a request to an endpoint with a
// method it does not serve.
const codeMethodNotAllowed = "method_not_allowed"

// codeHeadersTooLarge is the code of a request whose header is over
// Config.MaxHeaderBytes (limitHeaders).
const codeHeadersTooLarge = "headers_too_large"

// classify maps any error to an HTTP status and what the client is shown.
// It is the one place where error kinds meet the transport; unexpected
// errors are logged and shown as "internal error".
func classify(log *slog.Logger, err error) (int, errorDetail) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, errorDetail{Code: codeTooLarge, Message: "request body is larger than " + strconv.FormatInt(mbe.Limit, 10) + " bytes"}
	}
	e := chat.AsError(err)
	if e == nil && errors.Is(err, context.Canceled) {
		// The client went away; nobody reads the answer.
		return 499, errorDetail{Code: chat.CodeInternal, Message: "request cancelled"}
	}
	if e == nil && errors.Is(err, hub.ErrClosed) {
		// The connection's hub client left the hub (it ended, or the
		// server is shutting down) while a frame of it was handled: a
		// long-poll POST answered from a channel that stopped under it.
		// A new connection does it.
		return http.StatusServiceUnavailable, errorDetail{Code: chat.CodeUnavailable, Message: "the connection has ended: connect again"}
	}
	if e == nil && errors.Is(err, context.DeadlineExceeded) {
		// The operation ran out of the server's time for it (opTimeout):
		// a database too slow to answer, or no connection of its pool
		// free for that long. The client may retry.
		log.Warn("operation timed out", "err", err)
		return http.StatusServiceUnavailable, errorDetail{Code: chat.CodeUnavailable, Message: "the server is too busy to answer in time; try again later"}
	}
	if e == nil {
		log.Error("internal error", "err", err)
		return http.StatusInternalServerError, errorDetail{Code: chat.CodeInternal, Message: "internal error"}
	}
	d := errorDetail{Code: e.Code, Message: e.Message, Field: e.Field}
	if e.RetryAfter > 0 || errors.Is(e, chat.ErrRateLimited) {
		// Rounded up, and never 0 for a 429, which always carries it: a
		// wait under a millisecond (or none: a window ending as it was
		// read) was left out, and a try after the rounded-down wait was
		// refused again.
		d.RetryAfterMS = max(1, (e.RetryAfter + time.Millisecond - 1).Milliseconds())
	}
	switch {
	case errors.Is(e, chat.ErrInvalid):
		return http.StatusBadRequest, d
	case errors.Is(e, chat.ErrNotFound):
		return http.StatusNotFound, d
	case errors.Is(e, chat.ErrForbidden):
		return http.StatusForbidden, d
	case errors.Is(e, chat.ErrConflict):
		return http.StatusConflict, d
	case errors.Is(e, chat.ErrUnauthorized):
		return http.StatusUnauthorized, d
	case errors.Is(e, chat.ErrRateLimited):
		return http.StatusTooManyRequests, d
	case errors.Is(e, chat.ErrUnavailable):
		return http.StatusServiceUnavailable, d
	}
	log.Error("error of unknown kind", "err", err)
	return http.StatusInternalServerError, errorDetail{Code: chat.CodeInternal, Message: "internal error"}
}

func (s *server) writeError(w http.ResponseWriter, err error) {
	status, d := classify(s.log, err)
	if d.RetryAfterMS > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt((d.RetryAfterMS+999)/1000, 10))
	}
	writeJSON(w, status, errorBody{Error: d})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	setJSONHeaders(w.Header())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeBody reads a JSON request body of at most MaxBodyBytes into v:
// one JSON value, by encoding/json's rules, but for strings that are not
// valid UTF-8, which it refuses (unmarshal).
func (s *server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return chat.Errorf(chat.ErrInvalid, chat.CodeBadJSON, "reading the request body: %v", err)
	}
	if err := unmarshal(data, v); err != nil {
		return chat.Errorf(chat.ErrInvalid, chat.CodeBadJSON, "request body is not valid JSON: %v", err)
	}
	return nil
}

// requireJSON refuses a request body that is not application/json: a
// plain HTML form cannot send one.
func requireJSON(r *http.Request) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		return &httpError{status: http.StatusUnsupportedMediaType, d: errorDetail{Code: chat.CodeInvalidField, Field: "Content-Type", Message: "request body must be application/json"}}
	}
	return nil
}

// httpError is a transport-level error with its own status.
type httpError struct {
	status int
	d      errorDetail
}

func (e *httpError) Error() string { return e.d.Message }

// fail writes err, whatever its kind.
func (s *server) fail(w http.ResponseWriter, err error) {
	var he *httpError
	if errors.As(err, &he) {
		writeJSON(w, he.status, errorBody{Error: he.d})
		return
	}
	s.writeError(w, err)
}

// Header values shared by every response. Header.Set makes a slice for
// each value it sets, several per request; these are assigned as they are
// instead. net/http copies the header map when it writes the header, and
// nothing edits a value in place: Add appends, which copies a slice whose
// capacity is its length.
var (
	hdrJSON    = []string{"application/json; charset=utf-8"}
	hdrNoStore = []string{"no-store"}
)

// setJSONHeaders sets the headers of an answer in JSON, which no cache
// keeps.
func setJSONHeaders(h http.Header) {
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
}

// handleErr makes a handler of fn, whose error, returned before it has
// written anything, fail answers.
func (s *server) handleErr(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			s.fail(w, err)
		}
	})
}
