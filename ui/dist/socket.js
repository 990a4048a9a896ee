// The WebSocket client: one connection to /api/ws that reconnects with
// back-off, re-opens rooms, fills gaps and retries unacknowledged sends,
// following "Staying in sync" in docs/protocol.md.
//
// Events (socket.on(type, fn)):
//   state        {state: 'connecting'|'connected'|'disconnected', retryAt?}
//   hello        the hello frame (user, limits)
//   opened       {room, online, reads}   reads: [{user_id, seq}] or undefined
//   messages     {roomId, messages}   new messages in seq order, never repeated
//   conv-message {roomId, message}   a message of a conversation not open here
//   presence     the presence frame of an open room
//   user-presence a presence frame without room_id: a friend went on- or offline
//   receipt      {room_id, user_id, seq}: another member's read position moved
//   removed      {room_id, reason}: the user left or lost a group; it is forgotten
//   ack          the ack frame
//   send-failed  {roomId, clientId, body, code, message}   the send was refused
//   error        an error frame not tied to a send ({transient: true} for rate limits)
//   auth-check   a connection failed before hello (the session may be gone)
//   session-ended  closed with 4001: do not reconnect
//   contact      a contact frame (a friend, request or block changed)
//   conversation a conversation frame (a direct message, open or not)
//   read         {room_id, seq}: the user's read position moved (any tab)
//
// Reconnects pass events_after (the newest user_seq seen), so the server
// replays the user's events missed meanwhile.

import { RoomSync } from './sync.js';

const MIN_DELAY = 500; // first reconnect delay, doubled per failure
const MAX_DELAY = 15000;
const PING_EVERY = 25000; // app-level ping, so a dead link is noticed
const DEAD_AFTER = 60000; // nothing received for this long: reconnect
const SYNC_TIMEOUT = 15000; // a sync reply that never came is asked again
const SESSION_ENDED = 4001;

