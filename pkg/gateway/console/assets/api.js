// api.js: the console's one door to the REST API. The access token lives in this module's
// memory only; the refresh token is an HttpOnly cookie the script never sees (sent to
// /auth/refresh and /auth/logout with the X-PMS-Refresh-Cookie header, the CSRF guard).
// A session is refreshed only when the user is active, so an idle session still ends.

const COOKIE = { 'X-PMS-Refresh-Cookie': '1' };
let token = null;
let expiresAt = 0;
let lastActivity = Date.now();
let refreshing = null;
const listeners = new Set();

// session is the signed-in user from the token's claims, or null.
export let session = null;

// onSession registers a callback for sign-in and sign-out.
export function onSession(f) { listeners.add(f); }

function setToken(t, expiresIn) {
  token = t;
  expiresAt = t ? Date.now() + expiresIn * 1000 : 0;
  session = t ? claims(t) : null;
  for (const f of listeners) f(session);
}

function claims(t) {
  try {
    const b = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const c = JSON.parse(atob(b));
    return { sub: c.sub, email: c.email, role: c.role };
  } catch { return null; }
}

// Activity: keys, clicks and touches count; a near-expiry token is refreshed on them.
for (const ev of ['keydown', 'pointerdown']) {
  addEventListener(ev, () => {
    lastActivity = Date.now();
    if (token && expiresAt - Date.now() < 120000) refresh();
  }, { capture: true, passive: true });
}

// refresh exchanges the refresh cookie for a new access token (and a rotated cookie).
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const r = await fetch('/auth/refresh', { method: 'POST', headers: COOKIE, credentials: 'same-origin' });
        if (r.ok) { const b = await r.json(); setToken(b.token, b.expiresIn); return true; }
        if (r.status === 401) setToken(null);
        return false;
      } catch { return false; } finally { refreshing = null; }
    })();
  }
  return refreshing;
}

// Result is an API answer: status, parsed body, headers, and a sentence for errors.
export class Result {
  constructor(status, body, headers) { this.status = status; this.body = body; this.headers = headers; }
  get ok() { return this.status >= 200 && this.status < 300; }
  get error() { return this.body && this.body.error; }
  get fields() { return (this.body && this.body.fields) || {}; }
  get sentence() { return sentence(this); }
}

// call sends one request. opts: body (JSON), headers, idem (true: a new Idempotency-Key),
// background (never refreshes the session: polling must not keep it alive).
export async function call(method, path, opts = {}) {
  if (token && !opts.background && expiresAt - Date.now() < 30000 && Date.now() - lastActivity < 600000) await refresh();
  const headers = { ...(opts.headers || {}) };
  if (token) headers.Authorization = 'Bearer ' + token;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.idem) headers['Idempotency-Key'] = opts.idem === true ? newKey() : opts.idem;
  let r;
  try {
    r = await fetch(path, { method, headers, credentials: 'same-origin', body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  } catch {
    return new Result(0, { error: 'network', message: 'the server could not be reached' }, new Headers());
  }
  let body = null;
  const type = r.headers.get('Content-Type') || '';
  if (type.includes('json')) { try { body = await r.json(); } catch { body = null; } }
  const res = new Result(r.status, body, r.headers);
  if (r.status === 401 && token && !path.startsWith('/auth/')) setToken(null);
  return res;
}

// newKey is a fresh Idempotency-Key (one per submitted form: a double click sends it twice).
export function newKey() { return crypto.randomUUID(); }

// signIn posts the credentials; the answer is {ok}, {mfa: challenge, enrol}, {change}, or
// {error, retryAfter}.
export async function signIn(email, password) {
  return finishLogin(await call('POST', '/auth/login', { body: { email, password }, headers: COOKIE }));
}

// signInMFA completes an mfa_required login with a code or a recovery code.
export async function signInMFA(challenge, code) {
  const body = /^[0-9]{6}$/.test(code) ? { challenge, code } : { challenge, recoveryCode: code };
  return finishLogin(await call('POST', '/auth/login/mfa', { body, headers: COOKIE }));
}

function finishLogin(r) {
  if (r.ok) { setToken(r.body.token, r.body.expiresIn); return { ok: true }; }
  if (r.error === 'mfa_required') return { mfa: r.body.challenge, enrol: !!r.body.enrol };
  if (r.error === 'password_change_required') return { change: r.body.challenge };
  return { error: r.sentence, retryAfter: r.headers.get('Retry-After'), fields: r.fields };
}

// signOut revokes the session server-side, clears the cookie and forgets the token.
export async function signOut() {
  await call('POST', '/auth/logout', { headers: COOKIE });
  setToken(null);
}

const words = {
  unauthenticated: 'You are signed out or your credentials were not accepted.',
  permission_denied: 'You are not allowed to do this.',
  restricted: 'This patient is restricted: open the patient record and break the glass to see their billing.',
  not_found: 'This record does not exist.',
  gone: 'This record has been deleted.',
  conflict: 'This conflicts with the current state of the record.',
  precondition_failed: 'Someone else changed this record since you opened it.',
  payload_too_large: 'What you sent is too large.',
  rate_limited: 'Too many attempts.',
  unavailable: 'A service is unavailable right now. Try again in a moment.',
  timeout: 'The server took too long to answer. Try again.',
  internal: 'Something went wrong on the server.',
  network: 'The server could not be reached. Check the connection and try again.',
};

// sentence turns an error answer into a sentence for people.
function sentence(r) {
  if (r.ok) return '';
  const w = r.error || '';
  let s = words[w] || 'The request failed (' + r.status + ').';
  if (w === 'invalid_argument') s = 'Some fields need attention.';
  if (w === 'rate_limited' && r.headers.get('Retry-After')) s += ' Try again in ' + wait(r.headers.get('Retry-After')) + '.';
  if (r.body && r.body.message && w !== 'internal' && w !== 'network') s += ' (' + r.body.message + ')';
  return s;
}

function wait(secs) {
  const n = parseInt(secs, 10);
  if (!(n > 0)) return 'a moment';
  return n >= 120 ? Math.ceil(n / 60) + ' minutes' : n + ' seconds';
}

// retryable says whether an error is worth a retry button (network, 503, 504).
export function retryable(r) { return r.status === 0 || r.status === 503 || r.status === 504; }
