// admin.js: users (create or invite, role, disable) and the audit logs with filters and
// the chain verification.
import { h, mount, field, showFieldErrors, alertBox, say, dateTime } from './dom.js';
import { call, session } from './api.js';
import { failure } from './patients.js';

const ROLES = ['admin', 'clinician', 'billing', 'analyst', 'privacy'];

function roleSelect(label, name, value) {
  const f = field(label, name, { tag: 'select' });
  f.input.append(...ROLES.map((r) => h('option', { value: r, selected: r === value }, r)));
  return f;
}

export async function usersScreen() {
  const r = await call('GET', '/api/users');
  if (!r.ok) return failure('Users', r, usersScreen);
  const email = field('Email', 'email', { type: 'email', required: true, autocomplete: 'off' });
  const role = roleSelect('Role', 'role', 'clinician');
  const password = field('Password (leave empty to invite)', 'password', { type: 'password', autocomplete: 'new-password' });
  const msg = h('div', {});
  const create = h('form', { id: 'create-user', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const body = { email: email.input.value.trim(), role: role.input.value };
    if (password.input.value) body.password = password.input.value;
    const c = await call('POST', '/api/users', { body });
    if (!c.ok) { showFieldErrors([email, role, password], c.fields); msg.replaceChildren(alertBox(c.sentence)); return; }
    await usersScreen();
    say('User created');
    if (c.body.inviteToken) {
      document.getElementById('main').insertBefore(h('div', { class: 'note', id: 'invite' },
        h('p', {}, 'Invitation for ' + c.body.email + ': give this one-time token to the user (valid until ' + dateTime(c.body.inviteExpiresAt) + ').'),
        h('p', {}, h('code', {}, c.body.inviteToken))), document.getElementById('main').children[1]);
    }
  } }, h('h2', {}, 'Create or invite a user'), msg, h('div', { class: 'row' }, email.el, role.el, password.el, h('button', { type: 'submit' }, 'Create')));
  mount(h('h1', {}, 'Users'),
    h('table', { id: 'users' }, h('thead', {}, h('tr', {}, ['Email', 'Role', 'Status', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, r.body.map((u) => userRow(u)))),
    create);
}

function userRow(u) {
  const self = session && u.id === session.sub;
  const sel = h('select', { 'aria-label': 'Role of ' + u.email, disabled: self }, ROLES.map((x) => h('option', { value: x, selected: x === u.role }, x)));
  const patch = async (body, done) => {
    const r = await call('PATCH', '/api/users/' + u.id, { body });
    if (r.ok) { say(done); usersScreen(); } else say(r.sentence);
  };
  return h('tr', {}, h('td', {}, u.email), h('td', {}, sel), h('td', {}, u.disabled ? 'disabled' : 'active'),
    h('td', {}, self ? h('span', { class: 'muted' }, 'you') : [
      h('button', { type: 'button', class: 'secondary', 'aria-label': 'Save role: ' + u.email, onclick: () => patch({ role: sel.value }, 'Role changed') }, 'Save role'), ' ',
      h('button', { type: 'button', class: u.disabled ? 'secondary' : 'danger', 'aria-label': (u.disabled ? 'Enable ' : 'Disable ') + u.email,
        onclick: () => patch({ disabled: !u.disabled }, u.disabled ? 'User enabled' : 'User disabled') }, u.disabled ? 'Enable' : 'Disable')]));
}

const LOGS = {
  patient: { path: '/api/audit', subject: 'patientId', verify: '/api/audit/verify' },
  billing: { path: '/api/billing/audit', subject: 'subjectId', verify: '/api/billing/audit/verify' },
  auth: { path: '/api/users/audit', subject: 'userId', verify: '/api/users/audit/verify' },
};

export function auditScreen() {
  const service = field('Log', 'service', { tag: 'select' });
  service.input.append(...Object.keys(LOGS).filter((k) => k !== 'auth' || session.role === 'admin').map((k) => h('option', { value: k }, k)));
  const actor = field('Who (actor)', 'actor');
  const subject = field('Patient or subject id', 'subject');
  const action = field('Action', 'action');
  const outcome = field('Outcome', 'outcome', { tag: 'select' });
  outcome.input.append(...['', 'success', 'denied', 'failure'].map((o) => h('option', { value: o }, o || 'any')));
  const from = field('From (YYYY-MM-DD)', 'from');
  const to = field('To (YYYY-MM-DD)', 'to');
  const out = h('div', { id: 'audit-out', 'aria-live': 'polite' });
  const run = async () => {
    const log = LOGS[service.input.value];
    const q = new URLSearchParams();
    if (actor.input.value.trim()) q.set('actor', actor.input.value.trim());
    if (subject.input.value.trim()) q.set(log.subject, subject.input.value.trim());
    if (from.input.value.trim()) q.set('from', from.input.value.trim());
    if (to.input.value.trim()) q.set('to', to.input.value.trim());
    const r = await call('GET', log.path + (q.toString() ? '?' + q : ''));
    out.replaceChildren();
    if (!r.ok) {
      const f = { ...r.fields };
      f.subject = f[log.subject];
      showFieldErrors([actor, subject, from, to], f);
      out.append(alertBox(r.sentence));
      return;
    }
    showFieldErrors([actor, subject, from, to], {});
    const rows = r.body.filter((e) => (!action.input.value.trim() || e.action.includes(action.input.value.trim())) && (!outcome.input.value || e.outcome === outcome.input.value));
    out.append(h('p', {}, rows.length + ' entries'), h('table', { id: 'audit' },
      h('thead', {}, h('tr', {}, ['When', 'Who', 'Role', 'Action', 'Subject', 'Outcome'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.map((e) => h('tr', {}, h('td', {}, dateTime(e.at)), h('td', {}, e.actor), h('td', {}, e.role), h('td', {}, e.action),
        h('td', {}, e.patientId || e.subjectId || e.userId || ''), h('td', {}, e.outcome))))));
  };
  const verifyOut = h('div', { id: 'verify-out', 'aria-live': 'polite' });
  const verify = async () => {
    const log = LOGS[service.input.value];
    if (!log.verify) { verifyOut.replaceChildren(h('p', {}, 'This log has no verification route here; use pms audit verify.')); return; }
    const r = await call('GET', log.verify);
    verifyOut.replaceChildren(r.ok
      ? h('p', { class: r.body.ok ? 'note' : 'alert' }, r.body.ok ? 'Chain intact: ' + r.body.rows + ' entries verified.' : 'Chain broken at entry ' + r.body.firstBadSeq + ': ' + (r.body.problem || ''))
      : alertBox(r.sentence));
  };
  mount(h('h1', {}, 'Audit log'),
    h('form', { id: 'audit-filters', onsubmit: (e) => { e.preventDefault(); run(); } },
      h('div', { class: 'row' }, service.el, actor.el, subject.el, action.el, outcome.el, from.el, to.el),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Show entries'),
        session.role === 'admin' ? h('button', { type: 'button', class: 'secondary', id: 'verify', onclick: verify }, 'Verify chain') : null)),
    verifyOut, out);
  run();
}
