// Parley web app: sign-in, room list and the open room.
//
// All user-supplied text (names, message bodies) goes into the page through
// textContent / createTextNode only.

import { api, setUnauthorizedHandler } from './api.js';
import { ChatSocket } from './socket.js';

const $ = (id) => document.getElementById(id);

// h creates an element with a class and, optionally, text.
function h(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text != null) e.textContent = text;
  return e;
}

const ROOM_NAME = /^[\p{L}\p{Nd}_-]+$/u;
const GROUP_GAP_MS = 5 * 60 * 1000; // a sender's messages further apart start a new group
const PAGE = 50;

const state = {
  view: 'loading',
  me: null,
  email: '', // the address a code was sent to
  socket: null,
  everConnected: false,
  room: null, // the open room
  target: '', // lower-cased name of the room being entered or open
  entering: 0, // increases with each room entry; stale answers are dropped
  oldest: 0, // lowest seq shown
  hasOlder: false,
  loadingOlder: false,
  online: new Map(), // user id → User
  pendingEls: new Map(), // client id → element of an unacknowledged send
  roomsTimer: 0,
  roomsSoon: null,
  rooms: { joined: [], active: [] },
  composerTimer: 0,
  roomTimer: 0,
  pinned: true, // the message list was scrolled to the bottom
};

// ---------------------------------------------------------------- helpers

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const dayYearFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'long' });

function dayKey(d) {
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

function dayLabel(d) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(d) === dayKey(today)) return 'Today';
  if (dayKey(d) === dayKey(yesterday)) return 'Yesterday';
  return d.getFullYear() === today.getFullYear() ? dayFmt.format(d) : dayYearFmt.format(d);
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
  if (hash.startsWith('room/')) return { room: safeDecode(hash.slice(5)) };
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
      authInfo('A new code is on its way. Earlier codes no longer work.');
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
  const name = $('display-name').value.trim();
  if (!name) {
    authError('Choose a name people will see next to your messages.');
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
  try {
    await api.signOut();
  } catch (err) {
    console.warn('parley: sign out:', err);
  }
  clearHash();
  showSignin('You are signed out.');
}

// ---------------------------------------------------------------- the app

function enterChat() {
  if (location.hash.startsWith('#login')) clearHash();
  setView('chat');
  renderMe();
  if (!state.socket) startSocket();
  refreshRooms();
  clearInterval(state.roomsTimer);
  state.roomsTimer = setInterval(refreshRooms, 30000);
  route();
}

// leaveChat tears the app down (sign-out, session ended).
function leaveChat() {
  clearInterval(state.roomsTimer);
  clearTimeout(state.roomsSoon);
  state.roomsSoon = null;
  if (state.socket) state.socket.stop();
  state.socket = null;
  state.everConnected = false;
  closeRoom();
  state.rooms = { joined: [], active: [] };
  renderRooms();
  if ($('profile').open) $('profile').close();
}

function renderMe() {
  const me = state.me;
  $('me-name').textContent = me.name;
  $('me-avatar').textContent = initial(me.name);
  $('me-avatar').className = `avatar hue-${me.id % 8}`;
}

