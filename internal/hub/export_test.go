package hub

// QueuedOps reports how many entries the queue of broker subscriptions
// and cancels holds.
func (h *Hub) QueuedOps() int {
	h.qmu.Lock()
	defer h.qmu.Unlock()
	return len(h.ops)
}
