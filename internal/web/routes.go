package web

import (
	"io/fs"
	"net/http"
)

// addRoutes lists Parley's whole HTTP surface; docs/protocol.md documents it.
func (s *server) addRoutes(mux *http.ServeMux, ui fs.FS) {
	mux.Handle("GET /healthz", timed(s.handleHealth()))

	mux.Handle("POST /api/auth/code", timed(s.handleRequestCode()))
	mux.Handle("POST /api/auth/verify", timed(s.handleVerify()))
	mux.Handle("POST /api/auth/signout", s.authed(s.handleSignOut()))

	mux.Handle("GET /api/me", s.authed(s.handleMe()))
	mux.Handle("PATCH /api/me", s.authed(s.handleSetName()))

	mux.Handle("GET /api/rooms", s.authed(s.handleRooms()))
	mux.Handle("POST /api/rooms", s.authed(s.handleEnterRoom()))
	mux.Handle("GET /api/rooms/{id}", s.authed(s.handleRoom()))
	mux.Handle("DELETE /api/rooms/{id}/members/me", s.authed(s.handleLeaveRoom()))
	mux.Handle("GET /api/rooms/{id}/messages", s.authed(s.handleHistory()))
	mux.Handle("POST /api/rooms/{id}/messages", s.authed(s.handleSend()))
	mux.Handle("GET /api/rooms/{id}/online", s.authed(s.handleOnline()))

	mux.Handle("GET /api/conversations", s.authed(s.handleConversations()))
	mux.Handle("GET /api/conversations/{id}", s.authed(s.handleConversation()))
	mux.Handle("GET /api/conversations/{id}/messages", s.authed(s.handleHistory()))
	mux.Handle("POST /api/conversations/{id}/messages", s.authed(s.handleSend()))
	mux.Handle("POST /api/conversations/{id}/read", s.authed(s.handleMarkRead()))
	mux.Handle("GET /api/direct/{user_id}", s.authed(s.handleDirect()))
	mux.Handle("POST /api/direct/{user_id}/messages", s.authed(s.handleSendDirect()))

	mux.Handle("POST /api/groups", s.authed(s.handleCreateGroup()))
	mux.Handle("GET /api/groups/{id}", s.authed(s.handleGroup()))
	mux.Handle("PATCH /api/groups/{id}", s.authed(s.handleUpdateGroup()))
	mux.Handle("DELETE /api/groups/{id}", s.authed(s.handleDeleteGroup()))
	mux.Handle("POST /api/groups/{id}/members", s.authed(s.handleAddGroupMember()))
	mux.Handle("DELETE /api/groups/{id}/members/{user_id}", s.authed(s.handleRemoveGroupMember()))
	mux.Handle("PUT /api/groups/{id}/members/{user_id}/role", s.authed(s.handleSetGroupRole()))
	mux.Handle("POST /api/groups/{id}/owner", s.authed(s.handleTransferGroup()))

	mux.Handle("GET /api/users", s.authed(s.handleSearchUsers()))
	mux.Handle("GET /api/contacts", s.authed(s.handleContacts()))
	mux.Handle("POST /api/contacts", s.authed(s.handleRequestFriend()))
	mux.Handle("POST /api/contacts/{id}/accept", s.authed(s.handleAcceptFriend()))
	mux.Handle("DELETE /api/contacts/{id}", s.authed(s.handleRemoveContact()))
	mux.Handle("POST /api/blocks", s.authed(s.handleBlock()))
	mux.Handle("DELETE /api/blocks/{id}", s.authed(s.handleUnblock()))

	mux.Handle("GET /api/ws", s.authed(s.handleWS()))
	mux.Handle("GET /api/ws/check", s.authed(s.handleOpenCheck()))
	mux.Handle("GET /api/poll", s.pollAuthed(s.handlePoll()))
	mux.Handle("POST /api/poll", s.pollAuthed(s.handlePollSend()))
	mux.Handle("DELETE /api/poll", s.pollAuthed(s.handlePollEnd()))
	if s.cfg.ChannelsCompat {
		// {$}: the room's path and nothing under it, as Django's route
		// ws/chat/<room_name>/$; a longer one is no room of its first segment.
		mux.Handle("GET /ws/chat/{room}/{$}", timed(s.handleCompatWS()))
	}

	mux.Handle("/api/", s.handleNotFound(mux))
	mux.Handle("/", s.handleUI(ui))
}