// route opens the room named in the location hash, or none.
function route() {
  if (state.view !== 'chat') return;
  const { room } = parseHash();
  if (room) {
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
  }, 1000);
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function renderRoomList(ul, rooms, meta) {
  const items = rooms.map((r) => {
    const li = h('li');
    li.dataset.roomName = r.name;
    li.dataset.roomId = String(r.id);
    const b = h('button', 'room-item');
    b.type = 'button';
    b.append(h('span', 'room-name', r.name), h('span', 'room-meta', meta(r)));
    if (state.room && state.room.id === r.id) b.setAttribute('aria-current', 'true');
    b.addEventListener('click', () => goRoom(r.name));
    li.append(b);
    return li;
  });
  ul.replaceChildren(...items);
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

function checkRoomName(s) {
  if (!s) return 'Type a room name.';
  if ([...s].length > 64) return 'Room names are at most 64 characters.';
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

function roomInputName() {
  return $('room-input').value.trim().replace(/^#/, '');
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

async function enterRoom(name) {
  const token = ++state.entering;
  state.target = name.toLowerCase();
  roomHint('');
  let room;
  try {
    room = await api.enterRoom(name);
  } catch (err) {
    if (token !== state.entering) return;
    // Stay where we were and say why.
    state.target = state.room ? state.room.name.toLowerCase() : '';
    if (state.room) history.replaceState(null, '', roomHash(state.room.name));
    else clearHash();
    showScreen(state.room ? 'room' : 'list');
    roomHint(err.message);
    return;
  }
  if (token !== state.entering || !state.socket) return;

  if (state.room) state.socket.closeRoom(state.room.id);
  state.room = room;
  state.target = room.name.toLowerCase();
  history.replaceState(null, '', roomHash(room.name)); // the server's spelling
  document.title = `#${room.name} · Parley`;
  resetRoomView(room);
  showScreen('room');
  refreshRooms();

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
  insertOlder(msgs);
  state.oldest = msgs.length ? msgs[0].seq : room.last_seq + 1;
  state.hasOlder = !!page.has_more;
  const last = msgs.length ? msgs[msgs.length - 1].seq : room.last_seq;
  state.socket.openRoom(room.id, last);
  for (const p of state.socket.pendingFor(room.id)) appendPending(p);
  updateHistoryTop();
  scrollToBottom();
  fillViewport();
  if (!matchMedia('(max-width: 700px)').matches) $('composer').focus();
}

function resetRoomView(room) {
  document.querySelector('.room').classList.add('has-room');
  $('room-title').textContent = room.name;
  $('composer').placeholder = `Message #${room.name}`;
  for (const el of [...$('messages').children]) if (el.id !== 'history-top') el.remove();
  state.pendingEls.clear();
  state.online = new Map();
  state.oldest = 0;
  state.hasOlder = false;
  state.loadingOlder = false;
  renderOnline();
  composerError('');
  $('history-text').textContent = 'Loading messages…';
  setHidden($('load-older'), true);
  setHidden($('jump'), true);
  renderRooms(); // highlight the current room
}

// closeRoom stops following the open room and shows the room list.
function closeRoom() {
  ++state.entering;
  state.target = '';
  if (state.room && state.socket) state.socket.closeRoom(state.room.id);
  state.room = null;
  document.querySelector('.room').classList.remove('has-room');
  for (const el of [...$('messages').children]) if (el.id !== 'history-top') el.remove();
  state.pendingEls.clear();
  state.online = new Map();
  renderOnline();
  showScreen('list');
  renderRooms();
  if (state.view === 'chat') document.title = 'Parley';
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
    refreshRooms();
  });
}

// ---------------------------------------------------------------- online list

function renderOnline() {
  const users = [...state.online.values()].sort((a, b) => a.name.localeCompare(b.name));
  const items = users.map((u) => {
    const li = h('li');
    li.dataset.userId = String(u.id);
    if (state.me && u.id === state.me.id) li.classList.add('is-me');
    li.append(avatar(u.id, u.name), h('span', 'name', displayName(u.id, u.name)));
    return li;
  });
  $('online-list').replaceChildren(...items);
  const room = state.room;
  $('room-sub').textContent = room
    ? `${plural(room.members ?? 0, 'member')} · ${users.length} online`
    : '';
}

// ---------------------------------------------------------------- messages

const box = () => $('messages');

// messageEl builds the element for a stored message (or a pending send).
function messageEl(m) {
  const el = h('div', 'msg');
  el.dataset.kind = m.kind;
  el.dataset.senderId = String(m.sender_id);
  el.dataset.time = m.created_at;
  if (m.seq) el.dataset.seq = String(m.seq);
  const when = new Date(m.created_at);
  const name = displayName(m.sender_id, m.sender_name);

  if (m.kind === 'join' || m.kind === 'leave') {
    el.classList.add('notice');
    const pill = h('span', 'notice-text', `${name} ${m.kind === 'join' ? 'joined' : 'left'}`);
    const t = h('time', 'msg-time', timeFmt.format(when));
    t.dateTime = m.created_at;
    t.title = fullFmt.format(when);
    pill.append(' ', t);
    el.append(pill);
    return el;
  }

  if (state.me && m.sender_id === state.me.id) el.classList.add('own');
  const main = h('div', 'msg-main');
  const bubble = h('div', 'bubble');
  const t = h('time', 'msg-time', timeFmt.format(when));
  t.dateTime = m.created_at;
  t.title = fullFmt.format(when);
  bubble.append(h('div', 'msg-body', m.body), t);
  main.append(h('div', 'msg-sender', name), bubble);
  el.append(avatar(m.sender_id, name), main);
  return el;
}

function presenceEl(user, online) {
  const el = h('div', 'notice presence');
  el.dataset.kind = 'presence';
  el.dataset.userId = String(user.id);
  el.dataset.time = new Date().toISOString();
  el.append(h('span', 'notice-text', `${displayName(user.id, user.name)} is ${online ? 'online' : 'offline'}`));
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
  for (const m of messages) {
    if (m.kind === 'join' || m.kind === 'leave') refreshRoomSoon();
    const pend = m.client_id && state.me && m.sender_id === state.me.id && state.pendingEls.get(m.client_id);
    if (pend) {
      pend.remove();
      state.pendingEls.delete(m.client_id);
      own = true;
    }
    appendLive(messageEl(m));
  }
  if (stick || own) scrollToBottom();
  else setHidden($('jump'), false);
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
    created_at: new Date().toISOString(),
  });
  el.classList.add('pending');
  el.dataset.clientId = p.clientId;
  el.querySelector('.msg-time').textContent = 'Sending…';
  box().append(el);
  decorate(el);
  state.pendingEls.set(p.clientId, el);
}

