// Parley web app: sign-in, room list and the open room.
//
// All user-supplied text (names, message bodies) goes into the page through
// textContent / createTextNode only; the web addresses in a body become
// links whose href, set as an attribute, is an http: or https: URL
// (linkParts).

import { api, setUnauthorizedHandler } from './api.js';
import { linkParts } from './links.js';
import { ChatSocket, newClientId, resendAfter, resendWait, unsure } from './socket.js';
import { Unsent } from './unsent.js';

const $ = (id) => document.getElementById(id);

// h creates an element with a class and, optionally, text.
function h(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text != null) e.textContent = text;
  return e;
}

// iso isolates an element of text users wrote (a name, a message) from the
// page's text around it, as <bdi> does: its direction is its own text's
// (dir="auto"), and a right-to-left name, or a body's direction controls,
// neither draw the page's words, punctuation and digits beside it into
// their run nor reorder them ("מיכל: 5 apples" is not "5 :מיכל apples").
function iso(el) {
  el.dir = 'auto';
  return el;
}

// isoText isolates user text s inside plain text, where no element can
// (a placeholder, a line set as textContent): between U+2068 FIRST STRONG
// ISOLATE and U+2069 POP DIRECTIONAL ISOLATE, which do what iso does.
function isoText(s) {
  return `\u2068${s}\u2069`;
}

// isoParts fills el with parts: strings are the page's text, {text}
// objects user text, each isolated.
function isoParts(el, parts) {
  for (const part of parts) {
    if (typeof part === 'string') el.append(part);
    else el.append(iso(h('bdi', null, part.text)));
  }
  return el;
}

// trimSpace is the server's trimming (Go's strings.TrimSpace): white
// space is Unicode's White_Space, as Go's unicode.IsSpace has it, not
// JavaScript's \s and trim(), which take U+FEFF (not white space, and
// refused in a name) and leave U+0085 NEXT LINE (white space).
function trimSpace(s) {
  return s.replace(/^\p{White_Space}+|\p{White_Space}+$/gu, '');
}

// fields is the server's form of a name: its words, split at white
// space, one space between each (Go's strings.Fields, joined).
function fields(s) {
  return trimSpace(s).replace(/\p{White_Space}+/gu, ' ');
}

// SHOWS matches a character that is seen: neither white space nor one that
// shows nothing (format characters such as zero-width spaces, and the
// rest of Default_Ignorable_Code_Point). A message, or a name, with none is
// blank, and the server refuses it as empty.
const SHOWS = /[^\p{White_Space}\p{Cf}\p{Default_Ignorable_Code_Point}]/u;

function showsSomething(s) {
  return SHOWS.test(s);
}

// ROOM_NAME is the server's rule for a room name in NFC: letters and digits,
// each with any combining marks (accents, Indic and Thai vowel signs),
// '-' and '_'; the zero-width non-joiner and joiner (U+200C, U+200D) after
// a letter or mark, as Persian and the Indic scripts need them (می‌خواهم,
// क्‍ष). Characters that show nothing, and joiners where they join
// nothing, the server refuses itself.
const ROOM_NAME = /^(?:[\p{L}\p{Nd}][\p{M}\u200c\u200d]*|[_-])+$/u;
const GROUP_GAP_MS = 5 * 60 * 1000; // a sender's messages further apart start a new group
const PAGE = 50;

const state = {
  view: 'loading',
  me: null,
  email: '', // the address a code was sent to
  socket: null,
  everConnected: false,
  room: null, // the open room
  typing: new Map(), // user id → {name, until}: who is typing in the open conversation
  target: '', // lower-cased name of the room being entered or open
  entering: 0, // increases with each room entry; stale answers are dropped
  oldest: 0, // lowest seq shown
  hasOlder: false,
  loadingOlder: false,
  online: new Map(), // user id → User
  onlineCount: 0, // how many have the open room open: more than online.size in a large room
  openWait: 0, // when the open room's refused open is asked again (0: not waiting)
  onlineFetch: false, // a GET of the online list is under way
  onlineVersion: 0, // counts the frames that change the online list or its count
  pendingEls: new Map(), // client id → element of an unacknowledged send
  roomsTimer: 0,
  roomsSoon: null,
  rooms: { joined: [], active: [] },
  composerTimer: 0,
  roomTimer: 0,
  pinned: true, // the message list was scrolled to the bottom
  hushes: 0, // counts hushLog calls
  loaded: false, // the open conversation's first page is shown
  convs: new Map(), // conversation id → Conversation (GET /api/conversations, kept live)
  convsSoon: null,
  contacts: new Map(), // user id → Contact
  blocked: new Map(), // user id → User the user blocked
  contactsVersion: 0, // counts contact frames
  convsVersion: 0, // counts read frames, conversations new and groups dropped: a list read meanwhile is stale
  results: null, // the last people search: [User] or null
  peopleTimer: 0,
  peopleToken: 0,
  cache: new Map(), // conversation id → what was shown when we switched away
  drafts: new Map(), // targetOf(conversation) → what was typed there and not sent
  unsent: new Map(), // targetOf(conversation) → {body, why}: a send that failed while it was not shown
  firstSends: new Map(), // client id → first message to a friend, over REST, not yet answered (sendFirstDirect)
  readSent: new Map(), // conversation id → highest seq sent as read
  readUnsure: new Map(), // conversation id → seq sent as read on the connection, not answered yet
  readQueue: new Map(), // conversation id → {seq, timer, at}: the read position to send, and when one last went
  names: new Map(), // user id → name, of everyone seen (for group event lines)
  nameVersions: new Map(), // user id → version of the newest name a user frame or a list gave
  presence: new Map(), // user id → {online, last_seen, tick}: friends on- or offline anywhere
  presenceTick: 0, // counts what set a presence: of the tick it had when set, the newest
  reads: new Map(), // conversation id → Map(user id → read seq) of the other members
  group: null, // the open group with its member list (GET /api/groups/{id})
  groupSoon: 0,
  ended: '', // why the open group can no longer be used ('' while it can)
};

const CACHE_MAX = 20; // conversations whose shown history is kept

// ---------------------------------------------------------------- helpers

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const dayYearFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'long' });
const relFmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

function dayKey(d) {
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

// dayLabel names the day of d: today or yesterday in the page's language
// ("Heute", "Gestern"), its date for an older day.
function dayLabel(d) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(d) === dayKey(today)) return capitalized(relFmt.format(0, 'day'));
  if (dayKey(d) === dayKey(yesterday)) return capitalized(relFmt.format(-1, 'day'));
  return d.getFullYear() === today.getFullYear() ? dayFmt.format(d) : dayYearFmt.format(d);
}

// capitalized starts s, a label on its own, with a capital as a sentence
// would ("today" in English, "heute" in German are lower case).
function capitalized(s) {
  const first = String.fromCodePoint(s.codePointAt(0) || 32).trim();
  return first ? first.toLocaleUpperCase(relFmt.resolvedOptions().locale) + s.slice(first.length) : s;
}

function displayName(id, name) {
  return id === 0 ? 'anonymous' : name || 'someone';
}

function initial(name) {
  const first = [...(name || '?').trim()][0] || '?';
  return first.toUpperCase();
}

// avatar returns a round badge with the initial; the colour follows the id.
function avatar(id, name) {
  const a = h('span', `avatar ${id ? `hue-${id % 8}` : 'hue-none'}`, initial(name));
  a.setAttribute('aria-hidden', 'true');
  return a;
}

function setHidden(el, hidden) {
  el.hidden = hidden;
}

// learnName remembers a user's name, for event lines that name them by
// id, and the name's version where known (a list's name_version): a user
// frame of an older name, told late, is then ignored (onRenamed).
function learnName(id, name, version) {
  if (id && name && noteNameVersion(id, version)) state.names.set(id, name);
}

// noteNameVersion notes version as that of the newest name of user id the
// page has, unless it has a newer, and reports whether it had none newer.
// Two renames told by two nodes may come in the order opposite to theirs,
// and a stale one may come after a list read later: an older name than
// one shown stays unshown. An unknown version (absent, 0) is as new as any.
function noteNameVersion(id, version) {
  const v = Number.isSafeInteger(version) ? version : 0;
  if (v <= 0) return true;
  if (v < (state.nameVersions.get(id) || 0)) return false;
  state.nameVersions.set(id, v);
  return true;
}

// newestName learns a user's name from a list, with its version, and
// returns the name to show: the list's, unless the page has a newer one
// (a user frame that came while the list was read), which it keeps.
function newestName(id, name, version) {
  learnName(id, name, version);
  const v = Number.isSafeInteger(version) ? version : 0;
  if (v > 0 && v < (state.nameVersions.get(id) || 0)) return state.names.get(id) || name;
  return name;
}

// nameOf is the name to show for a user id in an event line.
function nameOf(id, fallback) {
  if (state.me && id === state.me.id) return 'you';
  return state.names.get(id) || fallback || 'a former member';
}

// relativeTime says how long ago an RFC 3339 time was ("5 minutes ago").
function relativeTime(iso) {
  const t = Date.parse(iso || '');
  if (!t) return '';
  const s = Math.round((t - Date.now()) / 1000);
  const steps = [
    [60, 'second'],
    [3600, 'minute', 60],
    [86400, 'hour', 3600],
    [604800, 'day', 86400],
    [Infinity, 'week', 604800],
  ];
  if (Math.abs(s) < 45) return 'just now';
  for (const [limit, unit, div = 1] of steps) {
    if (Math.abs(s) < limit) return relFmt.format(Math.round(s / div), unit);
  }
  return '';
}

// presenceText describes a user's presence, or '' when it is unknown.
function presenceText(userId) {
  const p = state.presence.get(userId);
  if (!p) return '';
  if (p.online) return 'Online';
  const ago = p.last_seen ? relativeTime(p.last_seen) : '';
  return ago ? `Offline · last seen ${ago}` : 'Offline';
}

// withPresence wraps an avatar with a dot showing whether the user is
// online, when that is known (data-online is "true" or "false").
function withPresence(av, userId) {
  const p = state.presence.get(userId);
  if (!p) return av;
  const wrap = h('span', 'avatar-wrap');
  const dot = h('span', `presence-dot ${p.online ? 'is-online' : 'is-offline'}`);
  dot.dataset.online = String(!!p.online);
  dot.dataset.userId = String(userId);
  if (!p.online && p.last_seen) dot.dataset.lastSeen = p.last_seen;
  const text = presenceText(userId);
  dot.title = text;
  dot.setAttribute('role', 'img');
  dot.setAttribute('aria-label', text);
  wrap.append(av, dot);
  return wrap;
}

// setPresence records a friend's presence from a contact or presence frame,
// or from the contact list; without an online field it changes nothing.
function setPresence(userId, online, lastSeen) {
  if (typeof online !== 'boolean') return false;
  state.presence.set(userId, { online, last_seen: online ? undefined : lastSeen, tick: ++state.presenceTick });
  return true;
}

// presenceSetSince reports whether a user's presence was set after tick
// (state.presenceTick then).
function presenceSetSince(userId, tick) {
  const p = state.presence.get(userId);
  return !!p && p.tick > tick;
}

