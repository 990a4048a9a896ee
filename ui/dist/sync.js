// Per-room sequence bookkeeping ("Staying in sync" in docs/protocol.md).
//
// A RoomSync knows the last seq delivered to the view. Messages are fed in
// as they come (live events, sync replies, acks) in any order; accept()
// returns those that can now be shown, in seq order, each exactly once.
// Messages beyond a hole wait in a buffer until the hole is filled by a sync.

export class RoomSync {
  constructor(roomId, last = 0) {
    this.roomId = roomId;
    this.last = last; // highest seq delivered
    this.buffer = new Map(); // seq → message, all > last + 1
    this.syncing = false; // a sync (or open with after) is in flight
    this.syncSince = 0;
    this.openTries = 0; // opens in a row the server could not answer
  }

  // accept takes one message and returns the messages now deliverable.
  accept(msg) {
    if (!msg || !(msg.seq > this.last) || this.buffer.has(msg.seq)) return [];
    this.buffer.set(msg.seq, msg);
    const out = [];
    while (this.buffer.has(this.last + 1)) {
      this.last++;
      out.push(this.buffer.get(this.last));
      this.buffer.delete(this.last);
    }
    return out;
  }

  // hasGap is true when messages wait behind a missing seq.
  get hasGap() {
    return this.buffer.size > 0;
  }

  beginSync(now = Date.now()) {
    this.syncing = true;
    this.syncSince = now;
  }

  endSync() {
    this.syncing = false;
  }
}
