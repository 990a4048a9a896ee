package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// contactJSON is a chat.Contact on the wire: the other user as id and name
// (and the name's version) only.
type contactJSON struct {
	User     userRef   `json:"user"`
	State    string    `json:"state"`
	Since    time.Time `json:"since,omitzero"`
	Online   *bool     `json:"online,omitempty"` // friends only
	LastSeen time.Time `json:"last_seen,omitzero"`
}

func contactOf(c chat.Contact) contactJSON {
	j := contactJSON{User: refOf(c.User), State: c.State, Since: c.Since}
	if c.State == chat.StateFriends && !c.PresenceStale { // stale: the client keeps the newer it has
		j.Online, j.LastSeen = &c.Online, c.LastSeen
	}
	return j
}

// contactFrame is the WebSocket frame of chat.EventContact.
type contactFrame struct {
	Type string `json:"type"`
	contactJSON
	UserSeq int64 `json:"user_seq,omitempty"`
}

// userPathID parses the {id} of a user in the path.
func userPathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, chat.Invalid(chat.CodeInvalidField, "id", "user id must be a positive integer")
	}
	return id, nil
}

// userIDRequest is the body of POST /api/contacts and POST /api/blocks.
type userIDRequest struct {
	UserID int64 `json:"user_id"`
}

func (s *server) decodeUserID(w http.ResponseWriter, r *http.Request) (int64, error) {
	var req userIDRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		return 0, err
	}
	if req.UserID == 0 {
		return 0, chat.Invalid(chat.CodeMissingField, "user_id", "user_id is required")
	}
	if req.UserID < 0 {
		return 0, chat.Invalid(chat.CodeInvalidField, "user_id", "user_id must be a positive integer")
	}
	return req.UserID, nil
}

func (s *server) handleSearchUsers() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		params, err := queryParams(r.URL.RawQuery, "q")
		if err != nil {
			return err
		}
		us, err := s.svc.SearchUsers(r.Context(), authFrom(r.Context()).User, params["q"])
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string][]userRef{"users": userRefs(us)})
		return nil
	})
}

func (s *server) handleContacts() http.Handler {
	type response struct {
		Contacts []contactJSON `json:"contacts"`
		Blocked  []userRef     `json:"blocked"`
	}
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		cs, blocked, err := s.svc.Contacts(r.Context(), authFrom(r.Context()).User)
		if err != nil {
			return err
		}
		resp := response{Contacts: make([]contactJSON, len(cs)), Blocked: userRefs(blocked)}
		for i, c := range cs {
			resp.Contacts[i] = contactOf(c)
		}
		writeJSON(w, http.StatusOK, resp)
		return nil
	})
}

func (s *server) handleRequestFriend() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := s.decodeUserID(w, r)
		if err != nil {
			return err
		}
		c, err := s.svc.RequestFriend(r.Context(), authFrom(r.Context()).User, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]contactJSON{"contact": contactOf(c)})
		return nil
	})
}

func (s *server) handleAcceptFriend() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := userPathID(r)
		if err != nil {
			return err
		}
		c, err := s.svc.AcceptFriend(r.Context(), authFrom(r.Context()).User, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]contactJSON{"contact": contactOf(c)})
		return nil
	})
}

func (s *server) handleRemoveContact() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := userPathID(r)
		if err != nil {
			return err
		}
		if err := s.svc.RemoveContact(r.Context(), authFrom(r.Context()).User, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// handleBlock counts a block as one of the blocker's REST sends
// (allowSend): each is a write, and a contact event kept in the blocker's
// event log and sent to their connections (and to the one blocked, if the
// two had a relation); without it a user could block and unblock in a
// loop. An unblock is not counted: each undoes a counted block.
func (s *server) handleBlock() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := s.decodeUserID(w, r)
		if err != nil {
			return err
		}
		u := authFrom(r.Context()).User
		if err := s.allowSend(u); err != nil {
			return err
		}
		if err := s.svc.Block(r.Context(), u, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func (s *server) handleUnblock() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := userPathID(r)
		if err != nil {
			return err
		}
		if err := s.svc.Unblock(r.Context(), authFrom(r.Context()).User, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