// busy disables a button while fn runs.
async function busy(button, fn) {
  if (button.disabled) return;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// parseHash reads "#room/NAME" and "#login?email=ADDRESS".
function parseHash() {
  const hash = location.hash.replace(/^#/, '');
  if (hash.startsWith('room/')) return { room: safeDecode(hash.slice(5)).normalize('NFC') };
  if (/^dm\/\d+$/.test(hash)) return { dm: Number(hash.slice(3)) };
  if (/^conv\/\d+$/.test(hash)) return { conv: Number(hash.slice(5)) };
  if (hash === 'login' || hash.startsWith('login?')) {
    const out = { login: true, email: '' };
    // Decoded by hand: URLSearchParams would turn a "+" in an address into a space.
    for (const pair of (hash.split('?')[1] || '').split('&')) {
      const [k, v = ''] = pair.split('=');
      if (k === 'email') out.email = safeDecode(v).trim();
    }
    return out;
  }
  return {};
}

function clearHash() {
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
}

function setView(view) {
  state.view = view;
  $('app').dataset.view = view;
}

// ---------------------------------------------------------------- sign-in

function authError(msg) {
  $('auth-error').textContent = msg || '';
  setHidden($('auth-error'), !msg);
}

function authInfo(msg) {
  $('auth-info').textContent = msg || '';
  setHidden($('auth-info'), !msg);
}

function showStep(step) {
  for (const s of ['email', 'code', 'name']) setHidden($(`step-${s}`), s !== step);
  authError('');
  authInfo('');
  const focus = { email: 'email', code: 'code', name: 'display-name' }[step];
  requestAnimationFrame(() => $(focus).focus());
}

// showSignin leaves the app (if in it) and shows the email step.
function showSignin(message) {
  leaveChat();
  state.me = null;
  setView('signin');
  const hash = parseHash();
  if (hash.login && hash.email) $('email').value = hash.email;
  $('code').value = '';
  showStep('email');
  if (message) authInfo(message);
  document.title = 'Sign in · Parley';
}

function showNameStep() {
  setView('signin');
  $('display-name').value = '';
  showStep('name');
  document.title = 'Welcome · Parley';
}

// The server's limits on names, in characters (code points) of the name
// it keeps: in NFC, with inner white space collapsed. An input's maxlength
// counts UTF-16 units instead, and would silently cut a name of emoji (two
// units each) to half of what the server takes.
const MAX_USER_NAME = 40;
const MAX_GROUP_NAME = 64;
const MAX_GROUP_DESC = 500;

// tooLong says why a name s is over max characters, or ''.
function tooLong(s, max, what) {
  return overBy([...fields(s).normalize('NFC')].length, max, what);
}

// descTooLong says why a group description s (trimmed) is over
// MAX_GROUP_DESC characters, or ''. The server keeps a description as
// it is written, its line breaks and composing accents included, and
// counts each of its characters (code points).
function descTooLong(s) {
  return overBy([...s].length, MAX_GROUP_DESC, 'The description is');
}

function overBy(n, max, what) {
  return n > max ? `${what} ${n} characters long; the limit is ${max}.` : '';
}

function looksLikeEmail(s) {
  return /^[^\s@]+@[^\s@]+$/.test(s);
}

async function onSendCode(e) {
  e.preventDefault();
  const email = $('email').value.trim();
  if (!looksLikeEmail(email)) {
    authError('Enter your email address, like you@example.com.');
    $('email').focus();
    return;
  }
  await busy($('send-code'), async () => {
    try {
      await api.requestCode(email);
      state.email = email;
      $('code-email').textContent = email;
      $('code').value = '';
      showStep('code');
      authInfo('Check your inbox: the code is valid for 10 minutes.');
    } catch (err) {
      authError(err.message);
    }
  });
}

function onHaveCode() {
  const email = $('email').value.trim();
  if (!looksLikeEmail(email)) {
    authError('Enter the email address the code was sent to.');
    $('email').focus();
    return;
  }
  state.email = email;
  $('code-email').textContent = email;
  showStep('code');
}

async function onResendCode() {
  await busy($('resend-code'), async () => {
    authError('');
    try {
      await api.requestCode(state.email);
      $('code').value = '';
      authInfo('A new code is on its way. The codes sent before it work too, until they expire.');
      $('code').focus();
    } catch (err) {
      authInfo('');
      authError(err.message);
    }
  });
}

async function onVerify(e) {
  e.preventDefault();
  const code = $('code').value.replace(/\s+/g, '');
  if (!/^\d{6}$/.test(code)) {
    authError('The code has 6 digits.');
    $('code').focus();
    return;
  }
  await busy($('verify'), async () => {
    try {
      const res = await api.verify(state.email, code);
      state.me = res.user;
      if (res.new_user || !res.user.name) showNameStep();
      else enterChat();
    } catch (err) {
      authError(err.message);
      $('code').select();
    }
  });
}

async function onSaveName(e) {
  e.preventDefault();
  const name = trimSpace($('display-name').value);
  if (!showsSomething(name)) {
    authError('Choose a name people will see next to your messages.');
    $('display-name').focus();
    return;
  }
  const long = tooLong(name, MAX_USER_NAME, 'The name is');
  if (long) {
    authError(long);
    $('display-name').focus();
    return;
  }
  await busy($('save-name'), async () => {
    try {
      state.me = await api.setName(name);
      enterChat();
    } catch (err) {
      authError(err.message);
    }
  });
}

async function signOut() {
  showError('signout-error', '');
  // Whose sends to drop, and whose socket keeps them, as of now: the
  // server ends the session's WebSockets as it signs out, and the page may
  // learn of that, and leave the chat, before the answer comes.
  const id = state.me && state.me.id;
  const socket = state.socket;
  try {
    await api.signOut();
  } catch (err) {
    // Only the server can end the session (its cookie is HttpOnly): while
    // it lives on, saying "signed out" would leave the next user of this
    // computer in the account. A 401 means it has ended.
    if (err.status !== 401) {
      const msg = `You are still signed in: ${err.message}`;
      if (state.view === 'chat') showError('signout-error', msg);
      else authError(msg);
      return;
    }
  }
  // The sends not yet acknowledged go with the session, here and in the
  // user's other tabs: they are not for the next user of the browser.
  if (id) {
    if (socket) socket.keep = null;
    new Unsent(id).clear();
    if (tabs) tabs.postMessage({ signedOut: id });
  }
  clearHash();
  showSignin('You are signed out.');
}

// ---------------------------------------------------------------- the app

function enterChat() {
  if (location.hash.startsWith('#login')) clearHash();
  setView('chat');
  renderMe();
  learnName(state.me.id, state.me.name, state.me.name_version);
  if (!state.socket) startSocket();
  watchDay();
  refreshRooms();
  refreshConversations();
  refreshContacts();
  clearInterval(state.roomsTimer);
  state.roomsTimer = setInterval(() => {
    refreshRooms();
    refreshConversations();
    renderPeople(); // "last seen" times
  }, 30000);
  route();
}

// leaveChat tears the app down (sign-out, session ended).
function leaveChat() {
  stopRenewal();
  clearInterval(state.roomsTimer);
  clearTimeout(state.roomsSoon);
  state.roomsSoon = null;
  stopWatchingDay();
  if (state.socket) state.socket.stop();
  state.socket = null;
  state.everConnected = false;
  closeRoom();
  state.rooms = { joined: [], active: [] };
  renderRooms();
  clearTimeout(state.convsSoon);
  state.convsSoon = null;
  state.convs = new Map();
  state.contacts = new Map();
  state.blocked = new Map();
  state.nameVersions.clear();
  state.results = null;
  state.cache.clear();
  state.drafts.clear();
  state.unsent.clear();
  state.firstSends.clear();
  $('composer').value = '';
  state.readSent.clear();
  state.readUnsure.clear();
  dropReads();
  state.names.clear();
  state.presence.clear();
  state.reads.clear();
  // What this user typed in the sidebar, and what the page said of it,
  // is not for the next one to sign in here.
  $('people-search').value = '';
  clearTimeout(state.peopleTimer);
  ++state.peopleToken; // a search under way answers no one
  peopleInfo('');
  $('room-input').value = '';
  roomHint('');
  showError('signout-error', '');
  renderConversations();
  renderPeople();
  // Every dialog of the chat (profile, new group, group settings): a
  // modal one left open would keep the sign-in inert.
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
}

function renderMe() {
  const me = state.me;
  $('me-name').textContent = me.name;
  $('me-avatar').textContent = initial(me.name);
  $('me-avatar').className = `avatar hue-${me.id % 8}`;
}

// tabs tells the app's other tabs in this browser (the same user, by the
// same cookie) of the user's rename at once, also to a tab whose
// connection is down; connected ones get the server's user frame too.
const tabs = typeof BroadcastChannel === 'function' ? new BroadcastChannel('parley') : null;

// setMe takes the user's own record after a rename (here or elsewhere) and
// shows the name wherever the page shows the user: the header, the open
// room's online list and the open group's members.
function setMe(user) {
  if (state.me && !noteNameVersion(state.me.id, user.name_version)) return; // an answer that comes after a newer rename
  state.me = { ...state.me, ...user };
  const me = state.me;
  renderMe();
  learnName(me.id, me.name);
  const u = state.online.get(me.id);
  if (u) {
    state.online.set(me.id, { ...u, name: me.name });
    state.onlineVersion++; // an online list read before has the old name
  }
  renderOnline();
  const m = state.group && (state.group.member_list || []).find((x) => x.id === me.id);
  if (m) {
    m.name = me.name;
    renderGroupPanel();
  }
}

// route opens the room named in the location hash, or none.
function route() {
  if (state.view !== 'chat') return;
  const { room, dm, conv } = parseHash();
  if (conv) {
    if (`conv:${conv}` !== state.target) enterById(conv);
    else if (state.room) showScreen('room');
  } else if (dm) {
    if (`dm:${dm}` !== state.target) enterDirect(dm);
    else if (state.room) showScreen('room');
  } else if (room) {
    if (room.toLowerCase() !== state.target) enterRoom(room);
    else if (state.room) showScreen('room');
  } else {
    closeRoom();
  }
}

function roomHash(name) {
  return `#room/${encodeURIComponent(name)}`;
}

// goRoom navigates to a room; the hash change opens it.
function goRoom(name) {
  if (location.hash === roomHash(name) || name.toLowerCase() === state.target) enterRoom(name);
  else location.hash = roomHash(name);
}

function directHash(userId) {
  return `#dm/${userId}`;
}

// convHash is the location hash of a conversation shown (room or direct).
function convHash(r) {
  if (r.kind === 'direct') return directHash(r.peer.id);
  return r.kind === 'room' ? roomHash(r.name) : `#conv/${r.id}`;
}

// targetOf is the key state.target holds for a conversation.
function targetOf(r) {
  if (r.kind === 'direct') return `dm:${r.peer.id}`;
  return r.kind === 'room' ? r.name.toLowerCase() : `conv:${r.id}`;
}

// goConv navigates to any other kind of conversation (groups) by id.
function goConv(id) {
  if (location.hash === `#conv/${id}` || state.target === `conv:${id}`) enterById(id);
  else location.hash = `#conv/${id}`;
}

// enterById opens a conversation that is neither a room nor a direct chat
// (groups): it is read and written by id like the others.
async function enterById(id) {
  const begun = await beginEntering(`conv:${id}`, () => api.conversation(id));
  if (!begun) return;
  const { token, value: conv } = begun;
  if (conv.kind === 'room' || conv.kind === 'direct') {
    // Known kinds have their own addresses.
    if (conv.kind === 'room') goRoom(conv.name);
    else goDirect(conv.peer.id);
    return;
  }
  leaveCurrent();
  const room = { ...conv, name: conv.name || `Conversation ${conv.id}` };
  state.room = room;
  history.replaceState(null, '', convHash(room));
  document.title = `${room.name} · Parley`;
  resetRoomView(room);
  showScreen('room');
  if (room.kind === 'group') loadGroup(room);
  await loadConversation(room, token);
}

function convTitle(r) {
  return r.kind === 'direct' ? displayName(r.peer?.id, r.peer?.name) : r.name;
}

// goDirect navigates to the direct chat with a user; the hash change opens it.
function goDirect(userId) {
  if (location.hash === directHash(userId) || state.target === `dm:${userId}`) enterDirect(userId);
  else location.hash = directHash(userId);
}

function showScreen(screen) {
  document.querySelector('.chat').dataset.screen = screen;
}

// ---------------------------------------------------------------- room list

async function refreshRooms() {
  try {
    const data = await api.rooms();
    if (state.view !== 'chat') return;
    state.rooms = { joined: data.joined || [], active: data.active || [] };
    renderRooms();
  } catch (err) {
    console.warn('parley: rooms:', err.message);
  }
}

// refreshRoomsSoon re-reads the room list (member counts, activity) after
// live messages, at most once a second however busy the room is.
function refreshRoomsSoon() {
  if (state.roomsSoon) return;
  state.roomsSoon = setTimeout(() => {
    state.roomsSoon = null;
    refreshRooms();
    refreshConversations();
  }, 1000);
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

// replaceList draws list el again with items, keeping the keyboard
// focus where it was: a list is drawn again as messages and presence
// come, and the control that had the focus would go with its old item,
// leaving it on the page's body, so that one who moves through the list
// with Tab would start over. The item that takes it is the one with the
// same data-* attributes (the conversation's, the user's), its control at
// the same place; an item with none is not told apart, and keeps nothing.
function replaceList(el, items) {
  const active = document.activeElement;
  const li = active && el.contains(active) ? active.closest('li') : null;
  const key = li && el.contains(li) && Object.keys(li.dataset).length ? JSON.stringify({ ...li.dataset }) : '';
  const at = key ? [...li.querySelectorAll(FOCUSABLE)].indexOf(active) : -1;
  el.replaceChildren(...items);
  if (at < 0) return;
  const same = items.find((c) => JSON.stringify({ ...c.dataset }) === key);
  const control = same && same.querySelectorAll(FOCUSABLE)[at];
  if (control) control.focus({ preventScroll: true });
}

const FOCUSABLE = 'a[href], button, input, select, textarea, [tabindex]';

function renderRoomList(ul, rooms, meta) {
  const items = rooms.map((r) => {
    const li = h('li');
    li.dataset.roomName = r.name;
    li.dataset.roomId = String(r.id);
    const b = h('button', 'room-item');
    b.type = 'button';
    b.append(iso(h('span', 'room-name', r.name)), h('span', 'room-meta', meta(r)));
    if (state.room && state.room.id === r.id) b.setAttribute('aria-current', 'true');
    b.addEventListener('click', () => goRoom(r.name));
    li.append(b);
    return li;
  });
  replaceList(ul, items);
}

function renderRooms() {
  const { joined, active } = state.rooms;
  renderRoomList($('rooms-joined'), joined, (r) => plural(r.members, 'member'));
  renderRoomList($('rooms-active'), active, (r) =>
    r.recent ? `${plural(r.recent, 'message')} today · ${plural(r.members, 'member')}` : plural(r.members, 'member'),
  );
  setHidden($('rooms-joined-empty'), joined.length > 0 || state.view !== 'chat');
  setHidden($('rooms-active-empty'), active.length > 0 || state.view !== 'chat');
}

// ---------------------------------------------------------------- conversations

// readSettled reads with read() until no frame that version() counts came
// while it read: an answer asked for before such a frame may be older than
// what the frame told, and would undo it. It reads at most four times, and
// stops early when stop() says the answer is no longer wanted. It returns
// the last answer and whether it was read with no such frame meanwhile.
async function readSettled(version, read, stop = () => false) {
  for (let tries = 0; ; tries++) {
    const v = version();
    const answer = await read();
    if (v === version()) return { answer, settled: true };
    if (tries >= 3 || stop()) return { answer, settled: false };
  }
}

async function refreshConversations() {
  try {
    const { answer: list } = await readSettled(() => state.convsVersion, api.conversations);
    if (state.view !== 'chat') return;
    const convs = new Map();
    for (const c of list) {
      const old = state.convs.get(c.id);
      if (old && (old.last_seq || 0) > (c.last_seq || 0)) {
        // A live frame newer than this answer wins, for what it told; what
        // was missed before it (while the link was down) is only in the
        // answer: a rename, and in the count, which is what follows the
        // read position, as for a read.
        const read = Math.max(c.read_seq || 0, old.read_seq || 0);
        const live = {
          last_seq: old.last_seq,
          last_message: old.last_message,
          last_active_at: old.last_active_at,
          read_seq: read,
          unread: Math.max(0, old.last_seq - read),
        };
        if ((old.named_seq || 0) > (c.last_seq || 0)) Object.assign(live, { name: old.name, named_seq: old.named_seq });
        convs.set(c.id, { ...c, ...live });
      } else {
        convs.set(c.id, c);
      }
      if (c.peer) {
        const name = newestName(c.peer.id, c.peer.name, c.peer.name_version);
        if (name !== c.peer.name) convs.get(c.id).peer = { ...c.peer, name };
      }
      // What this page has read, and told the server or is about to, may
      // not be stored yet when the list was read.
      const e = convs.get(c.id);
      const read = readHere(c.id);
      if (read > (e.read_seq || 0)) {
        e.read_seq = read;
        e.unread = Math.max(0, (e.last_seq || 0) - read);
      }
      if (isShown(c.id) && state.socket && state.socket.last(c.id) >= (c.last_seq || 0)) e.unread = 0;
    }
    state.convs = convs;
    // A first message of a friend's while the page had no connection made
    // the conversation of the empty chat shown: its frame is in no log.
    for (const c of convs.values()) if (c.kind === 'direct' && c.peer && followNewDirect(c.id, c.peer.id)) break;
    renderConversations();
  } catch (err) {
    console.warn('parley: conversations:', err.message);
  }
}

function refreshConversationsSoon() {
  if (state.convsSoon) return;
  state.convsSoon = setTimeout(() => {
    state.convsSoon = null;
    refreshConversations();
  }, 500);
}

function upsertConv(conv) {
  const old = state.convs.get(conv.id);
  if (old && (old.last_seq || 0) > (conv.last_seq || 0)) return;
  state.convs.set(conv.id, { ...old, ...conv });
  renderConversations();
}

// isShown says whether the user is looking at a conversation now.
function isShown(id) {
  return !!state.room && state.room.id === id && document.visibilityState === 'visible';
}

// noteMessage updates a conversation's last message and unread count for a
// message seen live (a conversation frame, or a message of the open one).
function noteMessage(conv, m) {
  if (!m || !(m.seq > (conv.last_seq || 0))) return;
  if (m.kind === 'renamed' && m.body && conv.kind !== 'direct') {
    conv.name = m.body;
    conv.named_seq = m.seq; // newer than a list read before it
  }
  conv.last_seq = m.seq;
  conv.last_message = m;
  conv.last_active_at = m.created_at;
  if (state.me && m.sender_id === state.me.id) {
    conv.unread = 0;
    conv.read_seq = m.seq;
  } else if (!isShown(conv.id)) {
    conv.unread = (conv.unread || 0) + 1;
  }
  renderConversations();
}

// markRead tells the server the open conversation is read up to what is shown.
function markRead() {
  const r = state.room;
  const s = state.socket;
  if (!r || !r.id || !s || !state.loaded || state.ended || document.visibilityState !== 'visible') return;
  const last = s.last(r.id);
  if (!last) return;
  const conv = state.convs.get(r.id);
  if (conv) {
    // Read here, even with no count to clear (shown as it came): a read
    // frame of an older seq, before this one is stored, counts from it.
    conv.read_seq = Math.max(conv.read_seq || 0, last);
    if (conv.unread) {
      conv.unread = 0;
      renderConversations();
    }
  }
  if ((state.readSent.get(r.id) || 0) >= last) return;
  queueRead(r.id, last, r.kind === 'room');
}

// READ_EVERY bounds how often the app moves a conversation's read position
// on the server. Every message that arrives while a conversation is shown
// moves it, and in a group each move is a receipt to every member: at most
// one a second per conversation, the first at once. A room has no
// receipts, and may have thousands of members watching it, each move a
// write and a frame: its position moves at most every READ_EVERY_ROOM, and
// a move that could go at once waits a random part of it instead, since a
// message wakes all the room's viewers at the same moment, and their moves
// would come in one burst, and again every READ_EVERY_ROOM after it. (It
// goes out at once before a send, and when the page goes: flushRead.)
const READ_EVERY = 1000;
const READ_EVERY_ROOM = 5000;

// queueRead sends read position seq of conversation id (a room if room is
// set) now, or once its interval has passed since the last one went, with
// the highest seq queued by then.
function queueRead(id, seq, room) {
  let q = state.readQueue.get(id);
  if (!q) {
    q = { seq: 0, timer: 0, at: 0 };
    state.readQueue.set(id, q);
  }
  q.seq = Math.max(q.seq, seq);
  if (q.timer) return;
  const every = room ? READ_EVERY_ROOM : READ_EVERY;
  let wait = q.at + every - Date.now();
  if (wait <= 0 && room) wait = Math.random() * every;
  if (wait <= 0) {
    sendRead(id, q);
    return;
  }
  q.timer = setTimeout(() => {
    q.timer = 0;
    sendRead(id, q);
  }, wait);
}

function sendRead(id, q) {
  const s = state.socket;
  if (!s || (state.readSent.get(id) || 0) >= q.seq) return;
  q.at = Date.now();
  const seq = q.seq;
  state.readSent.set(id, seq);
  if (s.markRead(id, seq)) {
    state.readUnsure.set(id, seq);
  } else {
    api.markRead(id, seq).catch((err) => {
      state.readSent.delete(id);
      console.warn('parley: read:', err.message);
    });
  }
}

// readHere is the read position of conversation id this page has sent on
// its connection, or holds back to send (queueRead): 0 if none.
function readHere(id) {
  const q = state.readQueue.get(id);
  return Math.max(state.readSent.get(id) || 0, q && q.timer ? q.seq : 0);
}

// flushRead sends the read position of conversation id waiting to go out,
// now.
function flushRead(id) {
  const q = state.readQueue.get(id);
  if (!q || !q.timer) return;
  clearTimeout(q.timer);
  q.timer = 0;
  sendRead(id, q);
}

// dropReads forgets the read positions waiting to go out: of conversation
// id, or of all.
function dropReads(id) {
  for (const [k, q] of state.readQueue) {
    if (id !== undefined && k !== id) continue;
    clearTimeout(q.timer);
    state.readQueue.delete(k);
  }
}

function onRead({ room_id: id, seq }) {
  state.convsVersion++;
  if (seq >= (state.readUnsure.get(id) ?? Infinity)) state.readUnsure.delete(id);
  const conv = state.convs.get(id);
  if (!conv || !(seq >= 0)) return;
  conv.read_seq = Math.max(conv.read_seq || 0, seq);
  conv.unread = Math.max(0, (conv.last_seq || 0) - conv.read_seq);
  renderConversations();
}

function onConversationFrame(f) {
  const m = f.message;
  if (f.kind === 'room' && f.room_id) {
    // The user entered a room, here or elsewhere (or again, after a
    // removed replayed before it): it is in the lists again.
    refreshRooms();
    refreshConversationsSoon();
    return;
  }
  if (!m || !f.room_id) return;
  let conv = state.convs.get(f.room_id);
  if (!conv) {
    // A new conversation: show it now, fetch its details. A list read
    // meanwhile may be older than it, and would drop it.
    state.convsVersion++;
    conv = { id: f.room_id, kind: f.kind || 'direct', peer: f.peer, last_seq: 0, read_seq: 0, unread: 0, members: 2 };
    state.convs.set(conv.id, conv);
    refreshConversationsSoon();
  }
  if (f.peer) {
    conv.peer = f.peer;
    followNewDirect(f.room_id, f.peer.id);
  }
  noteMessage(conv, m);
}

// followNewDirect follows conversation id, just made by a first message,
// in the chat the page shows if that is the empty one with user peerId
// (the friend wrote first while we look at it): from its start. It
// reports whether it did.
function followNewDirect(id, peerId) {
  const r = state.room;
  if (!r || r.kind !== 'direct' || r.id || !r.peer || r.peer.id !== peerId || !state.loaded || !state.socket) return false;
  r.id = id;
  state.socket.openRoom(r.id, 0);
  return true;
}

// previewParts is a conversation's preview, as isoParts takes it: the
// names and the body in it are isolated.
function previewParts(conv) {
  const m = conv.last_message;
  if (!m) return ['No messages yet'];
  const mine = state.me && m.sender_id === state.me.id;
  if (EVENT_KINDS.has(m.kind)) return eventParts(m);
  const body = (m.body || '').replace(/\s+/g, ' ').trim();
  const short = { text: [...body].length > 80 ? `${[...body].slice(0, 80).join('')}…` : body };
  if (mine) return ['You: ', short];
  return conv.kind === 'direct' ? [short] : [{ text: displayName(m.sender_id, m.sender_name) }, ': ', short];
}

function shortTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return dayKey(d) === dayKey(new Date()) ? timeFmt.format(d) : dayLabel(d);
}

function activity(c) {
  return Date.parse(c.last_active_at || c.created_at || '') || 0;
}

function renderConversations() {
  const list = [...state.convs.values()].sort((a, b) => activity(b) - activity(a) || b.id - a.id);
  const items = list.map((c) => {
    const li = h('li');
    li.dataset.convId = String(c.id);
    li.dataset.kind = c.kind;
    const direct = c.kind === 'direct';
    const name = direct ? displayName(c.peer?.id, c.peer?.name) : c.name || `#${c.id}`;
    if (direct && c.peer) li.dataset.peerId = String(c.peer.id);
    else li.dataset.roomName = c.name || '';
    const b = h('button', 'conv-item');
    b.type = 'button';
    let av = direct ? avatar(c.peer?.id || 0, name) : h('span', 'avatar hue-none', c.kind === 'room' ? '#' : initial(name));
    av.setAttribute('aria-hidden', 'true');
    if (c.kind === 'group') av.classList.add('is-group');
    if (direct && c.peer) av = withPresence(av, c.peer.id);
    const main = h('span', 'conv-main');
    main.append(iso(h('span', c.kind === 'room' ? 'conv-name is-room' : 'conv-name', name)), isoParts(h('span', 'conv-preview'), previewParts(c)));
    const side = h('span', 'conv-side');
    const n = c.unread || 0;
    const badge = h('span', 'badge', String(n));
    badge.hidden = n === 0;
    // Said as text: ARIA does not name a plain span (aria-label), and
    // some screen readers would say the number alone.
    const said = h('span', 'visually-hidden', n ? ' unread' : '');
    side.append(h('span', 'conv-time', shortTime(c.last_message ? c.last_message.created_at : c.last_active_at)), badge, said);
    b.append(av, main, side);
    if (state.room && state.room.id === c.id) b.setAttribute('aria-current', 'true');
    b.addEventListener('click', () => {
      if (direct) goDirect(c.peer.id);
      else if (c.kind === 'room') goRoom(c.name);
      else goConv(c.id);
    });
    li.append(b);
    return li;
  });
  replaceList($('conversations'), items);
  setHidden($('conversations-empty'), items.length > 0 || state.view !== 'chat');
  const unread = list.reduce((n, c) => n + (c.unread || 0), 0);
  if (state.view === 'chat') {
    const base = state.room ? `${state.room.kind === 'room' ? '#' : ''}${convTitle(state.room)} · Parley` : 'Parley';
    document.title = unread ? `(${unread}) ${base}` : base;
  }
}

// ---------------------------------------------------------------- people

async function refreshContacts() {
  try {
    // A contact frame that came while the list was read may be newer than
    // the answer: read again rather than show a stale list.
    const {
      answer: { data, tick },
    } = await readSettled(
      () => state.contactsVersion,
      async () => {
        const tick = state.presenceTick;
        return { data: await api.contacts(), tick };
      },
    );
    if (state.view !== 'chat') return;
    state.contacts = new Map((data.contacts || []).map((c) => [c.user.id, c]));
    state.blocked = new Map((data.blocked || []).map((u) => [u.id, u]));
    for (const u of state.blocked.values()) u.name = newestName(u.id, u.name, u.name_version);
    for (const c of state.contacts.values()) {
      c.user.name = newestName(c.user.id, c.user.name, c.user.name_version);
      // A presence set since the list was asked for (by a frame, or a
      // newer answer) is newer than this answer.
      if ((c.state === 'friends' || c.state === 'friend') && !presenceSetSince(c.user.id, tick)) {
        setPresence(c.user.id, c.online, c.last_seen);
      }
    }
    // Only friends' presence is told: one who is no friend in the answer
    // (the frame saying so was missed, the page away too long) is shown
    // none, not the last presence known for good.
    for (const id of [...state.presence.keys()]) {
      const c = state.contacts.get(id);
      if ((!c || (c.state !== 'friends' && c.state !== 'friend')) && !presenceSetSince(id, tick)) {
        state.presence.delete(id);
      }
    }
    fillNames();
    renderPeople();
    renderInviteIfOpen();
    renderConversations();
    renderOnline();
  } catch (err) {
    console.warn('parley: contacts:', err.message);
  }
}

function onContactFrame(f) {
  if (!f.user) return;
  state.contactsVersion++;
  // A contact frame replayed from the log has the name of its time.
  const name = newestName(f.user.id, f.user.name, f.user.name_version);
  if (name !== f.user.name) f.user = { ...f.user, name };
  if (f.state === 'friends') setPresence(f.user.id, f.online, f.last_seen);
  else state.presence.delete(f.user.id);
  if (f.state === 'friends' || f.state === 'request_sent' || f.state === 'request_received') {
    state.contacts.set(f.user.id, { user: f.user, state: f.state, since: f.since });
  } else {
    state.contacts.delete(f.user.id);
  }
  if (f.state === 'blocked') state.blocked.set(f.user.id, f.user);
  else state.blocked.delete(f.user.id);
  if (f.state === 'blocked' && state.results) state.results = state.results.filter((u) => u.id !== f.user.id);
  // The server no longer says when one who is not a friend has the
  // direct chat open, nor when they close it: they are not shown there.
  const r = state.room;
  if (f.state !== 'friends' && r && r.kind === 'direct' && r.peer && r.peer.id === f.user.id && state.online.delete(f.user.id)) {
    state.onlineCount = state.online.size;
    state.onlineVersion++; // an online list read before still shows them
  }
  renderOnline();
  renderPeople();
  renderInviteIfOpen();
  refreshConversationsSoon();
}

// renderInviteIfOpen follows a change of friends in the open group's
// settings: only friends are offered for an invitation.
function renderInviteIfOpen() {
  if ($('group-dialog').open && state.group) renderInvite(state.group, ['owner', 'admin'].includes(myRole()));
}

function peopleInfo(msg, isError) {
  const el = $('people-info');
  el.textContent = msg || '';
  el.classList.toggle('error', !!isError);
  setHidden(el, !msg);
}

function personRow(user) {
  const li = h('li', 'person');
  li.dataset.userId = String(user.id);
  li.append(avatar(user.id, user.name), iso(h('span', 'person-name', displayName(user.id, user.name))));
  return li;
}

// actionButton runs fn on a click; report shows its error (or clears it).
function actionButton(cls, text, fn, primary, report = peopleInfo) {
  const b = h('button', `${cls} ${primary ? 'primary' : 'ghost'} small`, text);
  b.type = 'button';
  b.addEventListener('click', () =>
    busy(b, async () => {
      try {
        report('');
        await fn();
      } catch (err) {
        report(report.describe ? report.describe(err) : err.message, true);
      }
    }),
  );
  return b;
}

// confirmButton is an action button that asks for a second click first.
function confirmButton(cls, text, confirmText, fn, report = peopleInfo) {
  const b = actionButton(cls, text, async () => {
    if (b.dataset.armed !== 'true') {
      b.dataset.armed = 'true';
      b.textContent = confirmText;
      setTimeout(() => {
        if (b.isConnected) {
          b.dataset.armed = 'false';
          b.textContent = text;
        }
      }, 4000);
      return;
    }
    await fn();
  }, false, report);
  return b;
}

const blockUser = (u) => async () => {
  await api.block(u.id);
  state.contacts.delete(u.id);
  state.blocked.set(u.id, u);
  if (state.results) state.results = state.results.filter((x) => x.id !== u.id);
  renderPeople();
};

const unblockUser = (u) => async () => {
  try {
    await api.unblock(u.id);
  } catch (err) {
    if (err.code !== 'not_found') throw err;
  }
  state.blocked.delete(u.id);
  renderPeople();
};

function setContact(c) {
  if (c && c.user) state.contacts.set(c.user.id, c);
  renderPeople();
}

const addFriend = (u) => async () => setContact(await api.addFriend(u.id));
const acceptFriend = (u) => async () => setContact(await api.acceptFriend(u.id));
const dropContact = (u) => async () => {
  try {
    await api.removeContact(u.id);
  } catch (err) {
    if (err.code !== 'not_found') throw err;
  }
  state.contacts.delete(u.id);
  renderPeople();
};

function byName(a, b) {
  return (a.user.name || '').localeCompare(b.user.name || '') || a.user.id - b.user.id;
}

function renderPeople() {
  const contacts = [...state.contacts.values()].sort(byName);
  const of = (st) => contacts.filter((c) => c.state === st);

  const requests = of('request_received').map((c) => {
    const li = personRow(c.user);
    const acts = h('span', 'person-actions');
    acts.append(
      actionButton('accept', 'Accept', acceptFriend(c.user), true),
      actionButton('decline', 'Decline', dropContact(c.user)),
      confirmButton('block', 'Block', 'Block?', blockUser(c.user)),
    );
    li.append(acts);
    return li;
  });
  replaceList($('requests'), requests);
  setHidden($('requests-title'), requests.length === 0);

  const sent = of('request_sent').map((c) => {
    const li = personRow(c.user);
    li.append(h('span', 'person-state', 'Waiting'), actionButton('cancel', 'Cancel', dropContact(c.user)));
    return li;
  });
  replaceList($('sent'), sent);
  setHidden($('sent-title'), sent.length === 0);

  const friends = of('friends').map((c) => {
    const li = h('li', 'person friend');
    li.dataset.userId = String(c.user.id);
    const b = h('button', 'person-open');
    b.type = 'button';
    const text = h('span', 'person-text');
    text.append(iso(h('span', 'person-name', displayName(c.user.id, c.user.name))));
    const seen = presenceText(c.user.id);
    if (seen) {
      const st = h('span', 'person-presence', seen.replace(/^Offline · /, ''));
      st.title = seen;
      text.append(st);
    }
    b.append(withPresence(avatar(c.user.id, c.user.name), c.user.id), text);
    if (state.room && state.room.kind === 'direct' && state.room.peer.id === c.user.id) b.setAttribute('aria-current', 'true');
    b.addEventListener('click', () => goDirect(c.user.id));
    li.append(b, confirmButton('remove-friend', 'Remove', 'Remove?', dropContact(c.user)));
    return li;
  });
  replaceList($('friends'), friends);

  const blocked = [...state.blocked.values()]
    .sort((a, b) => (a.name || '').localeCompare(b.name || ''))
    .map((u) => {
      const li = personRow(u);
      li.append(actionButton('unblock', 'Unblock', unblockUser(u)));
      return li;
    });
  replaceList($('blocked'), blocked);
  setHidden($('blocked-title'), blocked.length === 0);
  setHidden($('friends-empty'), friends.length > 0 || state.view !== 'chat');

  const results = (state.results || []).map((u) => {
    const li = personRow(u);
    const c = state.contacts.get(u.id);
    if (!c) li.append(actionButton('add-friend', 'Add friend', addFriend(u), true));
    else if (c.state === 'friends') li.append(actionButton('open-chat', 'Message', async () => goDirect(u.id), true));
    else if (c.state === 'request_sent') li.append(h('span', 'person-state', 'Request sent'));
    else li.append(actionButton('accept', 'Accept', acceptFriend(u), true));
    li.append(confirmButton('block', 'Block', 'Block?', blockUser(u)));
    return li;
  });
  replaceList($('people-results'), results);
}

async function searchPeople() {
  clearTimeout(state.peopleTimer);
  const q = trimSpace($('people-search').value);
  const token = ++state.peopleToken;
  if (!q) {
    state.results = null;
    peopleInfo('');
    renderPeople();
    return;
  }
  let users;
  try {
    users = await api.searchUsers(q);
  } catch (err) {
    if (token === state.peopleToken) peopleInfo(err.message, true);
    return;
  }
  if (token !== state.peopleToken) return;
  state.results = users;
  peopleInfo(users.length ? '' : 'No one found. Try a name, or a full email address.');
  renderPeople();
}

// ADDRESS is what the server takes for a whole email address in a
// search: each such search counts against the user's lookups by address
// in an hour (--email-lookups-per-hour).
const ADDRESS = /^[^\s@]+@[^\s@]*\.[^\s@]*$/;

// onPeopleInput searches as a name is typed, but not as an address is:
// every stop on the way ("grace@example.c", "grace@example.co") would be
// a lookup counted. An address is looked up on Enter.
function onPeopleInput() {
  clearTimeout(state.peopleTimer);
  if (ADDRESS.test(trimSpace($('people-search').value))) {
    ++state.peopleToken; // an answer for what was typed before is stale
    state.results = null;
    peopleInfo('Press Enter to look up this address.');
    renderPeople();
    return;
  }
  state.peopleTimer = setTimeout(searchPeople, 250);
}

function checkRoomName(s) {
  if (!s) return 'Type a room name.';
  if ([...s].length > 64) return 'Room names are at most 64 characters.';
  if (/^\p{M}|[_-]\p{M}/u.test(s)) return 'An accent or vowel sign must follow a letter or digit.';
  if (!ROOM_NAME.test(s)) return 'Use only letters, digits, - and _ (no spaces).';
  return '';
}

const ROOM_HINT = 'Letters, digits, - and _ (up to 64). New names create a room.';

function roomHint(error) {
  const hint = $('room-hint');
  hint.textContent = error || ROOM_HINT;
  hint.classList.toggle('error', !!error);
  $('room-input').setAttribute('aria-invalid', error ? 'true' : 'false');
}

// roomInputName is the name typed, in NFC, the form the server keeps:
// "café" typed with a combining accent is the room "café".
function roomInputName() {
  return trimSpace($('room-input').value).replace(/^#/, '').normalize('NFC');
}

function onRoomSubmit(e) {
  e.preventDefault();
  const name = roomInputName();
  const problem = checkRoomName(name);
  roomHint(problem);
  if (problem) {
    $('room-input').focus();
    return;
  }
  $('room-input').value = '';
  goRoom(name);
}

// ---------------------------------------------------------------- open room

// beginEntering starts entering target and awaits load(). It returns the
// entry's token and what load gave, or null when load failed (we stay where
// we were and the hint says why) or another entry began meanwhile.
async function beginEntering(target, load) {
  const token = ++state.entering;
  state.target = target;
  roomHint('');
  let value;
  try {
    value = await load();
  } catch (err) {
    if (token !== state.entering) return null;
    stayWhereWeWere();
    roomHint(err.message);
    return null;
  }
  if (token !== state.entering || !state.socket) return null;
  return { token, value };
}

async function enterRoom(name) {
  const begun = await beginEntering(name.toLowerCase(), () => api.enterRoom(name));
  if (!begun) return;
  const { token, value: room } = begun;

  leaveCurrent();
  room.kind = 'room';
  state.room = room;
  state.target = room.name.toLowerCase();
  history.replaceState(null, '', roomHash(room.name)); // the server's spelling
  document.title = `#${room.name} · Parley`;
  resetRoomView(room);
  showScreen('room');
  refreshRooms();
  refreshConversationsSoon();
  await loadConversation(room, token);
}

// stayWhereWeWere undoes a navigation that failed.
function stayWhereWeWere() {
  state.target = state.room ? targetOf(state.room) : '';
  if (state.room) history.replaceState(null, '', convHash(state.room));
  else clearHash();
  showScreen(state.room ? 'room' : 'list');
}

// peerOf finds what we know of a user: a contact or a direct conversation.
function peerOf(userId) {
  const c = state.contacts.get(userId);
  if (c) return c.user;
  for (const conv of state.convs.values()) if (conv.kind === 'direct' && conv.peer && conv.peer.id === userId) return conv.peer;
  if (state.results) for (const u of state.results) if (u.id === userId) return u;
  return null;
}

// enterDirect opens the direct chat with a user: the conversation if there
// is one, otherwise an empty chat that the first message creates.
async function enterDirect(userId) {
  const token = ++state.entering;
  state.target = `dm:${userId}`;
  roomHint('');
  let conv = null;
  try {
    conv = await api.direct(userId);
  } catch (err) {
    if (token !== state.entering) return;
    if (err.code !== 'not_found') {
      stayWhereWeWere();
      roomHint(err.message);
      return;
    }
  }
  if (token !== state.entering) return;
  let peer = (conv && conv.peer) || peerOf(userId);
  if (!peer) {
    await refreshContacts();
    if (token !== state.entering) return;
    peer = peerOf(userId);
  }
  if (!peer || !state.socket) {
    stayWhereWeWere();
    if (!peer) roomHint('You can only chat with your friends. Add them under People first.');
    return;
  }

  leaveCurrent();
  const room = conv ? { ...conv } : { id: 0, last_seq: 0, members: 2 };
  room.kind = 'direct';
  room.peer = peer;
  room.name = peer.name;
  state.room = room;
  state.target = targetOf(room);
  history.replaceState(null, '', convHash(room));
  document.title = `${peer.name} · Parley`;
  resetRoomView(room);
  showScreen('room');
  if (room.id) {
    await loadConversation(room, token);
    if (token === state.entering) showFirstSends(room);
    return;
  }
  state.loaded = true;
  state.oldest = 1;
  state.hasOlder = false;
  updateHistoryTop();
  showFirstSends(room);
  if (!matchMedia('(max-width: 700px)').matches) $('composer').focus();
}

// leaveCurrent stops following the shown conversation and keeps what it
// shows (messages, scroll position) to show it again at once.
function leaveCurrent() {
  state.typing.clear();
  renderTyping();
  const room = state.room;
  if (!room) return;
  // What was typed and not sent stays with its conversation.
  const draft = $('composer').value;
  if (draft.trim()) state.drafts.set(targetOf(room), draft);
  else state.drafts.delete(targetOf(room));
  if (room.id && state.socket && state.loaded && !state.ended) {
    const b = box();
    const els = [...b.children].filter((el) => el.id !== 'history-top' && !el.classList.contains('pending'));
    state.cache.delete(room.id);
    state.cache.set(room.id, {
      els,
      last: state.socket.last(room.id),
      oldest: state.oldest,
      hasOlder: state.hasOlder,
      scrollTop: b.scrollTop,
      pinned: state.pinned,
    });
    while (state.cache.size > CACHE_MAX) state.cache.delete(state.cache.keys().next().value);
  }
  // What was read goes out now: the list shows the room with its count
  // from the server, which would otherwise count it unread for seconds.
  if (room.id) flushRead(room.id);
  if (room.id && state.socket) state.socket.closeRoom(room.id);
}

// loadConversation shows the history of a conversation just opened, with
// the message log hushed (hushLog) while it goes in.
async function loadConversation(room, token) {
  const done = hushLog();
  try {
    await showConversation(room, token);
  } finally {
    done();
  }
}

// showConversation shows a conversation's history (from the cache or the
// first page) and follows it live.
async function showConversation(room, token) {
  const cached = state.cache.get(room.id);
  if (cached && cached.last > 0) {
    state.cache.delete(room.id);
    $('history-top').after(...cached.els);
    state.oldest = cached.oldest;
    state.hasOlder = cached.hasOlder;
    state.loaded = true;
    state.socket.openRoom(room.id, cached.last);
    for (const p of state.socket.pendingFor(room.id)) appendPending(p);
    updateHistoryTop();
    fillNames();
    renderReceipts();
    if (cached.pinned) scrollToBottom();
    else {
      box().scrollTop = cached.scrollTop;
      state.pinned = false;
    }
    markRead();
    return;
  }

  let page;
  try {
    page = await api.history(room.id, { limit: PAGE });
  } catch (err) {
    if (token !== state.entering) return;
    // Without history we still follow the room live; older pages load on scroll.
    composerError(err.message);
    page = { messages: [], has_more: room.last_seq > 0 };
  }
  if (token !== state.entering) return;

  const msgs = page.messages || [];
  for (const m of msgs) {
    settleFirst(m);
    state.socket.settle(m, false);
  }
  insertOlder(msgs);
  state.oldest = msgs.length ? msgs[0].seq : room.last_seq + 1;
  state.hasOlder = !!page.has_more;
  const last = msgs.length ? msgs[msgs.length - 1].seq : room.last_seq;
  state.loaded = true;
  state.socket.openRoom(room.id, last);
  // What was sent while the page loaded is in it, or comes after it, once
  // stored: only the sends still unacknowledged are shown as pending.
  for (const el of state.pendingEls.values()) el.remove();
  state.pendingEls.clear();
  for (const p of state.socket.pendingFor(room.id)) appendPending(p);
  updateHistoryTop();
  renderReceipts();
  scrollToBottom();
  fillViewport();
  markRead();
  if (!matchMedia('(max-width: 700px)').matches) $('composer').focus();
}

function resetRoomView(room) {
  const isRoom = room.kind === 'room';
  document.querySelector('.room').classList.add('has-room');
  showRoomTitle(room);
  document.querySelector('.room').classList.toggle('is-direct', !isRoom);
  setHidden($('leave-room'), !isRoom);
  clearEnded();
  closeGroupPanel();
  setHidden($('group-settings'), room.kind !== 'group');
  state.loaded = false;
  for (const el of [...$('messages').children]) if (el.id !== 'history-top') el.remove();
  state.pendingEls.clear();
  state.online = new Map();
  state.onlineCount = 0;
  state.openWait = 0;
  state.oldest = 0;
  state.hasOlder = false;
  state.loadingOlder = false;
  renderOnline();
  composerError('');
  $('history-text').textContent = 'Loading messages…';
  setHidden($('load-older'), true);
  setHidden($('jump'), true);
  renderRooms(); // highlight the current room
  renderConversations();
  $('composer').value = state.drafts.get(targetOf(room)) || '';
  state.drafts.delete(targetOf(room));
  autosize();
  // A send that failed while another conversation was shown: its text is back.
  const kept = state.unsent.get(targetOf(room));
  if (kept) {
    state.unsent.delete(targetOf(room));
    composerError(kept.why);
    if (!$('composer').value) {
      $('composer').value = kept.body;
      autosize();
    }
  }
}

// closeRoom stops following the open room and shows the room list.
function closeRoom() {
  ++state.entering;
  state.target = '';
  leaveCurrent();
  state.room = null;
  state.loaded = false;
  clearEnded();
  closeGroupPanel();
  setHidden($('group-settings'), true);
  document.querySelector('.room').classList.remove('has-room', 'is-direct');
  for (const el of [...$('messages').children]) if (el.id !== 'history-top') el.remove();
  state.pendingEls.clear();
  state.online = new Map();
  state.onlineCount = 0;
  state.openWait = 0;
  renderOnline();
  showScreen('list');
  renderRooms();
  renderConversations(); // and the document title, with the unread total
}

// giveFocusBack gives the focus to el, the control that opened a dialog,
// once the dialog has closed: unless it is somewhere already. The close
// event comes a task after the close, and by then the browser may have
// given the focus back itself, and the user may have moved it on (Tab,
// a click): it stays where they put it.
function giveFocusBack(dialog, el) {
  const a = document.activeElement;
  if (!a || a === document.body || dialog.contains(a)) el.focus();
}

function onBack() {
  clearHash();
  closeRoom();
  $('room-input').focus();
}

async function onLeaveRoom() {
  const room = state.room;
  if (!room) return;
  await busy($('leave-room'), async () => {
    try {
      await api.leaveRoom(room.id);
    } catch (err) {
      if (err.code !== 'not_member') {
        composerError(err.message);
        return;
      }
    }
    if (state.room && state.room.id === room.id) {
      clearHash();
      closeRoom();
    }
    state.cache.delete(room.id);
    refreshRooms();
    refreshConversations();
  });
}

// ---------------------------------------------------------------- groups

const ERROR_TEXT = {
  group_full: 'The group is full. The owner can raise its member limit.',
  forbidden: 'You are not allowed to do that in this group.',
  already_member: 'They are already in the group.',
  refused: 'This user cannot be added.',
  name_taken: 'Another group already has this name.',
  cap_below_members: 'The member limit cannot be lower than the number of members.',
  owner_must_transfer: 'Make another member the owner before you leave.',
  not_member: 'They are no longer in the group.',
};

// friendlyError is what to show for a failed group request.
function friendlyError(err) {
  if (err.code === 'not_found') {
    return 'This group no longer exists, or you are no longer in it.';
  }
  return ERROR_TEXT[err.code] || err.message || 'Something went wrong.';
}

// showError puts msg into an error line (an empty msg hides it).
function showError(id, msg) {
  const el = $(id);
  el.textContent = msg || '';
  setHidden(el, !msg);
}

// armed implements two-click confirmation on a fixed button: the first
// click changes its label to confirmText and returns false.
function armed(button, text, confirmText) {
  if (button.dataset.armed === 'true') return true;
  button.dataset.armed = 'true';
  button.textContent = confirmText;
  setTimeout(() => {
    button.dataset.armed = 'false';
    button.textContent = text;
  }, 4000);
  return false;
}

function disarm(button, text) {
  button.dataset.armed = 'false';
  button.textContent = text;
}

// groupCaps returns this server's largest member limit of a group and the
// limit of one made without, from the hello's limits; null before one.
function groupCaps() {
  const l = state.socket && state.socket.limits;
  if (!l || !l.max_group_members) return null;
  return { max: l.max_group_members, dflt: l.default_group_members || l.max_group_members };
}

// capProblem says what is wrong with cap, a member limit field's value
// (parseCap), or '' if nothing; was is the limit the group has, which may
// stay as it is even past a server limit lowered since.
function capProblem(cap, was) {
  if (Number.isNaN(cap) || cap < 2) return 'The member limit is a whole number, at least 2.';
  const caps = groupCaps();
  if (caps && cap > caps.max && cap !== was) return `The member limit is at most ${caps.max}.`;
  return '';
}

// showGroupCaps puts this server's member limits in the group forms, once
// a hello told them: at their opening, and at each hello, as a form may be
// open already.
function showGroupCaps() {
  const caps = groupCaps();
  if (!caps) return;
  $('group-create-cap').placeholder = String(caps.dflt);
  $('group-create-cap').max = String(caps.max);
  // A limit the server has lowered since the group was made may stay.
  const g = state.group;
  $('group-edit-cap').max = String(Math.max(caps.max, (g && g.max_members) || 0));
}

function openCreateGroup() {
  for (const id of ['group-create-name', 'group-create-desc', 'group-create-cap']) $(id).value = '';
  showGroupCaps();
  $('group-create-name').removeAttribute('aria-invalid');
  showError('group-create-error', '');
  $('group-create').showModal();
  $('group-create-name').focus();
}

// parseCap reads a member limit field: 0 when empty, NaN when not a whole number.
function parseCap(s) {
  s = s.trim();
  if (!s) return 0;
  return /^\d+$/.test(s) ? Number(s) : NaN;
}

async function onCreateGroup(e) {
  e.preventDefault();
  const name = trimSpace($('group-create-name').value);
  const description = trimSpace($('group-create-desc').value);
  const cap = parseCap($('group-create-cap').value);
  if (!showsSomething(name)) {
    showError('group-create-error', 'Give the group a name.');
    $('group-create-name').setAttribute('aria-invalid', 'true');
    $('group-create-name').focus();
    return;
  }
  for (const [id, long] of [
    ['group-create-name', tooLong(name, MAX_GROUP_NAME, 'The name is')],
    ['group-create-desc', descTooLong(description)],
  ]) {
    if (long) {
      showError('group-create-error', long);
      $(id).focus();
      return;
    }
  }
  const capWrong = cap === 0 ? '' : capProblem(cap);
  if (capWrong) {
    showError('group-create-error', capWrong);
    $('group-create-cap').focus();
    return;
  }
  await busy($('group-create-submit'), async () => {
    let g;
    try {
      g = await api.createGroup(name, description, cap);
    } catch (err) {
      showError('group-create-error', friendlyError(err));
      if (err.field === 'name' || err.code === 'name_taken') $('group-create-name').focus();
      return;
    }
    $('group-create').close();
    upsertConv({
      id: g.id,
      kind: 'group',
      name: g.name,
      created_at: g.created_at,
      last_seq: g.last_seq,
      read_seq: g.last_seq,
      unread: 0,
      last_message: null,
      last_active_at: g.created_at,
      members: g.members,
    });
    goConv(g.id);
  });
}

// loadGroup reads the open group's settings and members.
async function loadGroup(room) {
  let g;
  try {
    g = await api.group(room.id);
  } catch (err) {
    if (state.room === room && !state.ended && err.code === 'not_found') endAccess('removed');
    else if (err.code !== 'not_found') console.warn('parley: group:', err.message);
    return;
  }
  if (state.room !== room || state.ended) return;
  state.group = g;
  for (const m of g.member_list || []) m.name = newestName(m.id, m.name, m.name_version);
  fillNames();
  room.name = g.name;
  room.members = g.members;
  room.description = g.description;
  const conv = state.convs.get(room.id);
  if (conv && conv.name !== g.name) {
    conv.name = g.name;
    renderConversations();
  }
  updateRoomTitle();
  renderOnline();
  renderGroupPanel();
}

// reloadGroupSoon re-reads the open group after a membership or settings event.
function reloadGroupSoon() {
  clearTimeout(state.groupSoon);
  const room = state.room;
  state.groupSoon = setTimeout(() => {
    if (state.room === room && room && room.kind === 'group') loadGroup(room);
  }, 150);
}

// showRoomTitle names room in its header and in the composer's
// placeholder ("Message #lobby"), the name isolated in each.
function showRoomTitle(room) {
  $('room-title').replaceChildren(iso(h('bdi', null, convTitle(room))));
  $('composer').placeholder = `Message ${room.kind === 'room' ? '#' : ''}${isoText(convTitle(room))}`;
}

function updateRoomTitle() {
  const room = state.room;
  if (!room) return;
  showRoomTitle(room);
  if (state.loaded) updateHistoryTop();
  renderConversations(); // and the document title
}

// onGroupEvent applies a membership or settings event of the open group.
function onGroupEvent(m) {
  const room = state.room;
  if (m.kind === 'renamed' && m.body) {
    room.name = m.body;
    updateRoomTitle();
  }
  reloadGroupSoon();
}

function myRole() {
  const g = state.group;
  const me = g && state.me && (g.member_list || []).find((x) => x.id === state.me.id);
  return me ? me.role : '';
}

const ROLE_LABEL = { owner: 'Owner', admin: 'Admin', member: 'Member' };

function openGroupPanel() {
  const room = state.room;
  if (!room || room.kind !== 'group' || state.ended) return;
  for (const id of ['group-edit-error', 'group-members-error', 'group-invite-error', 'group-foot-error']) showError(id, '');
  setHidden($('group-edit-info'), true);
  fillGroupEdit(true);
  delete $('group-members').dataset.key;
  renderGroupPanel();
  $('group-dialog').showModal();
  $('group-dialog-close').focus();
  loadGroup(room);
}

function closeGroupPanel() {
  if ($('group-dialog').open) $('group-dialog').close();
}

// fillGroupEdit puts the group's settings in the form; without force only
// into fields the user has not changed.
function fillGroupEdit(force) {
  const g = state.group;
  const room = state.room;
  const values = {
    'group-edit-name': g ? g.name : room ? room.name : '',
    'group-edit-desc': g ? g.description || '' : '',
    'group-edit-cap': g ? String(g.max_members || '') : '',
  };
  for (const [id, v] of Object.entries(values)) {
    const el = $(id);
    if (force || el.value === (el.dataset.filled ?? '')) el.value = v;
    el.dataset.filled = v;
  }
  showGroupCaps();
}

// groupReporter shows an action's error in the error line id.
function groupReporter(id) {
  const report = (msg) => showError(id, msg);
  report.describe = friendlyError;
  return report;
}

function renderGroupPanel() {
  const g = state.group;
  const room = state.room;
  if (!room || room.kind !== 'group') return;
  const role = myRole();
  const manage = role === 'owner' || role === 'admin';
  const owner = role === 'owner';
  $('group-dialog').dataset.role = role;
  $('group-dialog-title').textContent = g ? g.name : room.name;
  const you = { owner: 'you are the owner', admin: 'you are an admin', member: 'you are a member' }[role];
  $('group-dialog-sub').textContent = g
    ? `${g.members} of ${g.max_members} members${you ? ` · ${you}` : ''}`
    : 'Loading…';
  $('group-dialog-desc').textContent = (g && g.description) || '';
  setHidden($('group-dialog-desc'), !(g && g.description));

  setHidden($('group-edit'), !manage);
  setHidden($('group-edit-cap'), !owner);
  setHidden($('group-edit-cap-label'), !owner);
  if (g) fillGroupEdit(false);

  const me = state.me ? state.me.id : 0;
  const report = groupReporter('group-members-error');
  // Rebuilt only when something changed, so that focus and a button
  // waiting for its confirming click stay.
  const list = (g && g.member_list) || [];
  const key = JSON.stringify([me, role, g && g.id, list.map((m) => [m.id, m.name, m.role])]);
  const ul = $('group-members');
  if (ul.dataset.key !== key) {
    ul.dataset.key = key;
    ul.replaceChildren(...memberItems(g, role, report));
  }
  renderInvite(g, manage);

  setHidden($('group-leave'), !role || owner);
  setHidden($('group-leave-hint'), !owner);
  // With no other member there is no one to hand the group over to.
  $('group-leave-hint').textContent = g && g.members <= 1
    ? 'You are its only member: delete it to leave.'
    : 'To leave, make another member the owner first.';
  setHidden($('group-delete'), !owner);
}

// memberItems lists a group's members, each with what the viewer may do to them.
function memberItems(g, role, report) {
  const room = state.room;
  const owner = role === 'owner';
  const me = state.me ? state.me.id : 0;
  return ((g && g.member_list) || []).map((m) => {
    const li = h('li', 'group-member');
    li.dataset.userId = String(m.id);
    li.dataset.role = m.role;
    const who = iso(h('span', 'person-name', displayName(m.id, m.name)));
    if (m.id === me) who.append(h('span', 'you', ' (you)'));
    li.append(avatar(m.id, m.name), who, h('span', `member-role role-${m.role}`, ROLE_LABEL[m.role] || m.role));
    const acts = h('span', 'person-actions');
    const reload = () => loadGroup(room);
    if (m.id !== me && m.role !== 'owner') {
      if (owner && m.role === 'member') {
        acts.append(actionButton('make-admin', 'Make admin', async () => {
          await api.setGroupRole(g.id, m.id, 'admin');
          await reload();
        }, false, report));
      }
      if (owner && m.role === 'admin') {
        acts.append(actionButton('revoke-admin', 'Remove admin', async () => {
          await api.setGroupRole(g.id, m.id, 'member');
          await reload();
        }, false, report));
      }
      if (owner) {
        acts.append(confirmButton('make-owner', 'Make owner', 'Make owner?', async () => {
          await api.transferGroup(g.id, m.id);
          await reload();
        }, report));
      }
      if (owner || (role === 'admin' && m.role === 'member')) {
        acts.append(confirmButton('remove-member', 'Remove', 'Remove?', async () => {
          await api.removeGroupMember(g.id, m.id);
          await reload();
        }, report));
      }
    }
    if (acts.childElementCount) li.append(acts);
    return li;
  });
}

// renderInvite offers the friends who are not members yet.
function renderInvite(g, manage) {
  setHidden($('group-invite'), !manage || !g);
  if (manage && g) {
    const inGroup = new Set((g.member_list || []).map((m) => m.id));
    const friends = [...state.contacts.values()]
      .filter((c) => c.state === 'friends' && !inGroup.has(c.user.id))
      .sort(byName);
    // A full group takes no one more (group_full): it is not offered.
    const full = g.max_members > 0 && g.members >= g.max_members;
    if (full) friends.length = 0;
    const sel = $('group-invite-user');
    const chosen = sel.value;
    sel.replaceChildren(
      ...friends.map((c) => {
        const o = h('option', '', displayName(c.user.id, c.user.name));
        o.value = String(c.user.id);
        return o;
      }),
    );
    if (friends.some((c) => String(c.user.id) === chosen)) sel.value = chosen;
    setHidden(sel, friends.length === 0);
    setHidden($('group-invite-submit'), friends.length === 0);
    let hint = state.contacts.size === 0 || ![...state.contacts.values()].some((c) => c.state === 'friends')
      ? 'Add friends under People to invite them.'
      : 'All your friends are in this group.';
    if (full) {
      hint = myRole() === 'owner'
        ? 'The group is full. Raise its member limit to invite more.'
        : 'The group is full. The owner can raise its member limit.';
    }
    $('group-invite-hint').textContent = friends.length ? '' : hint;
    setHidden($('group-invite-hint'), friends.length > 0);
  }
}

async function onGroupSave(e) {
  e.preventDefault();
  const g = state.group;
  const room = state.room;
  if (!g || !room) return;
  setHidden($('group-edit-info'), true);
  const changes = {};
  const name = trimSpace($('group-edit-name').value);
  const desc = trimSpace($('group-edit-desc').value);
  if (!showsSomething(name)) {
    showError('group-edit-error', 'The group needs a name.');
    $('group-edit-name').focus();
    return;
  }
  if (name !== g.name) changes.name = name;
  if (desc !== (g.description || '')) changes.description = desc;
  // What is kept unchanged is not checked: the server keeps it as it is.
  for (const [id, long] of [
    ['group-edit-name', 'name' in changes && tooLong(name, MAX_GROUP_NAME, 'The name is')],
    ['group-edit-desc', 'description' in changes && descTooLong(desc)],
  ]) {
    if (long) {
      showError('group-edit-error', long);
      $(id).focus();
      return;
    }
  }
  if (myRole() === 'owner') {
    const cap = parseCap($('group-edit-cap').value);
    const capWrong = capProblem(cap, g.max_members);
    if (capWrong) {
      showError('group-edit-error', capWrong);
      $('group-edit-cap').focus();
      return;
    }
    if (cap !== g.max_members) changes.max_members = cap;
  }
  showError('group-edit-error', '');
  if (!Object.keys(changes).length) {
    $('group-edit-info').textContent = 'Nothing to save.';
    setHidden($('group-edit-info'), false);
    return;
  }
  await busy($('group-edit-save'), async () => {
    try {
      const fresh = await api.updateGroup(g.id, changes);
      if (state.room !== room) return;
      if (fresh) state.group = fresh;
      fillGroupEdit(true);
      $('group-edit-info').textContent = 'Saved.';
      setHidden($('group-edit-info'), false);
      await loadGroup(room);
    } catch (err) {
      showError('group-edit-error', friendlyError(err));
    }
  });
}

async function onGroupInvite(e) {
  e.preventDefault();
  const g = state.group;
  const room = state.room;
  const id = Number($('group-invite-user').value);
  if (!g || !id) return;
  showError('group-invite-error', '');
  await busy($('group-invite-submit'), async () => {
    try {
      await api.addGroupMember(g.id, id);
      if (state.room === room) await loadGroup(room);
    } catch (err) {
      showError('group-invite-error', friendlyError(err));
    }
  });
}

// dropGroup forgets a group the user left or deleted here and shows the list.
function dropGroup(id) {
  state.convsVersion++;
  state.convs.delete(id);
  state.cache.delete(id);
  state.reads.delete(id);
  if (state.socket) state.socket.forget(id);
  if (state.room && state.room.id === id) {
    closeGroupPanel();
    state.ended = 'left'; // nothing to keep of it
    clearHash();
    closeRoom();
  }
  renderConversations();
}

async function onGroupLeave() {
  const b = $('group-leave');
  const g = state.group;
  if (!g || !state.me || !armed(b, 'Leave group', 'Really leave?')) return;
  await busy(b, async () => {
    try {
      await api.removeGroupMember(g.id, state.me.id);
      disarm(b, 'Leave group');
      dropGroup(g.id);
    } catch (err) {
      showError('group-foot-error', friendlyError(err));
    }
  });
}

async function onGroupDelete() {
  const b = $('group-delete');
  const g = state.group;
  if (!g || !armed(b, 'Delete group', 'Delete it and its history?')) return;
  await busy(b, async () => {
    try {
      await api.deleteGroup(g.id);
      disarm(b, 'Delete group');
      dropGroup(g.id);
    } catch (err) {
      showError('group-foot-error', friendlyError(err));
    }
  });
}

// onRemoved handles a removed frame: the group is gone from the list and,
// if it is open, its history stays readable but nothing more can be done.
// A room is handled by onRoomRemoved.
function onRemoved(f) {
  const id = f.room_id;
  const conv = state.convs.get(id);
  const isRoom = (state.room && state.room.id === id && state.room.kind === 'room') || (conv && conv.kind === 'room') ||
    state.rooms.joined.some((r) => r.id === id);
  if (isRoom) {
    onRoomRemoved(f);
    return;
  }
  forgetConversation(id);
  if (state.room && state.room.id === id && !state.ended) endAccess(f.reason);
}

function forgetConversation(id) {
  state.convsVersion++;
  state.convs.delete(id);
  state.cache.delete(id);
  state.reads.delete(id);
  state.readSent.delete(id);
  state.readUnsure.delete(id);
  dropReads(id);
  renderConversations();
}

// onRoomRemoved handles the removed of a room left here or in another tab
// or device. It may be old news: replayed after a reconnect, or late while
// this tab entered the room again; so the server is asked first (the
// socket already drops one that its user_seq shows to be old news). A room
// left is gone from the lists, and closed if shown. A room the user is a
// member of again is kept: the removed stopped its delivery here, so it is
// opened again if shown, and its sends still unacknowledged go again. So
// is a room the server could not say about (memberOf): it is not dropped
// on a failed request, and the server refuses its open and sends if it
// was left after all.
async function onRoomRemoved(f) {
  const id = f.room_id;
  const socket = state.socket;
  const member = await memberOf(id, socket);
  if (state.socket !== socket) return; // signed out meanwhile
  if (member !== false) {
    if (state.socket) {
      state.socket.retake(f.unsent || []);
      if (state.room && state.room.id === id && !state.socket.rooms.has(id)) state.socket.openRoom(id, f.last || 0);
    }
    refreshRooms();
    refreshConversationsSoon();
    return;
  }
  forgetConversation(id);
  // Sends still pending there will not go: keep their text for when
  // the room is entered again, and say so.
  for (const p of f.unsent || []) if (!p.settled) unsent(p.target, p.where, p.body, 'You left this room.');
  state.rooms = { ...state.rooms, joined: state.rooms.joined.filter((r) => r.id !== id) };
  renderRooms();
  if (state.room && state.room.id === id) {
    clearHash();
    closeRoom();
    state.cache.delete(id); // closeRoom kept it
  }
}

// ROOM_CHECK_WAITS are the waits before memberOf asks again, one per
// retry: about 15 s in all.
const ROOM_CHECK_WAITS = [500, 1000, 2000, 4000, 8000];

// passing reports whether a request failed for a reason that may go by
// itself: no answer, a server error, a rate limit.
function passing(err) {
  return err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500;
}

// memberOf asks the server whether the user is a member of room id, again
// after a passing failure, with longer waits (or the wait a rate limit
// asks), while socket is the app's. It resolves to true or false when the
// server says (a room gone, 404, or refused, 403, is not the user's), and
// to null when it could not tell.
async function memberOf(id, socket) {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await api.room(id)).member === true;
    } catch (err) {
      if (!passing(err)) return false;
      console.warn('parley: room after removed:', err.message);
      if (attempt >= ROOM_CHECK_WAITS.length || state.socket !== socket) return null;
      const wait = Math.max(ROOM_CHECK_WAITS[attempt], Math.min(err.retryAfterMs || 0, 30000));
      await new Promise((resolve) => setTimeout(resolve, wait));
      if (state.socket !== socket) return null;
    }
  }
}