export function newClientId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return 'c-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export class ChatSocket {
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.ready = false; // hello received on the current connection
    this.stopped = true;
    this.suspended = false;
    this.state = 'disconnected';
    this.attempt = 0;
    this.rooms = new Map(); // roomId → RoomSync for each open room
    this.pending = new Map(); // clientId → {roomId, clientId, body}, unacknowledged sends
    this.refs = new Map(); // ref → {type, roomId}
    this.nextRef = 1;
    this.limits = { max_message_len: 4000, max_frame_bytes: 32768 };
    this.handlers = new Map();
    this.userSeq = 0; // newest logged user event seen (user_seq): replayed after it on reconnect
    this.lastRx = 0;
    this.lastTx = 0;
    this.retryTimer = 0;
    this.tickTimer = 0;
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
    return this;
  }

  emit(type, data) {
    for (const fn of this.handlers.get(type) || []) {
      try {
        fn(data);
      } catch (err) {
        console.error(`parley: ${type} handler:`, err);
      }
    }
  }

  setState(state, extra = {}) {
    this.state = state;
    this.emit('state', { state, ...extra });
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.tickTimer = setInterval(() => this.tick(), 5000);
    this.connect();
  }

  // stop closes the connection for good and forgets all rooms and sends.
  stop() {
    this.stopped = true;
    this.suspended = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.tickTimer);
    this.drop(1000);
    this.rooms.clear();
    this.pending.clear();
    this.setState('disconnected');
  }

  // suspend closes the connection while the page is hidden in the
  // back/forward cache (pagehide), where it would otherwise stay open and
  // keep the user online; rooms and unacknowledged sends are kept.
  suspend() {
    if (this.stopped || this.suspended) return;
    this.suspended = true;
    clearTimeout(this.retryTimer);
    this.drop(1000);
    this.refs.clear();
    for (const rs of this.rooms.values()) rs.endSync();
    this.setState('disconnected');
  }

  // resume reconnects after suspend (pageshow); the server replays what was missed.
  resume() {
    if (!this.suspended) return;
    this.suspended = false;
    if (!this.stopped && !this.ws) this.connect();
  }

  // retryNow skips the back-off wait (e.g. the browser came back online).
  retryNow() {
    if (this.stopped || this.suspended || this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.ready = false;
    this.setState('connecting');
    let ws;
    try {
      // The server replays the user's events (contacts, conversations,
      // removals) missed since the newest one we saw.
      ws = new WebSocket(this.userSeq > 0 ? `${this.url}?events_after=${this.userSeq}` : this.url);
    } catch (err) {
      console.error('parley: websocket:', err);
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.lastRx = Date.now();
    ws.addEventListener('message', (e) => {
      if (ws !== this.ws) return;
      this.lastRx = Date.now();
      // The server may coalesce several JSON objects into one frame.
      for (const line of String(e.data).split('\n')) {
        if (!line.trim()) continue;
        let frame;
        try {
          frame = JSON.parse(line);
        } catch {
          console.warn('parley: unreadable frame:', line);
          continue;
        }
        this.handle(frame);
      }
    });
    ws.addEventListener('close', (e) => {
      if (ws === this.ws) this.closed(e.code);
    });
  }

  // drop detaches and closes the current connection without reacting to it.
  drop(code) {
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) {
      try {
        ws.close(code);
      } catch {
        ws.close();
      }
    }
  }

  closed(code) {
    const hadHello = this.ready;
    this.ws = null;
    this.ready = false;
    this.refs.clear();
    for (const rs of this.rooms.values()) rs.endSync();
    if (code === SESSION_ENDED) {
      this.stopped = true;
      clearInterval(this.tickTimer);
      this.setState('disconnected');
      this.emit('session-ended', {});
      return;
    }
    if (this.stopped) return;
    if (!hadHello) this.emit('auth-check', { code });
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    if (this.stopped || this.suspended) return;
    // Exponential back-off with jitter: half the step fixed, half random.
    const step = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt);
    const delay = step / 2 + Math.random() * (step / 2);
    this.attempt++;
    this.setState('disconnected', { retryAt: Date.now() + delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  // tick runs every few seconds: keep-alive, dead-link and lost-sync checks.
  tick() {
    if (this.stopped || !this.ws) return;
    const now = Date.now();
    if (now - this.lastRx > DEAD_AFTER) {
      this.drop(4002);
      this.closed(1006);
      return;
    }
    if (!this.ready) return;
    if (now - this.lastTx > PING_EVERY) this.raw({ type: 'ping' });
    for (const rs of this.rooms.values()) {
      const stuck = rs.syncing && now - rs.syncSince > SYNC_TIMEOUT;
      if (stuck || (!rs.syncing && rs.hasGap)) this.requestSync(rs);
    }
  }

  // raw sends one frame if the connection is ready; it reports whether it did.
  raw(frame) {
    if (!this.ws || !this.ready || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    this.lastTx = Date.now();
    return true;
  }

  ref(type, roomId) {
    const ref = String(this.nextRef++);
    this.refs.set(ref, { type, roomId });
    return ref;
  }

  // openRoom starts following a room whose messages up to `last` are shown.
  openRoom(roomId, last) {
    const rs = new RoomSync(roomId, last);
    this.rooms.set(roomId, rs);
    this.sendOpen(rs);
  }

  // markRead moves the read position of a conversation; it reports whether
  // the frame went out (the caller may fall back to REST).
  markRead(roomId, seq) {
    if (!this.ready) return false;
    return this.raw({ type: 'read', room_id: roomId, seq, ref: this.ref('read', roomId) });
  }

  // last is the highest seq shown of an open room (0 if not open).
  last(roomId) {
    const rs = this.rooms.get(roomId);
    return rs ? rs.last : 0;
  }

  // typing tells the others in an open conversation that we are typing,
  // at most every 2 s (the server drops more).
  typing(roomId) {
    if (!this.rooms.has(roomId)) return;
    const now = Date.now();
    this.typedAt = this.typedAt || new Map();
    if (now - (this.typedAt.get(roomId) || 0) < 2000) return;
    if (this.raw({ type: 'typing', room_id: roomId })) this.typedAt.set(roomId, now);
  }

  closeRoom(roomId) {
    if (!this.rooms.delete(roomId)) return;
    this.raw({ type: 'close', room_id: roomId });
  }

  // forget stops following a conversation the server no longer serves us
  // (removed from a group): nothing to close, nothing left to send there.
  forget(roomId) {
    this.rooms.delete(roomId);
    for (const [id, p] of this.pending) if (p.roomId === roomId) this.pending.delete(id);
  }

  sendOpen(rs) {
    const frame = { type: 'open', room_id: rs.roomId, ref: this.ref('open', rs.roomId) };
    if (rs.last > 0) frame.after = rs.last; // the server follows `opened` with a sync reply
    if (this.raw(frame) && frame.after) rs.beginSync();
  }

  requestSync(rs) {
    rs.beginSync();
    const sent = this.raw({ type: 'sync', room_id: rs.roomId, after: rs.last, ref: this.ref('sync', rs.roomId) });
    if (!sent) rs.endSync();
  }

  // fits reports whether a send of body stays under the frame limit; a frame
  // over it would get the connection closed (1009) again at every retry.
  fits(roomId, body) {
    const frame = JSON.stringify({ type: 'send', room_id: roomId, client_id: newClientId(), body });
    return new TextEncoder().encode(frame).length <= (this.limits.max_frame_bytes || 32768);
  }

  // send queues a text message; it goes out now or after the next reconnect.
  send(roomId, body) {
    if (this.typedAt) this.typedAt.delete(roomId); // typing after a send is news again
    const p = { roomId, clientId: newClientId(), body };
    this.pending.set(p.clientId, p);
    this.sendPending(p);
    return p;
  }

  sendPending(p) {
    this.raw({ type: 'send', room_id: p.roomId, client_id: p.clientId, body: p.body });
  }

  pendingFor(roomId) {
    return [...this.pending.values()].filter((p) => p.roomId === roomId);
  }

  // ingest feeds messages to a room's bookkeeping and emits what is new.
  ingest(roomId, messages) {
    const rs = this.rooms.get(roomId);
    if (!rs || !Array.isArray(messages)) return;
    const out = [];
    for (const m of messages) out.push(...rs.accept(m));
    if (out.length) this.emit('messages', { roomId, messages: out });
    if (rs.hasGap && !rs.syncing) this.requestSync(rs);
  }

  handle(f) {
    if (f.user_seq > this.userSeq) this.userSeq = f.user_seq;
    switch (f.type) {
      case 'hello':
        this.ready = true;
        this.attempt = 0;
        if (f.limits) this.limits = { ...this.limits, ...f.limits };
        this.setState('connected');
        this.emit('hello', f);
        // Re-open every room from where we are, then retry what was not acked.
        for (const rs of this.rooms.values()) this.sendOpen(rs);
        for (const p of this.pending.values()) this.sendPending(p);
        break;
      case 'opened': {
        this.refs.delete(f.ref);
        const rs = f.room && this.rooms.get(f.room.id);
        if (!rs) break;
        this.emit('opened', { room: f.room, online: f.online || [], reads: Array.isArray(f.reads) ? f.reads : undefined });
        if (!rs.syncing && f.room.last_seq > rs.last) this.requestSync(rs);
        break;
      }
      case 'sync': {
        this.refs.delete(f.ref);
        const rs = this.rooms.get(f.room_id);
        if (!rs) break;
        this.ingest(f.room_id, f.messages); // rs.syncing is still set: no new request
        const got = (f.messages || []).length;
        if (f.has_more && got) {
          this.requestSync(rs);
        } else {
          rs.endSync();
          // Still a hole (a message committed after the sync was answered)?
          // Ask again; if this reply brought nothing, wait a little first.
          if (rs.hasGap) {
            if (got) this.requestSync(rs);
            else setTimeout(() => this.rooms.get(rs.roomId) === rs && !rs.syncing && rs.hasGap && this.requestSync(rs), 1000);
          }
        }
        break;
      }
      case 'message':
        // Messages of conversations not open here (the user's other groups)
        // only update the conversation list.
        if (this.rooms.has(f.room_id)) this.ingest(f.room_id, [f.message]);
        else if (f.message) this.emit('conv-message', { roomId: f.room_id, message: f.message });
        break;
      case 'ack':
        this.pending.delete(f.client_id);
        this.emit('ack', f);
        if (f.message) this.ingest(f.room_id, [f.message]);
        break;
      case 'presence':
        if (f.room_id == null) this.emit('user-presence', f);
        else if (this.rooms.has(f.room_id)) this.emit('presence', f);
        break;
      case 'receipt':
        if (f.room_id && f.user_id && f.seq >= 0) this.emit('receipt', f);
        break;
      case 'removed':
        this.forget(f.room_id);
        this.emit('removed', f);
        break;
      case 'typing':
        if (this.rooms.has(f.room_id)) this.emit('typing', f);
        break;
      case 'error':
        this.handleError(f);
        break;
      case 'contact':
        this.emit('contact', f);
        break;
      case 'conversation':
        this.emit('conversation', f);
        break;
      case 'read':
        if (f.ref) this.refs.delete(f.ref);
        this.emit('read', { room_id: f.room_id, seq: f.seq });
        break;
      case 'pong':
      case 'closed':
        break;
      default:
        console.debug('parley: unhandled frame', f);
    }
  }

  handleError(f) {
    const sendKey = this.pending.has(f.client_id) ? f.client_id : f.ref;
    const p = this.pending.get(sendKey);
    if (p) {
      if (f.code === 'rate_limited') {
        // Nothing was stored: keep it pending and try again shortly.
        this.emit('error', { ...f, transient: true });
        setTimeout(() => this.pending.has(p.clientId) && this.sendPending(p), f.retry_after_ms || 1000);
        return;
      }
      this.pending.delete(sendKey);
      this.emit('send-failed', { ...p, code: f.code, message: f.message });
      return;
    }
    const r = this.refs.get(f.ref);
    this.refs.delete(f.ref);
    if (r && r.type === 'sync') {
      const rs = this.rooms.get(r.roomId);
      if (rs) rs.endSync();
    }
    this.emit('error', {
      ...f,
      request: r ? r.type : undefined,
      requestRoomId: r ? r.roomId : undefined,
      transient: f.code === 'rate_limited',
    });
  }
}
