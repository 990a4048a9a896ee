// The user's sends that the server has not acknowledged, kept in the
// tab's sessionStorage, so that a reload, or a tab the browser restores,
// shows them as pending again and sends them with their client IDs: the
// server stores each at most once (docs/protocol.md, "send"). The first
// message to a friend, which goes over REST and makes the conversation,
// is kept the same way, and sent again over REST with its client ID. A send
// shown as not sent (it failed its last try) is kept so: after a reload it
// is not sent again until the user says, with Retry.
//
// sessionStorage, not localStorage: each tab owns the sends made in it,
// so no two tabs take up the same ones, nor a tab opened days later sends
// what a closed one left; a reload and a restored tab (the browser gives
// back its sessionStorage) keep them. A send is the same client ID
// wherever it goes (a duplicated tab copies the storage), so it is never
// stored twice. The sends are kept under the user's ID, dropped at
// sign-out (here, and in the other tabs by the tabs channel), and those
// of another user are dropped when one signs in: what a user wrote does
// not reach the next user of the browser. Storage that is unavailable or
// full (private browsing, quota) only leaves the sends in memory, as
// before.

const PREFIX = 'parley.unsent.';
const MAX_SENDS = 100; // kept, the oldest first; the rest stay in memory only
const MAX_CHARS = 256 * 1024; // of the kept JSON

// storage is the tab's sessionStorage, or null where the browser refuses it.
function storage() {
  try {
    return window.sessionStorage || null;
  } catch {
    return null;
  }
}

// valid reports whether e is a kept send: of a conversation (roomId), or
// a first message to a friend (first, peer), which has none yet.
function valid(e) {
  const to = e && (e.first === true ? e.roomId === 0 && e.peer && Number.isInteger(e.peer.id) && e.peer.id > 0 : Number.isInteger(e.roomId) && e.roomId > 0);
  return (
    to &&
    typeof e.clientId === 'string' &&
    e.clientId.length > 0 &&
    e.clientId.length <= 64 &&
    typeof e.body === 'string'
  );
}

// Unsent keeps the unacknowledged sends of one user in this tab: those of
// the socket (save) and the first messages to friends, which go over REST
// (saveFirst), together, under the same bounds.
export class Unsent {
  constructor(userId) {
    this.key = PREFIX + userId;
    this.warned = false;
    this.sends = []; // the socket's, as last saved or loaded
    this.firsts = []; // the first messages to friends, as last saved or loaded
  }

  // load returns the kept sends, oldest first, and drops those of other
  // users. The first messages to friends among them have first set.
  load() {
    const s = storage();
    if (!s) return [];
    let list;
    try {
      for (let i = s.length - 1; i >= 0; i--) {
        const k = s.key(i);
        if (k && k.startsWith(PREFIX) && k !== this.key) s.removeItem(k);
      }
      list = JSON.parse(s.getItem(this.key) || '[]');
      list = Array.isArray(list) ? list.filter(valid).slice(0, MAX_SENDS) : [];
    } catch (err) {
      this.warn(err);
      return [];
    }
    // Until one part is saved again, the other keeps what was loaded.
    this.sends = list.filter((e) => !e.first);
    this.firsts = list.filter((e) => e.first);
    return list;
  }

  // save keeps the socket's sends (in the order sent) in place of those
  // it kept before.
  save(sends) {
    this.sends = [...sends];
    this.write();
  }

  // saveFirst keeps the first messages to friends not yet answered (in
  // the order sent) in place of those kept before.
  saveFirst(firsts) {
    this.firsts = [...firsts];
    this.write();
  }

  // write keeps both parts, in the order sent, as many as the bounds
  // allow, from the oldest.
  write() {
    const s = storage();
    if (!s) return;
    const all = [];
    for (let i = 0, j = 0; i < this.sends.length || j < this.firsts.length; ) {
      const a = this.sends[i];
      const b = this.firsts[j];
      if (b && (!a || (b.at || 0) < (a.at || 0))) {
        all.push(b);
        j++;
      } else {
        all.push(a);
        i++;
      }
    }
    const list = [];
    let chars = 2;
    for (const p of all) {
      if (list.length >= MAX_SENDS) break;
      const e = { roomId: p.roomId, clientId: p.clientId, body: p.body, at: p.at, target: p.target, where: p.where };
      if (p.stuck) e.stuck = true; // not sent: shown so again, with Retry and Discard
      if (p.first) {
        e.first = true;
        e.peer = { id: p.peer.id, name: p.peer.name };
      }
      const n = JSON.stringify(e).length + 1;
      if (chars + n > MAX_CHARS) break;
      chars += n;
      list.push(e);
    }
    try {
      if (list.length) s.setItem(this.key, JSON.stringify(list));
      else s.removeItem(this.key);
    } catch (err) {
      // Full: what was kept before is out of date, and would be sent again.
      this.warn(err);
      this.clear();
    }
  }

  // clear drops the kept sends.
  clear() {
    try {
      storage()?.removeItem(this.key);
    } catch {
      // nothing kept, then
    }
  }

  warn(err) {
    if (this.warned) return;
    this.warned = true;
    console.warn('parley: unsent messages are not kept for a reload:', err && err.message);
  }
}