const ENDED_TEXT = {
  removed: 'You were removed from this group. You can no longer read new messages or write here.',
  left: 'You left this group.',
  deleted: 'This group was deleted.',
};

function endAccess(reason) {
  state.ended = ENDED_TEXT[reason] ? reason : 'removed';
  state.group = null;
  closeGroupPanel();
  const el = $('room-ended');
  el.textContent = ENDED_TEXT[state.ended];
  el.dataset.reason = state.ended;
  setHidden(el, false);
  document.querySelector('.room').classList.add('is-ended');
  $('composer').disabled = true;
  $('send').disabled = true;
  setHidden($('group-settings'), true);
  // The sends still pending here were forgotten with the conversation:
  // they will not go, whatever the link does.
  for (const el of state.pendingEls.values()) {
    el.classList.replace('pending', 'failed');
    el.querySelector('.msg-time').textContent = 'Not sent';
    el.querySelector('.msg-actions')?.remove(); // nothing to retry there
  }
  state.pendingEls.clear();
  state.typing.clear();
  renderTyping();
  state.online = new Map();
  state.onlineCount = 0;
  state.openWait = 0;
  renderOnline();
  $('room-sub').textContent = 'No longer a member';
  composerError('');
}

// clearEnded makes the composer usable again for the next conversation.
function clearEnded() {
  state.ended = '';
  state.group = null;
  clearTimeout(state.groupSoon);
  setHidden($('room-ended'), true);
  document.querySelector('.room').classList.remove('is-ended');
  $('composer').disabled = false;
  $('send').disabled = false;
}

