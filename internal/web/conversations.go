package web

import (
	"net/http"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// conversationJSON is a chat.Conversation on the wire: name for rooms,
// peer (id and name) for direct conversations.
type conversationJSON struct {
	ID           int64         `json:"id"`
	Kind         chat.ConvKind `json:"kind"`
	Name         string        `json:"name,omitempty"`
	Peer         *userRef      `json:"peer,omitempty"`
	CreatedAt    time.Time     `json:"created_at"`
	LastSeq      int64         `json:"last_seq"`
	ReadSeq      int64         `json:"read_seq"`
	Unread       int64         `json:"unread"`
	LastMessage  *chat.Message `json:"last_message"`
	LastActiveAt time.Time     `json:"last_active_at"`
	Members      int           `json:"members"`
}

func conversationOf(c chat.Conversation) conversationJSON {
	j := conversationJSON{
		ID: c.ID, Kind: c.Kind, Name: c.Name, CreatedAt: c.CreatedAt, LastSeq: c.LastSeq, ReadSeq: c.ReadSeq,
		Unread: c.Unread, LastMessage: c.LastMessage, LastActiveAt: c.LastActiveAt, Members: c.Members,
	}
	if c.Peer != nil {
		p := refOf(*c.Peer)
		j.Peer = &p
	}
	return j
}

// conversationFrame is the WebSocket frame of chat.EventConversation.
type conversationFrame struct {
	Type    string        `json:"type"`
	RoomID  int64         `json:"room_id"`
	Kind    chat.ConvKind `json:"kind"`
	Peer    *userRef      `json:"peer,omitempty"`
	Message *chat.Message `json:"message,omitempty"` // absent for a room entered quietly
	UserSeq int64         `json:"user_seq,omitempty"`
}

// readFrame is the WebSocket frame of chat.EventRead, and the reply to a
// read request.
type readFrame struct {
	Type   string `json:"type"`
	Ref    string `json:"ref,omitempty"`
	RoomID int64  `json:"room_id"`
	Seq    int64  `json:"seq"`
}

// readResponse answers POST /api/conversations/{id}/read.
type readResponse struct {
	RoomID  int64 `json:"room_id"`
	ReadSeq int64 `json:"read_seq"`
	Unread  int64 `json:"unread"`
}

func readOf(st chat.ReadState) readResponse {
	return readResponse{RoomID: st.ConvID, ReadSeq: st.ReadSeq, Unread: max(0, st.LastSeq-st.ReadSeq)}
}

func (s *server) handleConversations() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		cs, err := s.svc.Conversations(r.Context(), authFrom(r.Context()).User)
		if err != nil {
			return err
		}
		out := make([]conversationJSON, len(cs))
		for i, c := range cs {
			out[i] = conversationOf(c)
		}
		writeJSON(w, http.StatusOK, map[string][]conversationJSON{"conversations": out})
		return nil
	})
}

func (s *server) handleConversation() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		c, err := s.svc.ConversationFor(r.Context(), authFrom(r.Context()).User, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]conversationJSON{"conversation": conversationOf(c)})
		return nil
	})
}

func (s *server) handleMarkRead() http.Handler {
	type request struct {
		Seq *int64 `json:"seq"`
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
		if req.Seq == nil {
			return chat.Invalid(chat.CodeMissingField, "seq", "seq is required")
		}
		if err := s.allowRead(authFrom(r.Context()).User); err != nil {
			return err
		}
		st, err := s.svc.MarkRead(r.Context(), authFrom(r.Context()).User, id, *req.Seq)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, readOf(st))
		return nil
	})
}

func (s *server) handleDirect() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := memberPathID(r)
		if err != nil {
			return err
		}
		c, err := s.svc.DirectWith(r.Context(), authFrom(r.Context()).User, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]conversationJSON{"conversation": conversationOf(c)})
		return nil
	})
}

func (s *server) handleSendDirect() http.Handler {
	type response struct {
		Message      chat.Message     `json:"message"`
		Conversation conversationJSON `json:"conversation"`
	}
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		id, err := memberPathID(r)
		if err != nil {
			return err
		}
		req, err := s.decodeSend(w, r)
		if err != nil {
			return err
		}
		m, c, err := s.svc.SendDirect(r.Context(), authFrom(r.Context()).User, id, req.ClientID, *req.Body)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, response{Message: m, Conversation: conversationOf(c)})
		return nil
	})
}
