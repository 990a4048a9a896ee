// The live connection to the server: a WebSocket on /api/ws or, where no
// WebSocket gets through, long-polling on /api/poll (docs/protocol.md).
// ChatSocket reconnects with back-off, re-opens rooms, fills gaps and
// retries unacknowledged sends, following "Staying in sync" in
// docs/protocol.md, whichever transport carries the frames.
//
// Events (socket.on(type, fn)):
//   state        {state: 'connecting'|'connected'|'disconnected', transport: 'ws'|'poll', retryAt?, reason?}
//                reason 'limited': the server refused the connection for the user's limits (too many
//                connections on the node, or opened too often) and is asked again at retryAt
//   hello        the hello frame (user, limits); resumed: true when a long-poll channel's first one is given again
//   opened       {room, online, onlineCount, reads}   online: some of the onlineCount present; reads: [{user_id, seq}] or undefined
//   messages     {roomId, messages}   new messages in seq order, never repeated
//   conv-message {roomId, message}   a message of a conversation not open here
//   presence     the presence frame of an open room
//   online-count the online_count frame of an open room: in a large room, how many are present
//   user-presence a presence frame without room_id: a friend went on- or offline
//   resumed      the resumed frame: the server rebuilt a long-poll channel; frames of the gap that
//                no store keeps (renames, presence) are lost, and lists are to be loaded again
//   receipt      {room_id, positions: [{user_id, seq}]}: members' read positions moved (a receipt or receipts frame)
//   removed      {room_id, reason, last, unsent}: the user left a room or group (here or
//                elsewhere) or lost a group; it is forgotten, last is the highest seq
//                it had shown, and unsent holds its sends that were still
//                unacknowledged, now dropped (retake takes them back).
//                A removed that is old news (its user_seq at most that of this
//                connection's newest opened reply of the room) is not emitted.
//   ack          the ack frame
//   send-failed  {roomId, clientId, body, code, message}   the send was refused
//   send-retrying {roomId, clientId, body, code, message, retryAt}: the server could not
//                say whether the send was stored (unavailable, internal); it goes again,
//                with the same client_id, at retryAt
//   send-stuck   {roomId, clientId, body, code, message}: such a send failed its last try;
//                it stays pending, unsent, until resend(clientId) or discard(clientId)
//                (a send settled by a sync or the history, see settle, ends quietly instead)
//   open-wait    {roomId, retryAt}: the open of a room was refused for now (rate_limited), or the server could
//                not answer it (unavailable, internal); it is asked again at retryAt
//   error        an error frame not tied to a send ({transient: true} for rate limits)
//   session-ended  the session is gone (close code 4001, or 401 to a poll): do not reconnect
//   contact      a contact frame (a friend, request or block changed)
//   conversation a conversation frame (a direct message, open or not)
//   read         {room_id, seq}: the user's read position moved (any tab)
//
// Reconnects pass events_after (the newest user_seq seen), or the poll
// cursor, so the server replays the user's events missed meanwhile; a
// new long-poll channel (after WebSockets, or when the server no longer
// takes the cursor) passes events_after too.

import { RoomSync } from './sync.js';

const MIN_DELAY = 500; // first reconnect delay, doubled per failure
const MAX_DELAY = 15000;
const PING_EVERY = 25000; // nothing received or sent for this long: an app-level ping, so a dead link is noticed
const PONG_WAIT = 15000; // a ping answered by nothing for this long: the link is dead, reconnect
const DEAD_AFTER = 60000; // nothing received for this long: before hello, reconnect; long-polling after it, a ping (a poll may be held longer: --poll-hold)
const SYNC_TIMEOUT = 15000; // a sync reply that never came is asked again
const SESSION_ENDED = 4001;
const FALLBACK_AFTER = 2; // WebSocket failures before hello, the HTTP API up and an open allowed, before long-polling
const RESEND_FIRST = 1000; // wait before sending again a send of unknown outcome, doubled per try
const RESEND_MAX = 30000;
const RESEND_TRIES = 8; // tries of a send of unknown outcome before it is shown as failed

// UNSURE holds the error codes of a send whose outcome is unknown: the
// server could not tell whether it stored the message (docs/protocol.md,
// "Error codes"). Such a send goes again with the same client_id, which
// stores it at most once; any other error refused it, and nothing was
// stored.
const UNSURE = new Set(['unavailable', 'internal']);