// ---------------------------------------------------------------- read receipts

// onReceipt takes the read positions of one or more members: a group's
// moves come together, one event for all of them, rendered once.
function onReceipt(f) {
  const others = f.positions.filter(
    (p) => p && p.user_id && p.seq >= 0 && !(state.me && p.user_id === state.me.id));
  if (others.length === 0) return;
  let reads = state.reads.get(f.room_id);
  if (!reads) {
    if (!state.room || state.room.id !== f.room_id) return; // the next opened reply tells
    reads = new Map();
    state.reads.set(f.room_id, reads);
  }
  for (const p of others) reads.set(p.user_id, Math.max(reads.get(p.user_id) || 0, p.seq));
  if (state.room && state.room.id === f.room_id) renderReceipts();
}

function setReads(roomId, list) {
  const reads = new Map();
  for (const r of list) {
    if (!r || !r.user_id || (state.me && r.user_id === state.me.id)) continue;
    reads.set(r.user_id, Math.max(reads.get(r.user_id) || 0, r.seq || 0));
  }
  state.reads.set(roomId, reads);
}

function addReceipt(msgEl, text, kind, count) {
  const r = h('div', 'receipt', text);
  r.dataset.receipt = kind;
  if (count != null) r.dataset.count = String(count);
  (msgEl.querySelector('.msg-main') || msgEl).append(r);
}

