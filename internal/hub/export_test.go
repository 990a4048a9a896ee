package hub

import "github.com/parley-chat/parley/internal/chat"

// QueuedOps reports how many entries the queue of broker subscriptions
// and cancels holds.
func (h *Hub) QueuedOps() int {
	h.qmu.Lock()
	defer h.qmu.Unlock()
	return len(h.ops)
}

// RemovalsNoted reports how many conversations the topic of user userID
// keeps removals of (topic.removals), what it notes besides included.
func (h *Hub) RemovalsNoted(userID int64) int {
	tp := h.topicOf(chat.UserTopic(userID))
	if tp == nil {
		return 0
	}
	tp.dmu.Lock()
	defer tp.dmu.Unlock()
	return len(tp.removals)
}
