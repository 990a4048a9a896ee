package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// groupJSON is a chat.Group on the wire, with its members when the caller
// asked for one group.
type groupJSON struct {
	ID          int64        `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	MaxMembers  int          `json:"max_members"`
	OwnerID     int64        `json:"owner_id"`
	CreatedAt   time.Time    `json:"created_at"`
	LastSeq     int64        `json:"last_seq"`
	Members     int          `json:"members"`
	MemberList  []memberJSON `json:"member_list,omitempty"`
}

type memberJSON struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	NameVersion int64     `json:"name_version,omitempty"` // as userRef's
	Role        chat.Role `json:"role"`
	JoinedAt    time.Time `json:"joined_at"`
}

func groupOf(g chat.Group, ms []chat.GroupMember) groupJSON {
	j := groupJSON{ID: g.ID, Name: g.Name, Description: g.Description, MaxMembers: g.MaxMembers, OwnerID: g.OwnerID,
		CreatedAt: g.CreatedAt, LastSeq: g.LastSeq, Members: g.Members}
	for _, m := range ms {
		j.MemberList = append(j.MemberList, memberJSON{ID: m.User.ID, Name: m.User.Name, NameVersion: m.User.NameVersion, Role: m.Role, JoinedAt: m.JoinedAt})
	}
	return j
}

// removedFrame is the WebSocket frame of chat.EventRemoved.
type removedFrame struct {
	Type    string `json:"type"`
	RoomID  int64  `json:"room_id"`
	Reason  string `json:"reason"`
	UserSeq int64  `json:"user_seq,omitempty"`
}

// memberPathID parses the {user_id} path value: a group's member, or the
// other user of a direct conversation.
func memberPathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("user_id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, chat.Invalid(chat.CodeInvalidField, "user_id", "user id must be a positive integer")
	}
	return id, nil
}

func (s *server) handleCreateGroup() http.Handler {
	type request struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		MaxMembers  int    `json:"max_members"`
	}
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		var req request
		if err := s.decodeBody(w, r, &req); err != nil {
			return err
		}
		u := authFrom(r.Context()).User
		g, err := s.svc.CreateGroup(r.Context(), u, req.Name, req.Description, req.MaxMembers)
		if err != nil {
			return err
		}
		return s.writeGroup(w, r, u, g.ID, http.StatusCreated)
	})
}

// writeGroup answers with group id as u sees it, members included, with
// status.
func (s *server) writeGroup(w http.ResponseWriter, r *http.Request, u chat.User, id int64, status int) error {
	g, ms, err := s.svc.Group(r.Context(), u, id)
	if err != nil {
		return err
	}
	writeJSON(w, status, map[string]groupJSON{"group": groupOf(g, ms)})
	return nil
}

func (s *server) handleGroup() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		return s.writeGroup(w, r, authFrom(r.Context()).User, id, http.StatusOK)
	})
}

func (s *server) handleUpdateGroup() http.Handler {
	type request struct {
		Name        *string `json:"name"`
		Description *string `json:"description"`
		MaxMembers  *int    `json:"max_members"`
	}
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		var req request
		if err := s.decodeBody(w, r, &req); err != nil {
			return err
		}
		u := authFrom(r.Context()).User
		if err := s.allowGroupChange(u); err != nil {
			return err
		}
		if _, err := s.svc.UpdateGroup(r.Context(), u, id, chat.GroupUpdate{Name: req.Name, Description: req.Description, MaxMembers: req.MaxMembers}); err != nil {
			return err
		}
		return s.writeGroup(w, r, u, id, http.StatusOK)
	})
}

func (s *server) handleDeleteGroup() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		if err := s.svc.DeleteGroup(r.Context(), authFrom(r.Context()).User, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// allowGroupChange counts a change of a group that posts to all its
// members (a rename, a new description or cap, a role, the ownership, a
// member added or removed) as one of u's REST sends: an admin must not
// flood the members with them. A member leaving is not counted (see
// handleRemoveGroupMember). The load tool (--groups) adds up to a
// thousand members at once: it follows Retry-After, and a benchmark's
// server runs with a high --send-rate and --send-burst.
func (s *server) allowGroupChange(u chat.User) error { return s.allowSend(u) }

func (s *server) handleAddGroupMember() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		userID, err := s.decodeUserID(w, r)
		if err != nil {
			return err
		}
		if err := s.allowGroupChange(authFrom(r.Context()).User); err != nil {
			return err
		}
		m, err := s.svc.AddGroupMember(r.Context(), authFrom(r.Context()).User, id, userID)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]chat.Message{"message": m})
		return nil
	})
}

func (s *server) handleRemoveGroupMember() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		userID, err := memberPathID(r)
		if err != nil {
			return err
		}
		// A member leaving is not counted, unlike a room left
		// (chat.Service.LeaveRoom): anyone may enter a room, so its
		// leaves bound the comings and goings, but a member is in a group
		// only by an add, which its admin's allowance paid for. And a
		// member must always be able to leave.
		u := authFrom(r.Context()).User
		if userID != u.ID {
			if err := s.allowGroupChange(u); err != nil {
				return err
			}
		}
		if err := s.svc.RemoveGroupMember(r.Context(), u, id, userID); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func (s *server) handleSetGroupRole() http.Handler {
	type request struct {
		Role chat.Role `json:"role"`
	}
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		userID, err := memberPathID(r)
		if err != nil {
			return err
		}
		var req request
		if err := s.decodeBody(w, r, &req); err != nil {
			return err
		}
		if err := s.allowGroupChange(authFrom(r.Context()).User); err != nil {
			return err
		}
		if err := s.svc.SetGroupRole(r.Context(), authFrom(r.Context()).User, id, userID, req.Role); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func (s *server) handleTransferGroup() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		userID, err := s.decodeUserID(w, r)
		if err != nil {
			return err
		}
		if err := s.allowGroupChange(authFrom(r.Context()).User); err != nil {
			return err
		}
		if err := s.svc.TransferGroup(r.Context(), authFrom(r.Context()).User, id, userID); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