// renderReceipts shows, under the user's own messages, who has read them:
// "Read" in a direct chat, "Read by N" in a group.
function renderReceipts() {
  const b = box();
  for (const el of b.querySelectorAll('.receipt')) el.remove();
  const room = state.room;
  if (!room || !room.id || !state.me || state.ended) return;
  const reads = state.reads.get(room.id);
  if (!reads || reads.size === 0) return;
  const own = [...b.querySelectorAll(':scope > .msg.own[data-seq]:not(.pending)')];
  if (!own.length) return;
  if (room.kind === 'direct') {
    const peer = room.peer && reads.has(room.peer.id) ? reads.get(room.peer.id) : Math.max(...reads.values());
    const read = own.findLast((el) => Number(el.dataset.seq) <= peer);
    if (read) addReceipt(read, 'Read', 'read');
  } else if (room.kind === 'group') {
    const last = own[own.length - 1];
    const seq = Number(last.dataset.seq);
    let n = 0;
    for (const v of reads.values()) if (v >= seq) n++;
    if (n > 0) addReceipt(last, `Read by ${n}`, 'read-by', n);
  }
}

// ---------------------------------------------------------------- presence and other conversations

function onUserPresence(f) {
  if (!f.user || (state.me && f.user.id === state.me.id)) return;
  if (!setPresence(f.user.id, f.online, f.last_seen)) return;
  learnName(f.user.id, f.user.name);
  renderPeople();
  renderConversations();
  renderOnline();
}

