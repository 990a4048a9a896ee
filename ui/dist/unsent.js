// The user's sends that the server has not acknowledged, kept in the
// tab's sessionStorage, so that a reload, or a tab the browser restores,
// shows them as pending again and sends them with their client IDs: the
// server stores each at most once (docs/protocol.md, "send"). A send
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

function valid(e) {
  return (
    e &&
    Number.isInteger(e.roomId) &&
    e.roomId > 0 &&
    typeof e.clientId === 'string' &&
    e.clientId.length > 0 &&
    e.clientId.length <= 64 &&
    typeof e.body === 'string'
  );
}

// Unsent keeps the unacknowledged sends of one user in this tab.
export class Unsent {
  constructor(userId) {
    this.key = PREFIX + userId;
    this.warned = false;
  }

  // load returns the kept sends, oldest first, and drops those of other users.
  load() {
    const s = storage();
    if (!s) return [];
    try {
      for (let i = s.length - 1; i >= 0; i--) {
        const k = s.key(i);
        if (k && k.startsWith(PREFIX) && k !== this.key) s.removeItem(k);
      }
      const list = JSON.parse(s.getItem(this.key) || '[]');
      return Array.isArray(list) ? list.filter(valid).slice(0, MAX_SENDS) : [];
    } catch (err) {
      this.warn(err);
      return [];
    }
  }

  // save keeps sends (in the order sent) in place of those kept before,
  // as many as the bounds allow, from the oldest.
  save(sends) {
    const s = storage();
    if (!s) return;
    const list = [];
    let chars = 2;
    for (const p of sends) {
      if (list.length >= MAX_SENDS) break;
      const e = { roomId: p.roomId, clientId: p.clientId, body: p.body, at: p.at, target: p.target, where: p.where };
      if (p.stuck) e.stuck = true; // not sent: shown so again, with Retry and Discard
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