// unsure reports whether a send refused with error code is of unknown
// outcome (UNSURE): it goes again with the same client_id.
export function unsure(code) {
  return UNSURE.has(code);
}

// resendWait is how long to wait before the next try of a send of
// unknown outcome that has failed tries times, and at least retryAfterMs
// (the server's word); 0 when it has had all its tries and is to be shown
// as not sent. The REST sends of the web app use it too.
export function resendWait(tries, retryAfterMs) {
  if (tries >= RESEND_TRIES) return 0;
  return Math.max(retryAfterMs || 0, Math.min(RESEND_MAX, RESEND_FIRST * 2 ** (tries - 1)));
}

// resendAfter resolves after ms: the wait before a REST send's next try,
// on the timers of the sends here.
export function resendAfter(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// newClientId is a send's client_id: the time in milliseconds, in 12
// hexadecimal digits, then 12 random bytes. IDs made later sort later, so
// the SQLite store's index of client IDs takes the sends of a moment on a
// few pages (docs/protocol.md); the random part keeps IDs made in the same
// millisecond, or by another tab, apart.
export function newClientId() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  const t = Date.now().toString(16).padStart(12, '0');
  return 'c-' + t + '-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// Transports. transport.open(userSeq, {onframes, onclose}) starts one
// connection (userSeq: the newest logged user event seen, -1 before any
// hello) and returns {send(frame) → bool, close(code), pings}:
// onframes(frames) gets each batch of frames received, in order (a
// WebSocket message, a poll answer, the reply to a posted frame; a batch
// may be empty), and onclose(code) is called once if the connection ends
// by itself, never after close(), with retryAfterMs when the server
// refused it for now (429 rate_limited) and said how long to wait. pings
// says whether the connection needs app-level pings to notice a dead link
// whenever it is quiet (a long-poll connection's polls are answered at
// least every --poll-hold: it pings only after a long silence).

// wsTransport connects to the WebSocket endpoint url.
export function wsTransport(url) {
  return {
    kind: 'ws',
    open(userSeq, { onframes, onclose }) {
      // The server replays the user's events (contacts, conversations,
      // removals) missed since the newest one we saw.
      const ws = new WebSocket(userSeq >= 0 ? `${url}?events_after=${userSeq}` : url);
      let done = false;
      ws.addEventListener('message', (e) => {
        if (done) return;
        // The server may coalesce several JSON objects into one frame.
        const frames = [];
        for (const line of String(e.data).split('\n')) {
          if (!line.trim()) continue;
          try {
            frames.push(JSON.parse(line));
          } catch {
            console.warn('parley: unreadable frame:', line);
          }
        }
        onframes(frames);
      });
      ws.addEventListener('close', (e) => {
        if (done) return;
        done = true;
        onclose(e.code);
      });
      return {
        pings: true,
        send(frame) {
          if (done || ws.readyState !== WebSocket.OPEN) return false;
          ws.send(JSON.stringify(frame));
          return true;
        },
        close(code) {
          done = true;
          try {
            ws.close(code);
          } catch {
            ws.close();
          }
        },
      };
    },
  };
}

// pollTransport long-polls the endpoint url ("Long-polling" in
// docs/protocol.md). Its connections share the cursor, so a new one
// carries on the channel of the last: the server gives again an answer
// that was lost, or rebuilds a channel it no longer has, and nothing is
// lost or given twice.
export function pollTransport(url) {
  const t = {
    kind: 'poll',
    cursor: '', // of the newest answer received
    hello: null, // the channel's hello, given again when a connection resumes it
    open(userSeq, handlers) {
      return new PollConnection(t, url, handlers, userSeq);
    },
  };
  return t;
}

// PollConnection is one long-poll connection: a loop of GETs held open by
// the server, and the frames to send POSTed one at a time, in order. It
// ends (onclose) when a request fails; ChatSocket then reconnects.
class PollConnection {
  constructor(t, url, { onframes, onclose }, userSeq) {
    this.t = t;
    this.url = url;
    this.userSeq = userSeq; // a new channel replays the user's events after it
    this.onframes = onframes;
    this.onclose = onclose;
    this.pings = false; // a poll is answered at least every --poll-hold
    this.done = false;
    this.ready = false; // the channel answered: frames may be posted
    this.queue = [];
    this.posting = false;
    this.abort = new AbortController();
    this.run();
  }

  async run() {
    if (this.t.cursor && this.t.hello) {
      // Resuming the channel: a ping is answered at once, whether the
      // server still has it or rebuilds it from the cursor. The hello
      // again makes ChatSocket re-open its rooms and resend what was not
      // acknowledged, as after any reconnect.
      const res = await this.request('POST', { type: 'ping' });
      if (!res) return;
      this.ready = true;
      this.onframes([{ ...this.t.hello, resumed: true }]);
    }
    while (!this.done) {
      const res = await this.request('GET');
      if (!res) return;
      if (res.cursor) this.t.cursor = res.cursor;
      const frames = Array.isArray(res.frames) ? res.frames : [];
      for (const f of frames) {
        if (f.type !== 'hello') continue;
        this.t.hello = f;
        this.ready = true;
      }
      this.onframes(frames);
    }
  }

  send(frame) {
    if (this.done || !this.ready) return false;
    this.queue.push(frame);
    if (!this.posting) this.flush();
    return true;
  }

  async flush() {
    this.posting = true;
    while (this.queue.length && !this.done) {
      const res = await this.request('POST', this.queue.shift());
      if (!res) break;
      this.onframes(Array.isArray(res.frames) ? res.frames : []);
    }
    this.posting = false;
  }

  // request makes one request with the current cursor and returns the
  // answer's body, or null when the connection ended (closed, or this
  // request failed and ended it).
  async request(method, frame, retried = false) {
    const init = {
      method,
      headers: { Accept: 'application/json' },
      credentials: 'same-origin',
      cache: 'no-store',
      signal: this.abort.signal,
    };
    if (frame !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(frame);
    }
    let res;
    let body = null;
    try {
      res = await fetch(this.at(), init);
      body = await res.json().catch(() => null);
    } catch {
      this.fail(1006); // unreachable, or aborted by close()
      return null;
    }
    if (this.done) return null;
    if (res.ok && body) return body;
    const e = (body && body.error) || {};
    if (res.status === 401) {
      this.fail(SESSION_ENDED);
      return null;
    }
    if (res.status === 410 && e.code === 'channel_ended' && body.cursor && !retried) {
      // This page ended the channel (close(), as it was hidden): the
      // answer's cursor carries on from it on a new one.
      this.t.cursor = body.cursor;
      return this.request(method, frame, true);
    }
    if (res.status === 400 && e.field === 'cursor') {
      // Not a cursor of this server (any more): start a new channel.
      this.t.cursor = '';
      this.t.hello = null;
    }
    console.warn(`parley: ${method} /api/poll: ${res.status} ${e.code || ''}`);
    // A 429 (too many connections, or opened too often) says how long to
    // wait; the reconnect waits at least that long.
    let wait = 0;
    if (res.status === 429) wait = e.retry_after_ms > 0 ? e.retry_after_ms : Number(res.headers.get('Retry-After')) * 1000 || 1000;
    this.fail(1006, wait);
    return null;
  }

  at() {
    if (this.t.cursor) return `${this.url}?cursor=${encodeURIComponent(this.t.cursor)}`;
    return this.userSeq >= 0 ? `${this.url}?events_after=${this.userSeq}` : this.url;
  }

  fail(code, retryAfterMs = 0) {
    if (this.done) return;
    this.done = true;
    this.abort.abort();
    this.onclose(code, retryAfterMs);
  }

  // close ends the connection and the server's channel now (the page is
  // closing), so that the user's presence ends without the idle timeout.
  // The cursor is kept: a later connection resumes from it (the server
  // answers 410 channel_ended with a cursor for a new channel).
  close() {
    if (this.done) return;
    this.done = true;
    this.abort.abort();
    if (!this.t.cursor) return;
    fetch(this.at(), { method: 'DELETE', credentials: 'same-origin', keepalive: true }).catch(() => {});
  }
}

export class ChatSocket {
  // wsUrl and pollUrl are the two endpoints. transport 'poll' forces
  // long-polling; otherwise the WebSocket is tried first. probe() is asked
  // when a WebSocket fails before its hello; it resolves to {up,
  // retryAfterMs}: up whether the HTTP API answers with the session valid
  // (a 401 also ends the session there), and retryAfterMs > 0 when the
  // server would refuse an open now for a limit (GET /api/ws/check), which
  // a page cannot read from a failed WebSocket; a boolean is up alone.
  // keep, if given, keeps the unacknowledged sends for a reload:
  // keep.save(sends) gets them, in the order sent, whenever they change
  // (see restore). userId, if given, is the signed-in user's, known
  // before the first hello: a page's history may come before it, and the
  // sends it settles (settle) are told by it.
  constructor({ wsUrl, pollUrl, transport, probe, keep, userId }) {
    this.keep = keep || null;
    this.pollUrl = pollUrl;
    this.transport = transport === 'poll' ? pollTransport(pollUrl) : wsTransport(wsUrl);
    this.probe = probe || (() => Promise.resolve(false));
    this.wsFailures = 0; // WebSocket failures before hello, the HTTP API up and an open allowed, since the last hello
    this.limited = false; // the last connection was refused for the user's limits (a 429, or the check said so)
    this.retryAt = 0; // of the reconnect under way
    this.conn = null; // the current connection of this.transport
    this.ready = false; // hello received on the current connection
    this.stopped = true;
    this.suspended = false;
    this.state = 'disconnected';
    this.attempt = 0;
    this.rooms = new Map(); // roomId → RoomSync for each open room
    this.pending = new Map(); // clientId → {roomId, clientId, body, at, tries, stuck, settled}, unacknowledged sends, in the order sent
    this.dropped = new Set(); // clientIds of sends forgotten with their conversation, or discarded: their refusal is no news
    this.retries = new Map(); // clientId → timer sending again a send refused for now (rate_limited, or of unknown outcome) on this connection
    this.refs = new Map(); // ref → {type, roomId}
    this.nextRef = 1;
    this.limits = { max_message_len: 4000, max_frame_bytes: 32768 };
    this.handlers = new Map();
    // The newest logged user event seen (user_seq), replayed after it on
    // reconnect: 0 when the log was empty at hello (the events logged
    // since are all missed), -1 before a hello.
    this.userSeq = -1;
    this.userId = userId || 0; // the sender of this user's messages, as the hello says
    this.openSeqs = new Map(); // roomId → user_seq of this connection's newest opened reply of it
    this.lastRx = 0;
    this.lastTx = 0;
    this.pingAt = 0; // when the ping that nothing answered yet was sent; 0 if none
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
    this.emit('state', { state, transport: this.transport.kind, ...extra });
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
    if (!this.stopped && !this.conn) this.connect();
  }

  // retryNow skips the back-off wait (e.g. the browser came back online).
  retryNow() {
    if (this.stopped || this.suspended || this.conn) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.ready = false;
    this.openSeqs.clear(); // a new connection's opens give new values
    this.setState('connecting');
    let conn = null;
    const handlers = {
      onframes: (frames) => {
        if (conn !== this.conn) return;
        this.lastRx = Date.now();
        this.pingAt = 0; // the link works
        for (const f of frames) {
          this.handle(f);
          if (conn !== this.conn) return; // a frame ended the connection
        }
      },
      onclose: (code, retryAfterMs) => {
        if (conn === this.conn) this.closed(code, retryAfterMs);
      },
    };
    this.lastRx = Date.now();
    this.pingAt = 0;
    try {
      conn = this.transport.open(this.userSeq, handlers);
    } catch (err) {
      console.warn(`parley: ${this.transport.kind}:`, err);
      this.closed(1006);
      return;
    }
    this.conn = conn;
  }

  // drop detaches and closes the current connection without reacting to it.
  drop(code) {
    const conn = this.conn;
    this.conn = null;
    this.ready = false;
    this.cancelRetries();
    if (conn) conn.close(code);
  }

  closed(code, retryAfterMs = 0) {
    const hadHello = this.ready;
    this.conn = null;
    this.ready = false;
    this.cancelRetries();
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
    // A refusal for a limit says so (a 429 to a poll); a WebSocket that
    // failed before its hello is taken as the one before it was until
    // the check answers, and any other failure as no refusal.
    if (retryAfterMs > 0) this.limited = true;
    else if (hadHello || this.transport.kind !== 'ws') this.limited = false;
    if (!hadHello && this.transport.kind === 'ws') this.checkFallback();
    this.scheduleReconnect(retryAfterMs);
  }

  // checkFallback runs when a WebSocket failed before its hello. It asks
  // the HTTP API (probe), which also notices a session that ended. When
  // that answers that the server would refuse an open now (too many
  // connections of the user, or opened too often: the upgrade was likely
  // refused so), the WebSocket is tried again once the server allows,
  // and the failure does not count. When it answers while WebSockets
  // keep failing that an open would be let in (a proxy or firewall that
  // lets HTTP through but no WebSocket), the page long-polls from then on.
  async checkFallback() {
    const transport = this.transport;
    let res = false;
    try {
      res = await this.probe();
    } catch {
      res = false;
    }
    const up = typeof res === 'object' && res !== null ? !!res.up : !!res;
    if (this.stopped || this.ready || this.transport !== transport) return;
    const wait = (up && res && res.retryAfterMs) || 0;
    if (wait <= 0) this.setLimited(false);
    if (!up) return;
    if (wait > 0) {
      // Refused by a limit: wait as the server says, then the WebSocket
      // again. A connection under way already (the back-off was shorter
      // than the probe) is left to end by itself.
      this.limited = true; // told with the wait (scheduleReconnect)
      if (this.conn || this.suspended) return;
      clearTimeout(this.retryTimer);
      this.attempt = Math.max(0, this.attempt - 1); // this failure's step again
      this.scheduleReconnect(wait);
      return;
    }
    if (++this.wsFailures < FALLBACK_AFTER) return;
    console.info('parley: no WebSocket gets through; long-polling instead');
    this.transport = pollTransport(this.pollUrl);
    this.attempt = 0;
    if (this.suspended) return;
    this.drop(1000);
    this.connect();
  }

  // setLimited records whether the server refuses the user's connections
  // for a limit now; a change while waiting to reconnect is told (state).
  setLimited(limited) {
    if (this.limited === limited) return;
    this.limited = limited;
    if (this.state === 'disconnected' && !this.conn && !this.stopped && !this.suspended) {
      this.setState('disconnected', this.waitState());
    }
  }

  // waitState is the state event's news of the reconnect under way.
  waitState() {
    return this.limited ? { retryAt: this.retryAt, reason: 'limited' } : { retryAt: this.retryAt };
  }

  // scheduleReconnect connects again after the back-off, and after at
  // least minWait (the server's retry_after_ms for an open it refused).
  scheduleReconnect(minWait = 0) {
    if (this.stopped || this.suspended) return;
    // Exponential back-off with jitter: half the step fixed (or the
    // server's wait if longer), half random, so that the tabs refused
    // together do not all come back at once.
    const step = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt);
    const delay = Math.max(step / 2, minWait) + Math.random() * (step / 2);
    this.attempt++;
    this.retryAt = Date.now() + delay;
    this.setState('disconnected', this.waitState());
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  // tick runs every few seconds: keep-alive, dead-link and lost-sync checks.
  // In a tab hidden for long the browser runs it only once a minute, so a
  // connection that had its hello is taken for dead only when a ping of
  // its own went unanswered: the time since the last frame received says
  // nothing there (the server's WebSocket pings, which keep the link up,
  // are not seen by the page), nor long-polling, where the server holds a
  // poll up to its --poll-hold, which may be longer than DEAD_AFTER. A
  // long-poll connection pings only after DEAD_AFTER of silence: its polls'
  // answers, empty ones too, say that the link is up.
  tick() {
    if (this.stopped || !this.conn) return;
    const now = Date.now();
    const dead = this.ready ? this.pingAt > 0 && now - this.pingAt > PONG_WAIT : now - this.lastRx > DEAD_AFTER;
    if (dead) {
      this.drop(4002);
      this.closed(1006);
      return;
    }
    if (!this.ready) return;
    const quiet = this.conn.pings
      ? now - this.lastRx > PING_EVERY || now - this.lastTx > PING_EVERY
      : now - this.lastRx > DEAD_AFTER;
    if (quiet && !this.pingAt) {
      if (this.raw({ type: 'ping' })) this.pingAt = now;
    }
    for (const rs of this.rooms.values()) {
      const stuck = rs.syncing && now - rs.syncSince > SYNC_TIMEOUT;
      if (stuck || (!rs.syncing && rs.hasGap)) this.requestSync(rs);
    }
  }

  // raw sends one frame if the connection is ready; it reports whether it did.
  raw(frame) {
    if (!this.conn || !this.ready || !this.conn.send(frame)) return false;
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
  // It returns the sends it dropped.
  forget(roomId) {
    this.rooms.delete(roomId);
    const dropped = [];
    for (const [id, p] of this.pending) {
      if (p.roomId !== roomId) continue;
      this.pending.delete(id);
      this.cancelRetry(id);
      this.dropped.add(id);
      dropped.push(p);
    }
    if (dropped.length) this.persist();
    return dropped;
  }

  // retake takes back sends that forget dropped, of a conversation that
  // turned out to be ours still: they go again with their client_id.
  retake(sends) {
    for (const p of sends) {
      this.dropped.delete(p.clientId);
      this.cancelRetry(p.clientId);
      p.tries = 0;
      p.stuck = false;
      this.pending.set(p.clientId, p);
      this.sendPending(p);
    }
    if (sends.length) this.persist();
  }

  // resend sends again, with its client_id, a send that failed its last
  // try (send-stuck); it is tried as often again.
  resend(clientId) {
    const p = this.pending.get(clientId);
    if (!p || !p.stuck) return;
    p.tries = 0;
    p.stuck = false;
    this.persist();
    this.sendPending(p);
  }

  // discard gives up a send that failed its last try. It may have been
  // stored all the same: if so, it arrives as any message does.
  discard(clientId) {
    const p = this.pending.get(clientId);
    if (!p || !p.stuck) return;
    this.pending.delete(clientId);
    this.cancelRetry(clientId);
    this.dropped.add(clientId); // the answer of a try still under way is no news
    this.persist();
  }

  // settle answers the pending send that message m of this user is: a
  // try stored it, which the server could not confirm. Arrived live, it
  // was published: the send is done. Arrived by a sync or with the
  // history (live false), nothing may have published it: it is settled,
  // shown as the message, no longer as pending, and goes again with its
  // client_id now, on the schedule of its tries, until an answer ends
  // it, so that the server publishes it for the others (docs/protocol.md).
  settle(m, live) {
    if (!m || !m.client_id || !this.userId || m.sender_id !== this.userId) return;
    const p = this.pending.get(m.client_id);
    if (!p) return;
    if (live) {
      this.pending.delete(m.client_id);
      this.cancelRetry(m.client_id);
      this.persist();
      return;
    }
    if (p.settled) return;
    p.settled = true;
    if (p.stuck) this.resend(p.clientId);
    else if (this.retries.has(p.clientId)) {
      this.cancelRetry(p.clientId);
      this.sendPending(p);
    }
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

  // send queues a text message; it goes out now or after the next
  // reconnect. meta holds what the caller keeps with it (kept for a
  // reload: target, where).
  send(roomId, body, meta = {}) {
    if (this.typedAt) this.typedAt.delete(roomId); // typing after a send is news again
    const p = { ...meta, roomId, clientId: newClientId(), body, at: Date.now(), tries: 0, stuck: false };
    this.pending.set(p.clientId, p);
    this.persist();
    this.sendPending(p);
    return p;
  }

  // restore takes back sends kept by keep before a reload, after any
  // made since, in their order: they are pending again and go, with their
  // client IDs, at the next hello; but those that had failed their last
  // try stay so, for the user to retry or discard, as they would have
  // without the reload (the user may have written them again meanwhile).
  restore(sends) {
    let n = 0;
    for (const e of sends) {
      if (this.pending.has(e.clientId) || this.dropped.has(e.clientId)) continue;
      const p = { ...e, tries: 0, stuck: !!e.stuck };
      this.pending.set(p.clientId, p);
      if (!p.stuck) this.sendPending(p);
      n++;
    }
    if (n) this.persist();
  }

  // persist hands the pending sends to keep.
  persist() {
    if (this.keep) this.keep.save(this.pending.values());
  }

  sendPending(p) {
    this.raw({ type: 'send', room_id: p.roomId, client_id: p.clientId, body: p.body });
  }

  // retryLater sends p again after wait, on this connection, if it is
  // still pending then: a new connection sends every pending send at its
  // hello, and a send forgotten with its conversation must not go.
  retryLater(p, wait) {
    this.cancelRetry(p.clientId);
    const conn = this.conn;
    const timer = setTimeout(() => {
      if (this.retries.get(p.clientId) !== timer) return;
      this.retries.delete(p.clientId);
      if (this.conn === conn && this.ready && this.pending.get(p.clientId) === p) this.sendPending(p);
    }, wait);
    this.retries.set(p.clientId, timer);
  }

  cancelRetry(clientId) {
    clearTimeout(this.retries.get(clientId));
    this.retries.delete(clientId);
  }

  // cancelRetries cancels the retries of the connection that ended.
  cancelRetries() {
    for (const timer of this.retries.values()) clearTimeout(timer);
    this.retries.clear();
  }

  // pendingFor lists the sends of a room to show as pending: not the
  // settled ones, whose messages are shown.
  pendingFor(roomId) {
    return [...this.pending.values()].filter((p) => p.roomId === roomId && !p.settled);
  }

  // ingest feeds messages to a room's bookkeeping and emits what is new;
  // live is false for a sync's.
  ingest(roomId, messages, live = true) {
    const rs = this.rooms.get(roomId);
    if (!rs || !Array.isArray(messages)) return;
    const out = [];
    for (const m of messages) {
      this.settle(m, live);
      out.push(...rs.accept(m));
    }
    if (out.length) this.emit('messages', { roomId, messages: out });
    if (rs.hasGap && !rs.syncing) this.requestSync(rs);
  }

  handle(f) {
    // An opened reply's user_seq is where the log stood at the open, not
    // an event received: the events up to it may still be on their way,
    // and a reconnect asks for those after the newest one received.
    if (f.type !== 'opened' && f.user_seq > this.userSeq) this.userSeq = f.user_seq;
    switch (f.type) {
      case 'hello':
        this.userSeq = Math.max(this.userSeq, 0); // user_seq 0: an empty log
        this.ready = true;
        this.attempt = 0;
        this.wsFailures = 0;
        this.limited = false;
        if (f.limits) this.limits = { ...this.limits, ...f.limits };
        if (f.user && f.user.id) this.userId = f.user.id;
        this.setState('connected');
        this.emit('hello', f);
        // Re-open every room from where we are, then retry what was not
        // acked, but for sends that failed their last try: the user says.
        for (const rs of this.rooms.values()) {
          rs.openTries = 0;
          this.sendOpen(rs);
        }
        for (const p of this.pending.values()) if (!p.stuck) this.sendPending(p);
        break;
      case 'opened': {
        this.refs.delete(f.ref);
        if (f.room) {
          if (f.user_seq > 0) this.openSeqs.set(f.room.id, f.user_seq);
          else this.openSeqs.delete(f.room.id); // an empty log: any logged removed is newer
        }
        const rs = f.room && this.rooms.get(f.room.id);
        if (!rs) break;
        rs.openTries = 0;
        this.emit('opened', {
          room: f.room,
          online: f.online || [],
          onlineCount: typeof f.online_count === 'number' ? f.online_count : undefined,
          reads: Array.isArray(f.reads) ? f.reads : undefined,
        });
        if (!rs.syncing && f.room.last_seq > rs.last) this.requestSync(rs);
        break;
      }
      case 'sync': {
        this.refs.delete(f.ref);
        const rs = this.rooms.get(f.room_id);
        if (!rs) break;
        this.ingest(f.room_id, f.messages, false); // rs.syncing is still set: no new request
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
        if (this.pending.delete(f.client_id)) this.persist();
        this.cancelRetry(f.client_id);
        this.emit('ack', f);
        if (f.message) this.ingest(f.room_id, [f.message]);
        break;
      case 'presence':
        if (f.room_id == null) this.emit('user-presence', f);
        else if (this.rooms.has(f.room_id)) this.emit('presence', f);
        break;
      case 'online_count':
        if (this.rooms.has(f.room_id)) this.emit('online-count', f);
        break;
      case 'receipt':
        if (f.room_id && f.user_id && f.seq >= 0) this.emit('receipt', { room_id: f.room_id, positions: [{ user_id: f.user_id, seq: f.seq }] });
        break;
      case 'receipts':
        if (f.room_id && Array.isArray(f.positions)) this.emit('receipt', { room_id: f.room_id, positions: f.positions });
        break;
      case 'removed':
        // Old news: it ended an earlier membership than the one this
        // connection's newest open of the room found, and stopped
        // nothing here (docs/protocol.md).
        if (f.user_seq > 0 && f.user_seq <= (this.openSeqs.get(f.room_id) || 0)) break;
        this.emit('removed', { ...f, last: this.last(f.room_id), unsent: this.forget(f.room_id) });
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
      case 'user':
        this.emit('user', f);
        break;
      case 'conversation':
        this.emit('conversation', f);
        break;
      case 'read':
        if (f.ref) this.refs.delete(f.ref);
        this.emit('read', { room_id: f.room_id, seq: f.seq });
        break;
      case 'resumed':
        // The server rebuilt a long-poll channel it had lost; the
        // conversations it could not restore are opened again here.
        for (const rs of this.rooms.values()) {
          if (!(f.rooms || []).includes(rs.roomId)) this.sendOpen(rs);
        }
        // Frames of the gap were not replayed (renames, presence): the
        // page loads its lists again.
        this.emit('resumed', f);
        break;
      case 'pong':
      case 'closed':
        break;
      default:
        console.debug('parley: unhandled frame', f);
    }
  }

  handleError(f) {
    const key = f.client_id || f.ref; // a send's refusal carries its client_id as ref
    if (key && this.dropped.delete(key)) return;
    const sendKey = this.pending.has(f.client_id) ? f.client_id : f.ref;
    const p = this.pending.get(sendKey);
    if (p) {
      if (f.code === 'rate_limited') {
        // Nothing was stored: keep it pending and try again shortly.
        this.emit('error', { ...f, transient: true });
        this.retryLater(p, f.retry_after_ms > 0 ? f.retry_after_ms : 1000);
        return;
      }
      if (unsure(f.code)) {
        // Maybe stored, maybe not: only the same client_id again tells,
        // and publishes it if it was. A new message would be stored twice.
        p.tries = (p.tries || 0) + 1;
        const wait = resendWait(p.tries, f.retry_after_ms);
        if (wait > 0) {
          this.emit('send-retrying', { ...p, code: f.code, message: f.message, retryAt: Date.now() + wait });
          this.retryLater(p, wait);
          return;
        }
        if (!p.settled) {
          p.stuck = true;
          this.persist();
          this.cancelRetry(p.clientId);
          this.emit('send-stuck', { ...p, code: f.code, message: f.message });
          return;
        }
      }
      // A settled send was stored and is shown: only its publishing failed.
      this.pending.delete(sendKey);
      this.persist();
      this.cancelRetry(p.clientId);
      if (!p.settled) this.emit('send-failed', { ...p, code: f.code, message: f.message });
      return;
    }
    const r = this.refs.get(f.ref);
    this.refs.delete(f.ref);
    if (r && r.type === 'sync') {
      const rs = this.rooms.get(r.roomId);
      if (rs) rs.endSync();
    }
    if (r && r.type === 'open' && (f.code === 'rate_limited' || unsure(f.code))) {
      // Not opened: nothing of the room would come. Ask again once the
      // server allows it, or, when it could not answer (unavailable,
      // internal), after a back-off, up to RESEND_TRIES times in a row, on
      // this connection (a new one opens it anyway).
      const rs = this.rooms.get(r.roomId);
      if (rs && !(unsure(f.code) && rs.openTries >= RESEND_TRIES)) {
        rs.endSync(); // the sync an open with after would have brought
        const conn = this.conn;
        let wait = f.retry_after_ms > 0 ? f.retry_after_ms : 1000;
        if (unsure(f.code)) {
          rs.openTries = (rs.openTries || 0) + 1;
          wait = Math.max(f.retry_after_ms || 0, Math.min(RESEND_MAX, RESEND_FIRST * 2 ** (rs.openTries - 1)));
        }
        this.emit('open-wait', { roomId: rs.roomId, retryAt: Date.now() + wait });
        setTimeout(() => {
          if (this.rooms.get(rs.roomId) === rs && this.conn === conn && this.ready) this.sendOpen(rs);
        }, wait);
        return;
      }
    }
    this.emit('error', {
      ...f,
      request: r ? r.type : undefined,
      requestRoomId: r ? r.roomId : undefined,
      transient: f.code === 'rate_limited',
    });
  }
}