// onConvMessage takes a message of a conversation that is not open here
// (the user's other groups): only the list changes.
function onConvMessage(roomId, m) {
  learnName(m.sender_id, m.sender_name);
  const conv = state.convs.get(roomId);
  if (!conv) {
    refreshConversationsSoon();
    return;
  }
  noteMessage(conv, m);
}

// onRenamed shows a user's new name (a user frame) wherever the page shows
// the user: the header for the user's own, friend lists, the direct chat
// and its place in the conversation list, the online list, the group's
// members. Messages keep the name they were sent with.
function onRenamed(f) {
  const u = f.user;
  if (!u || !u.id || typeof u.name !== 'string' || !u.name || !state.me || state.view !== 'chat') return;
  if (!noteNameVersion(u.id, f.version)) return;
  if (u.id === state.me.id) {
    if (u.name !== state.me.name) setMe({ name: u.name });
    return;
  }
  learnName(u.id, u.name);
  // A list read while the frame came may hold the old name: read again.
  state.contactsVersion++;
  const c = state.contacts.get(u.id);
  if (c) c.user = { ...c.user, name: u.name };
  const b = state.blocked.get(u.id);
  if (b) state.blocked.set(u.id, { ...b, name: u.name });
  for (const conv of state.convs.values()) {
    if (conv.peer && conv.peer.id === u.id) conv.peer = { ...conv.peer, name: u.name };
  }
  const room = state.room;
  if (room && room.kind === 'direct' && room.peer && room.peer.id === u.id) {
    room.peer = { ...room.peer, name: u.name };
    room.name = u.name;
  }
  const o = state.online.get(u.id);
  if (o) {
    state.online.set(u.id, { ...o, name: u.name });
    state.onlineVersion++; // an online list read before has the old name
  }
  const t = state.typing.get(u.id);
  if (t) t.name = u.name;
  const m = state.group && (state.group.member_list || []).find((x) => x.id === u.id);
  if (m) {
    m.name = u.name;
    renderGroupPanel();
  }
  renderPeople();
  renderInviteIfOpen();
  renderOnline();
  renderTyping();
  if (room) updateRoomTitle(); // and the conversation list
  else renderConversations();
}

// ---------------------------------------------------------------- online list

function renderOnline() {
  const users = [...state.online.values()].sort((a, b) => a.name.localeCompare(b.name));
  const items = users.map((u) => {
    learnName(u.id, u.name, u.name_version);
    const li = h('li');
    li.dataset.userId = String(u.id);
    const name = iso(h('span', 'name', displayName(u.id, u.name)));
    name.title = name.textContent; // the whole of a name cut short
    li.append(avatar(u.id, u.name), name);
    if (state.me && u.id === state.me.id) {
      li.classList.add('is-me');
      // Beside the name, not in it: a long name is cut short, not this.
      li.append(h('span', 'you', '(you)'));
    }
    return li;
  });
  // A large room's list names some of those present; the count is all.
  const count = Math.max(state.onlineCount, users.length);
  if (count > users.length) {
    const more = h('li', 'more', `+${count - users.length} more`);
    more.dataset.more = String(count - users.length);
    items.push(more);
  }
  replaceList($('online-list'), items);
  const room = state.room;
  let sub = '';
  if (room && room.kind === 'direct') {
    const p = presenceText(room.peer.id);
    if (users.some((u) => u.id === room.peer.id) || p === 'Online') sub = 'Direct chat · online';
    else sub = p ? `Direct chat · ${p.replace(/^Offline · /, '').toLowerCase()}` : 'Direct chat';
  } else if (room) {
    sub = `${plural(room.members ?? 0, 'member')} · ${count} online`;
  }
  // The server asked us to wait before opening it (rate_limited), or
  // could not answer the open (unavailable).
  if (room && state.openWait) {
    const s = Math.max(1, Math.ceil((state.openWait - Date.now()) / 1000));
    sub = `Waiting to load new messages — trying again in ${plural(s, 'second')}…`;
  }
  $('room-sub').textContent = sub;
}

// refreshOnline loads the open room's online list again: when presence
// frames leave it out of step with the count (a room that was large, and
// whose list was partial, has become small again).
async function refreshOnline(id) {
  if (state.onlineFetch) return;
  state.onlineFetch = true;
  const open = () => state.room && state.room.id === id;
  try {
    // A frame that came while the list was read may be newer than the
    // answer: read again rather than undo it. An answer still older after
    // the last try is dropped: the count stays as the frames set it, and
    // the next presence frame out of step with it reads again.
    if (!open()) return;
    const { answer: d, settled } = await readSettled(
      () => state.onlineVersion,
      () => api.online(id),
      () => !open(),
    );
    if (!settled || !open()) return;
    state.online = new Map((d.users || []).map((u) => [u.id, u]));
    state.onlineCount = d.count;
    renderOnline();
  } catch {
    // the next presence frame tries again
  } finally {
    state.onlineFetch = false;
  }
}

// ---------------------------------------------------------------- messages

const box = () => $('messages');

// EVENT_KINDS are the messages shown as a line of their own, not a bubble.
const EVENT_KINDS = new Set([
  'join',
  'leave',
  'created',
  'added',
  'removed',
  'renamed',
  'described',
  'admin_granted',
  'admin_revoked',
  'owner_transferred',
  'cap_changed',
]);

// GROUP_EVENTS change a group's members or settings.
const GROUP_EVENTS = new Set([
  'created',
  'added',
  'removed',
  'leave',
  'join',
  'renamed',
  'described',
  'admin_granted',
  'admin_revoked',
  'owner_transferred',
  'cap_changed',
]);

// quoted is user text s in quotes, as eventParts gives it.
function quoted(s) {
  return ['“', { text: s }, '”'];
}

// eventParts describes an event message as the page's strings, user
// references ({id, text, unknown}) and user text ({text}: the sender's
// name, a group's name or description), e.g.
// [{text: "Ada"}, " added ", {id: 9, text: "Grace"}].
function eventParts(m) {
  const mine = state.me && m.sender_id === state.me.id;
  const sender = { text: mine ? 'You' : displayName(m.sender_id, m.sender_name) };
  const known = state.me && m.target_id === state.me.id ? true : state.names.has(m.target_id);
  const target = { id: m.target_id, text: nameOf(m.target_id, m.target_name), unknown: !known && !m.target_name };
  const body = m.body || '';
  switch (m.kind) {
    case 'join':
      return [sender, ' joined'];
    case 'leave':
      return [sender, ' left'];
    case 'created':
      return [sender, ' created the group', ...(body ? [' ', ...quoted(body)] : [])];
    case 'added':
      return [sender, ' added ', target];
    case 'removed':
      return [sender, ' removed ', target];
    case 'renamed':
      return [sender, ' renamed the group to ', ...quoted(body)];
    case 'described':
      return body ? [sender, ' changed the description to ', ...quoted(body)] : [sender, ' removed the description'];
    case 'admin_granted':
      return [sender, ' made ', target, ' an admin'];
    case 'admin_revoked':
      return [sender, ' made ', target, ' a regular member'];
    case 'owner_transferred':
      return [sender, ' made ', target, ' the owner'];
    case 'cap_changed':
      return [sender, ` set the member limit to ${body}`];
    default:
      return [sender, ` ${m.kind}`];
  }
}

// fillNames puts names learned since into event lines that lacked them.
function fillNames() {
  for (const el of box().querySelectorAll('.who[data-unknown]')) {
    const name = state.names.get(Number(el.dataset.userId));
    if (name) {
      el.textContent = name;
      delete el.dataset.unknown;
    }
  }
}

// timeText is a message's time as shown, in the user's locale and time
// zone: the time of day for a message of today, with the date for another.
function timeText(when) {
  return (dayKey(when) === dayKey(new Date()) ? timeFmt : dateTimeFmt).format(when);
}

// timeEl shows when a message was sent (timeText). Its datetime is the
// instant in UTC to the millisecond: the server's created_at has
// microseconds, more than HTML allows in a datetime.
function timeEl(when) {
  const t = h('time', 'msg-time', timeText(when));
  t.dateTime = when.toISOString();
  t.title = fullFmt.format(when);
  return t;
}

// messageEl builds the element for a stored message (or a pending send).
function messageEl(m) {
  const el = h('div', 'msg');
  el.dataset.kind = m.kind;
  el.dataset.senderId = String(m.sender_id);
  el.dataset.time = m.created_at;
  if (m.seq) el.dataset.seq = String(m.seq);
  const when = new Date(m.created_at);
  const name = displayName(m.sender_id, m.sender_name);
  learnName(m.sender_id, m.sender_name);

  if (EVENT_KINDS.has(m.kind)) {
    el.classList.add('notice', 'event');
    if (m.target_id) el.dataset.targetId = String(m.target_id);
    const pill = h('span', 'notice-text');
    for (const part of eventParts(m)) {
      if (typeof part === 'string') pill.append(part);
      else if (!('id' in part)) pill.append(iso(h('bdi', null, part.text)));
      else {
        const who = iso(h('span', 'who', part.text));
        who.dataset.userId = String(part.id);
        if (part.unknown) who.dataset.unknown = 'true';
        pill.append(who);
      }
    }
    pill.append(' ', timeEl(when));
    el.append(pill);
    return el;
  }

  if (state.me && m.sender_id === state.me.id) el.classList.add('own');
  const main = h('div', 'msg-main');
  const bubble = h('div', 'bubble');
  bubble.append(bodyEl(m.body), timeEl(when));
  main.append(h('div', 'msg-sender', name), bubble);
  el.append(avatar(m.sender_id, name), main);
  return el;
}

// bodyEl shows a message's body as written, each web address in it
// (linkParts) a link that opens in a new tab, with no handle on this
// page, no referrer and no endorsement.
function bodyEl(body) {
  const el = iso(h('div', 'msg-body'));
  for (const part of linkParts(body || '')) {
    if (typeof part === 'string') {
      el.append(part);
      continue;
    }
    const a = h('a', null, part.text);
    a.setAttribute('href', part.href);
    a.setAttribute('target', '_blank');
    a.setAttribute('rel', 'noopener noreferrer nofollow');
    el.append(a);
  }
  return el;
}

function presenceEl(user, online) {
  const el = h('div', 'notice presence');
  el.dataset.kind = 'presence';
  el.dataset.userId = String(user.id);
  el.dataset.time = new Date().toISOString();
  el.append(isoParts(h('span', 'notice-text'), [{ text: displayName(user.id, user.name) }, ` is ${online ? 'online' : 'offline'}`]));
  return el;
}

// decorate marks where a day starts and where a sender's group starts,
// from the element before it.
function decorate(el) {
  if (!el || !el.dataset || !el.dataset.time) return;
  const prev = el.previousElementSibling;
  const p = prev && prev.dataset.time ? prev : null;
  const t = new Date(el.dataset.time);
  const newDay = !p || dayKey(new Date(p.dataset.time)) !== dayKey(t);
  el.classList.toggle('new-day', newDay);
  if (newDay) el.dataset.day = dayLabel(t);
  else delete el.dataset.day;
  if (el.classList.contains('notice')) return;
  const first =
    newDay ||
    p.classList.contains('notice') ||
    p.dataset.senderId !== el.dataset.senderId ||
    t - new Date(p.dataset.time) > GROUP_GAP_MS;
  el.classList.toggle('first', first);
}

// Times of today show no date, and day labels say today and yesterday:
// at the next local midnight (or when a hidden page, whose timers may
// have been held, is shown after it) they are drawn again.
const dayWatch = { key: '', timer: 0 };

// watchDay arms the redraw at the next local midnight.
function watchDay() {
  clearTimeout(dayWatch.timer);
  const now = new Date();
  dayWatch.key = dayKey(now);
  const midnight = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
  dayWatch.timer = setTimeout(checkDay, midnight - now + 100);
}

function stopWatchingDay() {
  clearTimeout(dayWatch.timer);
  dayWatch.timer = 0;
}

// checkDay draws again what depends on the day, if it changed.
function checkDay() {
  if (!dayWatch.timer) return;
  if (dayKey(new Date()) === dayWatch.key) {
    watchDay(); // early, or nothing changed
    return;
  }
  watchDay();
  const cached = [...state.cache.values()].flatMap((c) => c.els);
  for (const el of [...box().children, ...cached]) {
    if (!el.dataset || !el.dataset.time) continue;
    if (el.classList.contains('new-day')) el.dataset.day = dayLabel(new Date(el.dataset.time));
    // A pending or failed send's time says how it is going.
    if (el.classList.contains('pending') || el.classList.contains('failed')) continue;
    const t = el.querySelector('time.msg-time');
    if (t) t.textContent = timeText(new Date(el.dataset.time));
  }
  renderConversations();
}

// hushLog marks the message log busy (aria-busy) until the function it
// returns is called and the page has rendered what was put in meanwhile.
// A screen reader announces what is added to a log (role="log"): right
// for a new message, not for a page of history, which it would read out
// whole. Of overlapping hushes the last one ends it.
function hushLog() {
  const log = box();
  const n = ++state.hushes;
  log.setAttribute('aria-busy', 'true');
  return () =>
    requestAnimationFrame(() =>
      setTimeout(() => {
        if (state.hushes === n) log.removeAttribute('aria-busy');
      }),
    );
}

function nearBottom() {
  const b = box();
  return b.scrollHeight - b.scrollTop - b.clientHeight < 80;
}

function scrollToBottom() {
  const b = box();
  b.scrollTop = b.scrollHeight;
  state.pinned = true;
  setHidden($('jump'), true);
}

// appendLive adds an element after the last stored message, before pending sends.
function appendLive(el) {
  const b = box();
  const firstPending = b.querySelector(':scope > .pending');
  b.insertBefore(el, firstPending);
  decorate(el);
  decorate(el.nextElementSibling);
}

// insertOlder puts messages (ascending) above everything shown.
function insertOlder(msgs) {
  if (!msgs.length) return;
  const top = $('history-top');
  const next = top.nextElementSibling;
  const els = msgs.map(messageEl);
  top.after(...els);
  for (const el of els) decorate(el);
  decorate(next);
}

function showLive(messages) {
  const stick = nearBottom();
  let own = false;
  if (messages.length) refreshRoomsSoon();
  const group = state.room && state.room.kind === 'group';
  for (const m of messages) {
    if (state.typing.delete(m.sender_id)) renderTyping();
    if (group && GROUP_EVENTS.has(m.kind)) onGroupEvent(m);
    else if (m.kind === 'join' || m.kind === 'leave') refreshRoomSoon();
    settleFirst(m);
    const pend = m.client_id && state.me && m.sender_id === state.me.id && state.pendingEls.get(m.client_id);
    if (pend) {
      pend.remove();
      state.pendingEls.delete(m.client_id);
      own = true;
    }
    appendLive(messageEl(m));
  }
  renderReceipts();
  if (stick || own) scrollToBottom();
  else setHidden($('jump'), false);
  if (state.room && messages.length) {
    const conv = state.convs.get(state.room.id);
    if (conv) for (const m of messages) noteMessage(conv, m);
    else refreshConversationsSoon();
    markRead();
  }
}