function updateHistoryTop() {
  const room = state.room;
  const text = $('history-text');
  if (!room) return;
  setHidden($('load-older'), state.loadingOlder || !state.hasOlder);
  if (state.loadingOlder) text.textContent = 'Loading earlier messages…';
  else if (state.hasOlder) text.textContent = '';
  else text.textContent = `This is the beginning of #${room.name}.`;
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
  insertOlder(msgs);
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

function autosize() {
  const c = $('composer');
  c.style.height = 'auto';
  c.style.height = `${Math.min(c.scrollHeight, 200)}px`;
}

function sendComposer() {
  const room = state.room;
  const socket = state.socket;
  const c = $('composer');
  if (!room || !socket) return;
  const body = c.value;
  if (!body.trim()) return;
  if (!socket.fits(room.id, body)) {
    const max = socket.limits.max_message_len;
    composerError(`Message is ${[...body].length} characters long; the limit is ${max}.`);
    return;
  }
  composerError('');
  const p = socket.send(room.id, body);
  c.value = '';
  autosize();
  appendPending(p);
  scrollToBottom();
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

function connStatus({ state: s }) {
  const el = $('conn-status');
  el.dataset.state = s;
  if (s === 'connected') state.everConnected = true;
  let text = 'Connected';
  if (s !== 'connected') text = state.everConnected ? 'Connection lost — reconnecting…' : 'Connecting…';
  if (s === 'disconnected' && !state.everConnected) text = 'Cannot reach the server — retrying…';
  $('conn-text').textContent = text;
  setHidden($('conn-retry'), s !== 'disconnected' || !state.socket || state.socket.stopped);
}

function startSocket() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new ChatSocket(`${proto}//${location.host}/api/ws`);
  state.socket = socket;
  const current = (roomId) => state.socket === socket && state.room && state.room.id === roomId;

  socket
    .on('state', connStatus)
    .on('hello', (f) => {
      if (f.user && state.me && f.user.name !== state.me.name) {
        state.me = { ...state.me, ...f.user };
        renderMe();
      }
    })
    .on('opened', ({ room, online }) => {
      if (!current(room.id)) return;
      Object.assign(state.room, room); // same object: in-flight page loads stay valid
      state.online = new Map(online.map((u) => [u.id, u]));
      renderOnline();
    })
    .on('messages', ({ roomId, messages }) => {
      if (current(roomId)) showLive(messages);
    })
    .on('presence', (f) => {
      if (!current(f.room_id)) return;
      if (f.online) state.online.set(f.user.id, f.user);
      else state.online.delete(f.user.id);
      renderOnline();
      if (state.me && f.user.id === state.me.id) return;
      const stick = nearBottom();
      appendLive(presenceEl(f.user, f.online));
      if (stick) scrollToBottom();
    })
    .on('send-failed', (p) => {
      const el = state.pendingEls.get(p.clientId);
      if (el) el.remove();
      state.pendingEls.delete(p.clientId);
      composerError(p.message || 'The message was not sent.');
      // Give the text back so it is not lost.
      const c = $('composer');
      if (current(p.roomId) && !c.value) {
        c.value = p.body;
        autosize();
      }
    })
    .on('error', (f) => {
      if (f.room_id && state.room && f.room_id !== state.room.id) return;
      composerError(f.message || f.code, f.transient ? 4000 : 0);
    })
    .on('auth-check', () => {
      // The upgrade fails with 401 when the session is gone; /api/me tells.
      api.me().catch(() => {});
    })
    .on('session-ended', () => {
      if (state.socket === socket) showSignin('Your session has ended. Please sign in again.');
    });
  socket.start();
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
  const name = $('profile-name').value.trim();
  const err = $('profile-error');
  if (!name) {
    err.textContent = 'Your name cannot be empty.';
    setHidden(err, false);
    return;
  }
  await busy($('profile-save'), async () => {
    try {
      state.me = await api.setName(name);
      renderMe();
      renderOnline();
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
  $('room-input').addEventListener('input', () => {
    const name = roomInputName();
    roomHint(name ? checkRoomName(name) : '');
  });
  $('back').addEventListener('click', onBack);
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
  $('composer').addEventListener('input', autosize);
  $('conn-retry').addEventListener('click', () => state.socket && state.socket.retryNow());

  window.addEventListener('hashchange', () => {
    if (state.view === 'chat') route();
    else if (state.view === 'signin') {
      const hash = parseHash();
      if (hash.login && hash.email) $('email').value = hash.email;
    }
  });
  window.addEventListener('online', () => state.socket && state.socket.retryNow());

  setUnauthorizedHandler(() => {
    if (state.me) showSignin('Your session has ended. Please sign in again.');
  });
}

async function start() {
  wire();
  try {
    state.me = await api.me();
  } catch (err) {
    showSignin();
    if (err.status !== 401) authError(err.message);
    return;
  }
  if (!state.me.name) showNameStep();
  else enterChat();
}

start();
