// REST client for the Parley API (docs/protocol.md, "REST API").

export class ApiError extends Error {
  constructor(status, code, message, field, retryAfterMs) {
    super(message);
    this.status = status; // HTTP status, 0 when the server could not be reached
    this.code = code;
    this.field = field;
    this.retryAfterMs = retryAfterMs;
  }
}

// onUnauthorized is called when a request fails because the session is gone.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

// request makes a request of the API; one with timeoutMs whose answer has
// not begun by then fails as if the server could not be reached (status 0).
async function request(method, path, body, timeoutMs) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  let timer = 0;
  let timedOut = false;
  if (timeoutMs) {
    const ctl = new AbortController();
    init.signal = ctl.signal;
    timer = setTimeout(() => {
      timedOut = true;
      ctl.abort();
    }, timeoutMs);
  }
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    if (timedOut) throw new ApiError(0, 'network', 'The server did not answer in time.');
    throw new ApiError(0, 'network', "Can't reach the server. Check your connection and try again.");
  } finally {
    clearTimeout(timer);
  }
  const text = await res.text().catch(() => '');
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (res.ok) return data;

  const e = (data && data.error) || {};
  const err = new ApiError(
    res.status,
    e.code || `http_${res.status}`,
    e.message || `The server answered ${res.status} ${res.statusText}.`.replace(' .', '.'),
    e.field,
    e.retry_after_ms ?? (Number(res.headers.get('Retry-After')) * 1000 || undefined),
  );
  if (res.status === 401 && err.code === 'unauthorized') onUnauthorized(err);
  throw err;
}

const roomPath = (id) => `/api/rooms/${encodeURIComponent(id)}`;
const groupPath = (id) => `/api/groups/${encodeURIComponent(id)}`;

export const api = {
  requestCode: (email) => request('POST', '/api/auth/code', { email }),
  verify: (email, code) => request('POST', '/api/auth/verify', { email, code }),
  signOut: () => request('POST', '/api/auth/signout'),

  me: () => request('GET', '/api/me').then((d) => d.user),
  // session: the user and when a request renews the session next
  // (session_renew_at, session_renew_by); the request renews it if due.
  session: () => request('GET', '/api/me'),
  setName: (name) => request('PATCH', '/api/me', { name }).then((d) => d.user),
  // checkOpen asks whether the server would let a connection (WebSocket
  // or long-poll channel) of the user in now, taking none: it resolves,
  // or fails with a 429 rate_limited and retryAfterMs.
  checkOpen: () => request('GET', '/api/ws/check'),

  rooms: () => request('GET', '/api/rooms'),
  enterRoom: (name) => request('POST', '/api/rooms', { name }).then((d) => d.room),
  room: (id) => request('GET', roomPath(id)),
  leaveRoom: (id) => request('DELETE', `${roomPath(id)}/members/me`),
  online: (id) => request('GET', `${roomPath(id)}/online`),

  conversations: () => request('GET', '/api/conversations').then((d) => d.conversations || []),
  conversation: (id) => request('GET', `/api/conversations/${encodeURIComponent(id)}`).then((d) => d.conversation),
  markRead: (id, seq) => request('POST', `/api/conversations/${encodeURIComponent(id)}/read`, { seq }),
  direct: (userId) => request('GET', `/api/direct/${encodeURIComponent(userId)}`).then((d) => d.conversation),
  // sendDirect waits longer than the server's 15 s for an operation; a
  // request with no answer by then may have stored the message all the same.
  sendDirect: (userId, clientId, body) =>
    request('POST', `/api/direct/${encodeURIComponent(userId)}/messages`, { client_id: clientId, body }, 30000),

  createGroup: (name, description, maxMembers) => {
    const body = { name, description };
    if (maxMembers) body.max_members = maxMembers;
    return request('POST', '/api/groups', body).then((d) => d.group);
  },
  group: (id) => request('GET', groupPath(id)).then((d) => d.group),
  updateGroup: (id, changes) => request('PATCH', groupPath(id), changes).then((d) => d.group),
  deleteGroup: (id) => request('DELETE', groupPath(id)),
  addGroupMember: (id, userId) => request('POST', `${groupPath(id)}/members`, { user_id: userId }),
  removeGroupMember: (id, userId) => request('DELETE', `${groupPath(id)}/members/${encodeURIComponent(userId)}`),
  setGroupRole: (id, userId, role) =>
    request('PUT', `${groupPath(id)}/members/${encodeURIComponent(userId)}/role`, { role }),
  transferGroup: (id, userId) => request('POST', `${groupPath(id)}/owner`, { user_id: userId }),

  searchUsers: (q) => request('GET', `/api/users?q=${encodeURIComponent(q)}`).then((d) => d.users || []),
  contacts: () => request('GET', '/api/contacts'),
  addFriend: (userId) => request('POST', '/api/contacts', { user_id: userId }).then((d) => d.contact),
  acceptFriend: (userId) => request('POST', `/api/contacts/${encodeURIComponent(userId)}/accept`).then((d) => d.contact),
  removeContact: (userId) => request('DELETE', `/api/contacts/${encodeURIComponent(userId)}`),
  block: (userId) => request('POST', '/api/blocks', { user_id: userId }),
  unblock: (userId) => request('DELETE', `/api/blocks/${encodeURIComponent(userId)}`),

  // history returns {messages, has_more}; opts: {before, after, limit}.
  history(id, opts = {}) {
    const q = new URLSearchParams();
    for (const k of ['before', 'after', 'limit']) if (opts[k] != null) q.set(k, String(opts[k]));
    return request('GET', `${roomPath(id)}/messages?${q}`);
  },
};