// refreshRoomSoon re-reads the open room (its member count) after joins and leaves.
function refreshRoomSoon() {
  clearTimeout(state.roomTimer);
  const room = state.room;
  state.roomTimer = setTimeout(async () => {
    try {
      const { room: fresh } = await api.room(room.id);
      if (state.room !== room) return;
      Object.assign(room, fresh);
      renderOnline();
    } catch (err) {
      console.warn('parley: room:', err.message);
    }
  }, 500);
}

function appendPending(p) {
  const el = messageEl({
    kind: 'text',
    sender_id: state.me.id,
    sender_name: state.me.name,
    body: p.body,
    created_at: new Date(p.at || Date.now()).toISOString(),
  });
  el.classList.add('pending');
  el.dataset.clientId = p.clientId;
  el.querySelector('.msg-time').textContent = p.tries > 0 ? 'Retrying…' : 'Sending…';
  box().append(el);
  decorate(el);
  state.pendingEls.set(p.clientId, el);
  if (p.stuck) markStuck(el, p);
}

// markStuck shows a send that failed its last try, whose outcome the
// server could not tell: not sent, with Retry (the same client id, which
// stores it at most once) and Discard. It stays among the pending sends,
// where its message replaces it if it was stored after all.
function markStuck(el, p) {
  el.classList.add('failed');
  el.querySelector('.msg-time').textContent = 'Not sent';
  if (el.querySelector('.msg-actions')) return;
  const actions = h('div', 'msg-actions');
  const retry = h('button', 'link', 'Retry');
  retry.type = 'button';
  retry.dataset.action = 'retry';
  retry.addEventListener('click', () => {
    if (state.pendingEls.get(p.clientId) !== el) return;
    actions.remove();
    el.classList.remove('failed');
    el.querySelector('.msg-time').textContent = 'Sending…';
    composerError('');
    if (p.first) resendFirstDirect(p);
    else state.socket.resend(p.clientId);
  });
  const discard = h('button', 'link', 'Discard');
  discard.type = 'button';
  discard.dataset.action = 'discard';
  discard.addEventListener('click', () => {
    if (state.pendingEls.get(p.clientId) !== el) return;
    el.remove();
    state.pendingEls.delete(p.clientId);
    composerError('');
    if (p.first) {
      state.firstSends.delete(p.clientId);
      keepFirstSends();
    } else state.socket.discard(p.clientId);
  });
  actions.append(retry, ' · ', discard);
  el.querySelector('.msg-main').append(actions);
}

function updateHistoryTop() {
  const room = state.room;
  const text = $('history-text');
  if (!room) return;
  setHidden($('load-older'), state.loadingOlder || !state.hasOlder);
  if (state.loadingOlder) text.textContent = 'Loading earlier messages…';
  else if (state.hasOlder) text.textContent = '';
  else {
    const name = { text: convTitle(room) };
    const parts = room.kind === 'direct' ? ['This is the beginning of your chat with ', name, '.']
      : ['This is the beginning of ', room.kind === 'room' ? '#' : '', name, '.'];
    text.replaceChildren();
    isoParts(text, parts);
  }
}

async function loadOlder() {
  const room = state.room;
  if (!room || !state.hasOlder || state.loadingOlder) return;
  state.loadingOlder = true;
  updateHistoryTop();
  let page;
  try {
    page = await api.history(room.id, { before: state.oldest, limit: PAGE });
  } catch (err) {
    if (state.room === room) {
      state.loadingOlder = false;
      updateHistoryTop();
      $('history-text').textContent = err.message; // the button retries
    }
    return;
  }
  if (state.room !== room) return;
  const b = box();
  const height = b.scrollHeight;
  const msgs = (page.messages || []).filter((m) => m.seq < state.oldest);
  const done = hushLog();
  insertOlder(msgs);
  done();
  // Keep what the reader was looking at in place.
  b.scrollTop += b.scrollHeight - height;
  if (msgs.length) state.oldest = msgs[0].seq;
  state.hasOlder = !!page.has_more && msgs.length > 0;
  state.loadingOlder = false;
  updateHistoryTop();
  fillViewport();
}

// fillViewport loads older pages until the list can scroll (or all is shown).
function fillViewport() {
  const b = box();
  if (state.hasOlder && b.scrollHeight <= b.clientHeight + 120) loadOlder();
}

function onMessagesScroll() {
  state.pinned = nearBottom();
  if (box().scrollTop < 150) loadOlder();
  if (nearBottom()) setHidden($('jump'), true);
}

// ---------------------------------------------------------------- composer

function composerError(msg, clearAfterMs) {
  clearTimeout(state.composerTimer);
  const el = $('composer-error');
  el.textContent = msg || '';
  setHidden(el, !msg);
  if (msg && clearAfterMs) state.composerTimer = setTimeout(() => composerError(''), clearAfterMs);
}

// renderTyping shows who is typing in the open conversation; an entry
// lapses 5 s after its last typing frame or when its message arrives.
function renderTyping() {
  const now = Date.now();
  for (const [id, t] of state.typing) if (t.until <= now) state.typing.delete(id);
  const names = [...state.typing.values()].map((t) => t.name || 'Someone');
  const el = $('typing');
  const parts = names.flatMap((name, i) => (i ? [', ', { text: name }] : [{ text: name }]));
  if (names.length) parts.push(names.length === 1 ? ' is typing…' : ' are typing…');
  el.replaceChildren();
  isoParts(el, parts);
  setHidden(el, names.length === 0);
}

// onComposerInput sizes the composer and tells the others we are typing.
function onComposerInput() {
  autosize();
  const c = $('composer');
  if (showsSomething(c.value) && state.socket && state.room && state.room.id) state.socket.typing(state.room.id);
}

function autosize() {
  const c = $('composer');
  c.style.height = 'auto';
  c.style.height = `${Math.min(c.scrollHeight, 200)}px`;
}

function sendComposer() {
  const room = state.room;
  const socket = state.socket;
  const c = $('composer');
  if (!room || !socket || state.ended) return;
  const body = c.value;
  if (!showsSomething(body)) return; // the server refuses it as empty
  if (!socket.fits(room.id, body)) {
    const max = socket.limits.max_message_len;
    composerError(`Message is ${[...body].length} characters long; the limit is ${max}.`);
    return;
  }
  composerError('');
  if (room.kind === 'direct' && !room.id) {
    sendFirstDirect(room, body);
    return;
  }
  // A send moves the sender's read position to the message on the server,
  // with no receipt: what was read before it goes first, as a receipt.
  flushRead(room.id);
  // target and where: for a refusal that comes when it is not shown.
  const p = socket.send(room.id, body, { target: targetOf(room), where: whereTo(room) });
  c.value = '';
  autosize();
  appendPending(p);
  scrollToBottom();
}

// sendFirstDirect sends to a friend with no conversation yet over REST,
// which creates it; from then on the conversation is followed on the socket.
function sendFirstDirect(room, body) {
  const c = $('composer');
  const p = {
    roomId: 0,
    clientId: newClientId(),
    body,
    at: Date.now(),
    tries: 0,
    stuck: false,
    first: true, // over REST: Retry and Discard act here, not on the socket
    peer: room.peer,
    target: targetOf(room),
    where: whereTo(room),
    socket: state.socket, // of this sign-in: it ends with it
  };
  state.firstSends.set(p.clientId, p);
  keepFirstSends();
  c.value = '';
  autosize();
  appendPending(p);
  scrollToBottom();
  postFirstDirect(p);
}

// keepFirstSends keeps the first messages to friends not yet answered for
// a reload, with the socket's sends (unsent.js), unless the user signed
// out.
function keepFirstSends() {
  const keep = state.socket && state.socket.keep;
  if (keep) keep.saveFirst(state.firstSends.values());
}

// restoreFirstSends takes back the first messages to friends kept before
// a reload: pending again, shown in the direct chat with the friend, and
// posted again with their client IDs once socket is connected (the server
// stores each at most once: a try before the reload may have made the
// conversation, and stored the message); those shown as not sent stay so,
// for Retry or Discard.
function restoreFirstSends(kept, socket) {
  const restored = [];
  for (const e of kept) {
    if (state.firstSends.has(e.clientId)) continue;
    const p = { ...e, tries: 0, stuck: !!e.stuck, first: true, socket };
    state.firstSends.set(p.clientId, p);
    if (!p.stuck) restored.push(p);
  }
  if (!restored.length) return;
  let done = false;
  socket.on('hello', () => {
    if (done) return;
    done = true;
    for (const p of restored) if (state.firstSends.get(p.clientId) === p && !p.stuck) postFirstDirect(p);
  });
}

// resendFirstDirect sends again, with its client id, a first message that
// failed its last try (Retry); it is tried as often again.
function resendFirstDirect(p) {
  if (state.firstSends.get(p.clientId) !== p || !p.stuck || state.socket !== p.socket) return;
  p.tries = 0;
  p.stuck = false;
  keepFirstSends();
  postFirstDirect(p);
}

// postFirstDirect posts first message p until the server answers it. An
// answer of unknown outcome (unavailable, internal, another 5xx, or none at
// all) may come from a try that stored it: p stays pending and goes again
// with its client id, which stores it at most once, as the socket's sends
// do (resendWait), and is shown as not sent, with Retry and Discard, after
// its last try. Any other refusal stored nothing and gives its text back.
async function postFirstDirect(p) {
  const live = () => state.socket === p.socket && state.firstSends.get(p.clientId) === p;
  const shown = () => !!state.room && targetOf(state.room) === p.target;
  let res;
  for (let limited = 0; ; ) {
    try {
      res = await api.sendDirect(p.peer.id, p.clientId, p.body);
      break;
    } catch (err) {
      // Signed out meanwhile, or settled or discarded: what was shown is gone.
      if (!live()) return;
      // A refusal for now after a try of unknown outcome leaves it unknown.
      if (err.status === 0 || err.status >= 500 || unsure(err.code) || (p.tries > 0 && err.code === 'rate_limited')) {
        p.tries++;
        const wait = resendWait(p.tries, err.retryAfterMs);
        if (wait > 0) {
          const el = state.pendingEls.get(p.clientId);
          if (el) el.querySelector('.msg-time').textContent = 'Retrying…';
          // settleFirst cuts the wait short.
          await new Promise((resolve) => {
            p.wake = resolve;
            resendAfter(wait).then(resolve);
          });
          if (!live()) return;
          continue;
        }
        // A settled message was stored and is shown: only its publishing failed.
        if (p.settled) {
          state.firstSends.delete(p.clientId);
          keepFirstSends();
          return;
        }
        p.stuck = true;
        keepFirstSends();
        if (!shown()) {
          // Shown as not sent, with Retry and Discard, in its conversation.
          composerError(`A message to ${p.where ? isoText(p.where) : 'another chat'} was not sent: ${err.message}`);
          return;
        }
        const el = state.pendingEls.get(p.clientId);
        if (el) markStuck(el, p);
        composerError(`Not sent: ${err.message}`);
        return;
      }
      // The client id makes a retry safe; a refusal for now goes again.
      if (err.code === 'rate_limited' && limited++ < 5 && shown()) {
        await new Promise((r) => setTimeout(r, err.retryAfterMs || 1000 * limited));
        if (!live()) return;
        continue;
      }
      state.firstSends.delete(p.clientId);
      keepFirstSends();
      const el = state.pendingEls.get(p.clientId);
      if (el) el.remove();
      state.pendingEls.delete(p.clientId);
      if (p.settled) return;
      if (!shown()) {
        unsent(p.target, p.where, p.body, err.message);
        return;
      }
      composerError(err.message);
      const c = $('composer');
      if (!c.value) {
        c.value = p.body;
        autosize();
      }
      return;
    }
  }
  if (!live()) return;
  state.firstSends.delete(p.clientId);
  keepFirstSends();
  const conv = res.conversation;
  if (conv) upsertConv(conv);
  const room = state.room;
  if (!shown() || !conv) return;
  if (!room.id) {
    Object.assign(room, conv, { kind: 'direct', peer: room.peer, name: room.name });
    // Everything from seq 1 comes in a sync, our message included, which
    // replaces the pending one.
    state.socket.openRoom(room.id, 0);
    renderConversations();
    return;
  }
  if (res.message) state.socket.ingest(room.id, [res.message]);
  // Shown already (with the history, or live, from a try that stored it):
  // the pending copy goes.
  const el = state.pendingEls.get(p.clientId);
  if (el && res.message && box().querySelector(`:scope > .msg[data-seq="${res.message.seq}"]:not(.pending)`)) {
    el.remove();
    state.pendingEls.delete(p.clientId);
  }
}

// showFirstSends shows the first messages to the friend of direct chat
// room that are not answered yet, pending or not sent.
function showFirstSends(room) {
  for (const p of state.firstSends.values()) {
    if (p.target === targetOf(room) && !p.settled && !state.pendingEls.has(p.clientId)) appendPending(p);
  }
}

// settleFirst settles the first message to a friend that message m of the
// user's is: a try stored it, and it arrived (live, by a sync, with the
// history). It is shown as the message, no longer as pending; but nothing
// may have published it, so it goes again with its client id now, and on
// the schedule of its tries until an answer ends it, as the socket's
// settled sends do.
function settleFirst(m) {
  const p = m && m.client_id && state.me && m.sender_id === state.me.id && state.firstSends.get(m.client_id);
  if (!p || p.settled) return;
  p.settled = true;
  if (p.stuck) resendFirstDirect(p);
  else if (p.wake) p.wake();
}

// whereTo names a conversation in an error shown elsewhere.
function whereTo(room) {
  return room.kind === 'room' ? `#${room.name}` : convTitle(room);
}

// unsent keeps the text of a send that failed while the user looked at
// another conversation, for when its own (target) is shown again, and
// says there where it did not go.
function unsent(target, where, body, why) {
  state.unsent.set(target, { body, why });
  composerError(`A message to ${where ? isoText(where) : 'another chat'} was not sent: ${why}`);
}

function isSendKey(e) {
  // Enter sends, Shift+Enter is a new line; not while an IME is composing.
  return e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229;
}

function onComposerKey(e) {
  if (isSendKey(e)) {
    e.preventDefault();
    sendComposer();
  }
}

// Some synthetic input (DevTools-protocol key events, as in browser tests)
// delivers the Enter character as its own keypress, which would insert a
// newline after the send; a real browser never gets this far.
function onComposerKeypress(e) {
  if (isSendKey(e)) e.preventDefault();
}

// ---------------------------------------------------------------- socket

function connStatus({ state: s, transport, retryAt, reason }) {
  const el = $('conn-status');
  el.dataset.state = s;
  el.dataset.transport = transport;
  el.title = transport === 'poll' ? 'Live updates by long-polling' : 'Live updates by WebSocket';
  if (s === 'connected') state.everConnected = true;
  let text = 'Connected';
  if (s !== 'connected') text = state.everConnected ? 'Connection lost — reconnecting…' : 'Connecting…';
  if (s === 'disconnected' && !state.everConnected) text = 'Cannot reach the server — retrying…';
  if (s === 'disconnected' && reason === 'limited') {
    // The server answers, but refuses this connection for the user's
    // limits: too many connections (tabs, devices) or opened too often.
    const secs = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
    text = `Too many open tabs or reconnects — retrying ${retryAt ? `in ${plural(secs, 'second')}` : 'later'}…`;
  }
  $('conn-text').textContent = text;
  setHidden($('conn-retry'), s !== 'disconnected' || !state.socket || state.socket.stopped);
}

// reloadLists loads again what frames missed while the page had no
// connection may have changed: the room, conversation and contact lists
// (a room entered elsewhere for the first time is in no event log), and
// the open group's members (their names, renamed meanwhile).
function reloadLists() {
  refreshRooms();
  refreshConversations();
  refreshContacts();
  reloadGroupSoon();
}

// startSocket connects by WebSocket, or by long-polling when no WebSocket
// gets through or the page's URL says ?transport=poll.
function startSocket() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // What was sent here and not acknowledged before a reload is pending
  // again, and goes with its client id (unsent.js).
  const keep = new Unsent(state.me.id);
  const socket = new ChatSocket({
    keep,
    userId: state.me.id,
    wsUrl: `${proto}//${location.host}/api/ws`,
    pollUrl: '/api/poll',
    transport: new URLSearchParams(location.search).get('transport') === 'poll' ? 'poll' : 'ws',
    // A WebSocket failed before its hello: is the HTTP API up, the session
    // still valid (a 401 signs out, through the unauthorized handler), and
    // would the server let an open in now, or refuse it for a limit (too
    // many connections, opened too often), which the page cannot read from
    // the failed WebSocket? A server without the check answers as before.
    probe: () =>
      api.checkOpen().then(
        () => ({ up: true }),
        (err) => {
          if (err.status === 429) return { up: true, retryAfterMs: err.retryAfterMs > 0 ? err.retryAfterMs : 1000 };
          if (err.status === 0 || err.status === 401) return { up: false };
          return api.me().then(() => ({ up: true }), () => ({ up: false }));
        },
      ),
  });
  state.socket = socket;
  const kept = keep.load();
  socket.restore(kept.filter((e) => !e.first));
  restoreFirstSends(kept.filter((e) => e.first), socket);
  const current = (roomId) => state.socket === socket && state.room && state.room.id === roomId;

  socket
    .on('state', connStatus)
    .on('contact', onContactFrame)
    .on('user', onRenamed)
    .on('conversation', onConversationFrame)
    .on('read', onRead)
    .on('conv-message', ({ roomId, message }) => onConvMessage(roomId, message))
    .on('user-presence', onUserPresence)
    .on('receipt', onReceipt)
    .on('removed', onRemoved)
    .on('hello', (f) => {
      // A resumed long-poll channel's hello is its first: its times may
      // be older than a renewal since.
      if (!f.resumed) scheduleRenewal(f);
      showGroupCaps();
      // Frames may have been missed while disconnected. Not by a resumed
      // long-poll channel that the server kept: it gives again what was
      // lost; one it rebuilt says so (resumed), and the lists are loaded
      // again then, once. Read positions posted on the connection that
      // ended may be lost either way: those it did not answer go again
      // (a room's as queueRead spreads them), or the list would count
      // as unread what was read here, and left.
      state.readSent.clear();
      const unsure = [...state.readUnsure];
      state.readUnsure.clear();
      for (const [id, seq] of unsure) {
        const kind = state.convs.get(id)?.kind;
        queueRead(id, seq, kind !== 'direct' && kind !== 'group');
      }
      if (!f.resumed) reloadLists();
      markRead();
      // A resumed long-poll channel replays its first hello, whose user
      // may be older than a rename made since: only a new one tells.
      if (f.user && !f.resumed && state.me && f.user.name !== state.me.name) {
        setMe(f.user);
      } else if (f.user && !f.resumed && state.me) {
        noteNameVersion(state.me.id, f.user.name_version);
      }
    })
    .on('resumed', () => {
      // A long-poll channel rebuilt by the server: the user frames of
      // renames made meanwhile were lost, as after a reconnect. Open
      // rooms' online lists come again in opened frames.
      reloadLists();
    })
    .on('opened', ({ room, online, onlineCount, reads }) => {
      if (reads) setReads(room.id, reads);
      if (!current(room.id)) return;
      state.openWait = 0;
      const name = state.room.name;
      Object.assign(state.room, room); // same object: in-flight page loads stay valid
      if (state.room.kind !== 'direct' && !state.room.name) state.room.name = name;
      state.online = new Map(online.map((u) => [u.id, u]));
      state.onlineCount = onlineCount ?? online.length;
      state.onlineVersion++;
      renderOnline();
      if (state.room.name !== name) updateRoomTitle();
      renderReceipts();
    })
    .on('open-wait', ({ roomId, retryAt }) => {
      if (!current(roomId)) return;
      state.openWait = retryAt;
      renderOnline();
    })
    .on('messages', ({ roomId, messages }) => {
      if (current(roomId)) showLive(messages);
    })
    .on('typing', (f) => {
      if (!current(f.room_id) || (state.me && f.user.id === state.me.id)) return;
      state.typing.set(f.user.id, { name: f.user.name, until: Date.now() + 5000 });
      renderTyping();
      setTimeout(renderTyping, 5100);
    })
    .on('online-count', (f) => {
      // A large room: how many are present, in place of a presence frame each.
      if (!current(f.room_id)) return;
      state.onlineVersion++;
      state.onlineCount = f.online_count;
      renderOnline();
    })
    .on('presence', (f) => {
      if (!current(f.room_id)) return;
      const known = state.online.has(f.user.id);
      state.onlineVersion++;
      if (f.online) state.online.set(f.user.id, f.user);
      else state.online.delete(f.user.id);
      if (typeof f.online_count === 'number') {
        state.onlineCount = f.online_count;
        if (state.online.size !== f.online_count) refreshOnline(f.room_id);
      }
      renderOnline();
      // Going offline is news only about someone the list showed: in a
      // room that was large, others came and went as a count.
      if ((state.me && f.user.id === state.me.id) || (!f.online && !known)) return;
      const stick = nearBottom();
      appendLive(presenceEl(f.user, f.online));
      if (stick) scrollToBottom();
    })
    .on('ack', (f) => {
      // A send kept over a reload whose message was stored before: it is
      // one the page shows already, or older, and comes no more.
      const el = state.pendingEls.get(f.client_id);
      if (!el || !f.message || !current(f.room_id) || f.message.seq > socket.last(f.room_id)) return;
      el.remove();
      state.pendingEls.delete(f.client_id);
    })
    .on('send-failed', (p) => {
      const el = state.pendingEls.get(p.clientId);
      if (el) el.remove();
      state.pendingEls.delete(p.clientId);
      const why = p.message || 'The message was not sent.';
      if (!current(p.roomId)) {
        // Written in a conversation shown no more: say which, and keep
        // the text for when it is shown again.
        unsent(p.target, p.where, p.body, why);
        return;
      }
      composerError(why);
      // Give the text back so it is not lost.
      const c = $('composer');
      if (!c.value) {
        c.value = p.body;
        autosize();
      }
    })
    .on('send-retrying', (p) => {
      // The server could not tell whether it stored the message: it goes
      // again with its client id, shown as pending meanwhile.
      const el = state.pendingEls.get(p.clientId);
      if (el) el.querySelector('.msg-time').textContent = 'Retrying…';
    })
    .on('send-stuck', (p) => {
      const why = p.message || 'The message was not sent.';
      if (!current(p.roomId)) {
        // Shown as not sent, with Retry and Discard, in its conversation.
        composerError(`A message to ${p.where ? isoText(p.where) : 'another chat'} was not sent: ${why}`);
        return;
      }
      const el = state.pendingEls.get(p.clientId);
      if (el) markStuck(el, p);
      composerError(`Not sent: ${why}`);
    })
    .on('error', (f) => {
      if (f.request === 'read') {
        state.readUnsure.delete(f.requestRoomId); // answered: a read position is best effort
        return;
      }
      if (f.request === 'open' && current(f.requestRoomId) && state.openWait) {
        // Asked again no more (it failed its last try): no countdown.
        state.openWait = 0;
        renderOnline();
      }
      // Reopening a group we were removed from while away.
      if (f.request === 'open' && f.code === 'not_found' && current(f.requestRoomId) && state.room.kind === 'group') {
        state.socket.forget(f.requestRoomId);
        onRemoved({ room_id: f.requestRoomId, reason: 'removed' });
        return;
      }
      if (f.room_id && state.room && f.room_id !== state.room.id) return;
      // The banner of an ended group says why: what was sent before the
      // page knew is refused ("no such room"), which is no news.
      if (state.ended && f.room_id) return;
      composerError(f.message || f.code, f.transient ? 4000 : 0);
    })
    .on('session-ended', () => {
      if (state.socket === socket) showSignin('Your session has ended. Please sign in again.');
    });
  socket.start();
}

// ---------------------------------------------------------------- session

// A WebSocket cannot refresh the session cookie, and the server renews the
// session of an open connection near its end without it: a page whose
// only traffic is its live connection would keep the cookie it signed in
// with, and be signed out on a reload or reconnect once it ended. So the
// page makes a request (GET /api/me) where one renews the session and the
// cookie with it: after session_renew_at, before session_renew_by (told
// by the hello and by GET /api/me, docs/protocol.md), at a random moment
// of up to an hour after the first, so that many pages do not come at
// once. A hidden page's timers may be held back: it checks when shown.
const RENEW_SPREAD = 3600000; // ms
const RENEW_TIMER_MAX = 86400000; // a longer timeout overflows past 24.8 days: wake daily and check
const renewal = { due: 0, retry: 0, notBefore: 0, timer: 0, busy: false };

// scheduleRenewal takes the times of f, a hello or GET /api/me's answer.
function scheduleRenewal(f) {
  clearTimeout(renewal.timer);
  const from = Date.parse(f.session_renew_at);
  const by = Date.parse(f.session_renew_by);
  if (!(from > 0)) {
    renewal.due = 0; // a session that is never renewed
    return;
  }
  const spread = Math.min(RENEW_SPREAD, by > from ? (by - from) / 2 : 0);
  renewal.due = from + Math.random() * spread;
  // The times are the server's: a clock ahead of it would ask before the
  // session is due, and be told the same times again. Ask again after a
  // while, not at once.
  renewal.retry = Math.min(RENEW_SPREAD, Math.max(10000, spread));
  armRenewal();
}

function armRenewal() {
  clearTimeout(renewal.timer);
  if (!renewal.due) return;
  const wait = Math.max(renewal.due, renewal.notBefore) - Date.now();
  renewal.timer = setTimeout(checkRenewal, Math.min(Math.max(wait, 0), RENEW_TIMER_MAX));
}

function stopRenewal() {
  clearTimeout(renewal.timer);
  renewal.due = 0;
  renewal.notBefore = 0;
}

// checkRenewal makes the request once it is due. A 401 signs out, through
// the unauthorized handler; another failure is tried again later.
async function checkRenewal() {
  if (!renewal.due || renewal.busy || !state.me) return;
  if (Date.now() < Math.max(renewal.due, renewal.notBefore)) {
    armRenewal();
    return;
  }
  renewal.busy = true;
  renewal.notBefore = Date.now() + renewal.retry;
  try {
    const d = await api.session();
    if (state.me) scheduleRenewal(d);
  } catch (err) {
    if (err.status === 401) stopRenewal();
    else armRenewal();
  } finally {
    renewal.busy = false;
  }
}

// ---------------------------------------------------------------- profile

function openProfile() {
  $('profile-name').value = state.me.name;
  $('profile-email').textContent = state.me.email || '';
  setHidden($('profile-error'), true);
  $('profile').showModal();
  $('profile-name').select();
}

async function onProfileSave(e) {
  e.preventDefault();
  const name = trimSpace($('profile-name').value);
  const err = $('profile-error');
  const problem = showsSomething(name) ? tooLong(name, MAX_USER_NAME, 'The name is') : 'Your name cannot be empty.';
  if (problem) {
    err.textContent = problem;
    setHidden(err, false);
    $('profile-name').focus();
    return;
  }
  await busy($('profile-save'), async () => {
    try {
      setMe(await api.setName(name));
      if (tabs) tabs.postMessage({ me: state.me });
      $('profile').close();
    } catch (ex) {
      err.textContent = ex.message;
      setHidden(err, false);
    }
  });
}

// ---------------------------------------------------------------- start

function wire() {
  $('step-email').addEventListener('submit', onSendCode);
  $('have-code').addEventListener('click', onHaveCode);
  $('step-code').addEventListener('submit', onVerify);
  $('change-email').addEventListener('click', () => showStep('email'));
  $('resend-code').addEventListener('click', onResendCode);
  $('step-name').addEventListener('submit', onSaveName);
  $('name-signout').addEventListener('click', signOut);

  $('signout').addEventListener('click', signOut);
  $('profile-open').addEventListener('click', openProfile);
  $('profile-form').addEventListener('submit', onProfileSave);
  $('profile-cancel').addEventListener('click', () => $('profile').close());

  $('room-form').addEventListener('submit', onRoomSubmit);
  $('people-form').addEventListener('submit', (e) => {
    e.preventDefault();
    searchPeople();
  });
  $('people-search').addEventListener('input', onPeopleInput);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible') return;
    checkDay();
    markRead();
    checkRenewal(); // timers may have been held back while hidden
  });
  window.addEventListener('focus', markRead);
  window.addEventListener('pagehide', () => {
    for (const id of state.readQueue.keys()) flushRead(id); // best effort: the page is going
  });
  $('room-input').addEventListener('input', () => {
    const name = roomInputName();
    roomHint(name ? checkRoomName(name) : '');
  });
  $('back').addEventListener('click', onBack);
  $('new-group').addEventListener('click', openCreateGroup);
  $('group-create-form').addEventListener('submit', onCreateGroup);
  $('group-create-cancel').addEventListener('click', () => $('group-create').close());
  $('group-create').addEventListener('close', () => giveFocusBack($('group-create'), $('new-group')));
  $('group-settings').addEventListener('click', openGroupPanel);
  $('group-dialog-close').addEventListener('click', closeGroupPanel);
  $('group-dialog').addEventListener('close', () => {
    if (!$('group-settings').hidden) giveFocusBack($('group-dialog'), $('group-settings'));
  });
  $('group-edit').addEventListener('submit', onGroupSave);
  $('group-invite').addEventListener('submit', onGroupInvite);
  $('group-leave').addEventListener('click', onGroupLeave);
  $('group-delete').addEventListener('click', onGroupDelete);
  $('leave-room').addEventListener('click', onLeaveRoom);

  $('messages').addEventListener('scroll', onMessagesScroll, { passive: true });
  // A resized list (window resized, phone rotated) keeps the newest messages
  // in view if they were.
  new ResizeObserver(() => state.pinned && scrollToBottom()).observe($('messages'));
  $('load-older').addEventListener('click', loadOlder);
  $('jump').addEventListener('click', scrollToBottom);
  $('composer-form').addEventListener('submit', (e) => {
    e.preventDefault();
    sendComposer();
  });
  $('composer').addEventListener('keydown', onComposerKey);
  $('composer').addEventListener('keypress', onComposerKeypress);
  $('composer').addEventListener('input', onComposerInput);
  $('conn-retry').addEventListener('click', () => state.socket && state.socket.retryNow());

  window.addEventListener('hashchange', () => {
    if (state.view === 'chat') route();
    else if (state.view === 'signin') {
      const hash = parseHash();
      if (hash.login && hash.email) $('email').value = hash.email;
    }
  });
  window.addEventListener('online', () => state.socket && state.socket.retryNow());
  // A page kept in the back/forward cache must not stay connected (and so
  // online to friends); it reconnects and resyncs when shown again.
  window.addEventListener('pagehide', () => state.socket && state.socket.suspend());
  window.addEventListener('pageshow', (e) => {
    if (e.persisted && state.socket) state.socket.resume();
  });

  if (tabs) {
    tabs.addEventListener('message', (e) => {
      const out = e.data && e.data.signedOut;
      if (Number.isInteger(out)) {
        // Signed out in another tab: this tab's unsent sends go too.
        if (state.socket && state.me && state.me.id === out) state.socket.keep = null;
        new Unsent(out).clear();
        return;
      }
      const u = e.data && e.data.me;
      if (!u || !state.me || state.view !== 'chat' || u.id !== state.me.id || typeof u.name !== 'string') return;
      if (u.name !== state.me.name) setMe({ name: u.name, name_version: u.name_version });
      else noteNameVersion(u.id, u.name_version);
    });
  }

  setUnauthorizedHandler(() => {
    if (state.me) showSignin('Your session has ended. Please sign in again.');
  });
}

async function start() {
  wire();
  // A server that cannot be reached, or fails, says nothing of the
  // session: the sign-in shows why, and the page asks again (at once when
  // the browser comes online) until the server answers, or the user signs
  // in by the form meanwhile.
  for (let wait = 1000; ; wait = Math.min(wait * 2, 15000)) {
    let me;
    try {
      me = await api.me();
    } catch (err) {
      if (state.me) return;
      if (state.view !== 'signin') showSignin();
      const transient = err.status === 0 || err.status >= 500;
      authError(err.status === 401 ? '' : err.message);
      if (!transient) return;
      await new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          window.removeEventListener('online', done);
          resolve();
        };
        const timer = setTimeout(done, wait);
        window.addEventListener('online', done);
      });
      if (state.me) return; // signed in by the form meanwhile
      continue;
    }
    if (state.me) return;
    state.me = me;
    break;
  }
  authError('');
  if (!state.me.name) showNameStep();
  else enterChat();
}

start();
