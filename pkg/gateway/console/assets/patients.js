// patients.js: search, register, the patient page (with break-glass on a restricted
// record), edit with If-Match and the conflict screen, history with per-field diffs, delete.
import { h, mount, field, showFieldErrors, alertBox, say, dateTime } from './dom.js';
import { call, retryable, session } from './api.js';
import { billingSection } from './billing.js';

const FIELDS = [['name', 'Name'], ['email', 'Email'], ['address', 'Address'], ['dateOfBirth', 'Date of birth (YYYY-MM-DD)']];
const canWrite = () => session && ['admin', 'clinician'].includes(session.role);

// failure shows an error answer as a sentence, with a retry for network, 503 and 504.
export function failure(title, r, retry) {
  mount(h('h1', {}, title), alertBox(r.sentence, retryable(r) ? retry : null));
}

// keyed sends a write with an Idempotency-Key that stays the same while the body does, so a
// double click or a resubmit of the same form creates one record.
export function keyed() {
  let last = null, key = null;
  return (body) => {
    const s = JSON.stringify(body);
    if (s !== last) { last = s; key = crypto.randomUUID(); }
    return key;
  };
}

let searchState = { q: '', email: '', dateOfBirth: '', tokens: [''], page: 0 };

export function searchScreen() {
  const q = field('Name or email', 'q', { type: 'search', value: searchState.q });
  const email = field('Email', 'email', { type: 'email', value: searchState.email });
  const dob = field('Date of birth', 'dateOfBirth', { value: searchState.dateOfBirth, placeholder: 'YYYY-MM-DD' });
  const results = h('div', { id: 'results', 'aria-live': 'polite' });
  const run = async (page) => {
    searchState = { ...searchState, q: q.input.value.trim(), email: email.input.value.trim(), dateOfBirth: dob.input.value.trim(), page };
    if (page === 0) searchState.tokens = [''];
    const body = { limit: 20 };
    for (const k of ['q', 'email', 'dateOfBirth']) if (searchState[k]) body[k] = searchState[k];
    if (searchState.tokens[page]) body.pageToken = searchState.tokens[page];
    const r = await call('POST', '/api/patients/_search', { body });
    results.replaceChildren();
    if (!r.ok) {
      showFieldErrors([q, email, dob], r.fields);
      results.append(alertBox(r.sentence, retryable(r) ? () => run(page) : null));
      return;
    }
    showFieldErrors([q, email, dob], {});
    const next = /pageToken=([^&>]+)/.exec(r.headers.get('Link') || '');
    searchState.tokens[page + 1] = next ? decodeURIComponent(next[1]) : undefined;
    const total = r.headers.get('X-Total-Count');
    results.append(h('p', { id: 'total' }, total + ' patient' + (total === '1' ? '' : 's') + ' found' + (r.body.length ? ', page ' + (page + 1) : '')),
      r.body.length ? h('table', {}, h('caption', { class: 'muted' }, 'Search results'),
        h('thead', {}, h('tr', {}, ['Name', 'MRN', 'Date of birth', 'Email'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, r.body.map((p) => h('tr', {},
          h('td', {}, h('a', { href: '#/patients/' + p.id }, p.name || 'Restricted record')),
          h('td', {}, p.mrn), h('td', {}, p.dateOfBirth), h('td', {}, p.email))))) : null,
      h('div', { class: 'actions' },
        page > 0 ? h('button', { type: 'button', class: 'secondary', onclick: () => run(page - 1) }, 'Previous page') : null,
        searchState.tokens[page + 1] ? h('button', { type: 'button', class: 'secondary', onclick: () => run(page + 1) }, 'Next page') : null));
  };
  mount(h('h1', {}, 'Patients'),
    canWrite() ? h('p', {}, h('a', { href: '#/patients/new', id: 'register-link' }, 'Register a patient')) : null,
    h('form', { id: 'search', role: 'search', onsubmit: (e) => { e.preventDefault(); run(0); } },
      h('div', { class: 'row' }, q.el, email.el, dob.el, h('button', { type: 'submit' }, 'Search'))),
    results);
  if (searchState.q || searchState.email || searchState.dateOfBirth) run(searchState.page);
}

function patientForm(id, values, submitLabel, onSubmit) {
  const fields = FIELDS.map(([name, label]) => field(label, name, { value: values[name] || '', required: true,
    autocomplete: name === 'email' ? 'off' : null }));
  const msg = h('div', {});
  const button = h('button', { type: 'submit' }, submitLabel);
  const form = h('form', { id, novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const body = Object.fromEntries(fields.map((f) => [f.name, f.input.value.trim()]));
    button.disabled = true;
    msg.replaceChildren();
    const r = await onSubmit(body);
    button.disabled = false;
    if (r && !r.ok) {
      showFieldErrors(fields, r.fields);
      msg.append(alertBox(r.sentence));
    }
  } }, fields.map((f) => f.el), h('div', { class: 'actions' }, button, h('a', { href: '#/patients' }, 'Cancel')));
  return { form, msg, fields };
}

// registerScreen always asks for the strict duplicate check (issue 19): a registration that
// looks like patients already registered is refused with them, shown here with their match
// scores; the clerk opens them to check, or confirms they are different people, which sends
// their ids in X-Confirm-Not-Duplicate (audited).
export function registerScreen() {
  const key = keyed();
  const dups = h('div', { id: 'duplicates' });
  let confirmed = [];
  const { form, msg } = patientForm('register', {}, 'Register', async (body) => {
    const headers = { Prefer: 'duplicate-check=strict' };
    if (confirmed.length) headers['X-Confirm-Not-Duplicate'] = confirmed.join(',');
    const r = await call('POST', '/api/patients', { body, idem: key(body), headers });
    dups.replaceChildren();
    if (r.ok) { say('Patient registered'); location.hash = '#/patients/' + r.body.id; return r; }
    if (r.error === 'possible_duplicate' && r.body && Array.isArray(r.body.candidates)) {
      confirmed = [];
      dups.append(candidatesPanel(r.body.candidates, () => {
        confirmed = r.body.candidates.map((c) => c.id);
        form.requestSubmit();
      }));
      say('Possible duplicates found');
      return null;
    }
    return r;
  });
  mount(h('h1', {}, 'Register a patient'), msg, dups, form);
}

// candidatesPanel lists the possible duplicates of a registration (a restricted record shows
// as such, masked by the server) with a button confirming they are different people.
function candidatesPanel(candidates, onConfirm) {
  return h('section', { class: 'alert', role: 'alert', 'aria-labelledby': 'dup-h' },
    h('h2', { id: 'dup-h' }, 'This patient may already be registered'),
    h('p', {}, 'Open a record to check it. If these are different people, confirm it: the confirmation is recorded.'),
    h('table', {}, h('caption', { class: 'muted' }, 'Possible duplicates, best match first'),
      h('thead', {}, h('tr', {}, ['Name', 'MRN', 'Date of birth', 'Match'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, candidates.map((c) => h('tr', {},
        h('td', {}, h('a', { href: '#/patients/' + c.id, target: '_blank', rel: 'noopener' }, (c.patient && c.patient.name) || 'Restricted record')),
        h('td', {}, (c.patient && c.patient.mrn) || ''), h('td', {}, (c.patient && c.patient.dateOfBirth) || ''),
        h('td', {}, Math.round(c.score * 100) + '% (' + c.grade + ')'))))),
    h('div', { class: 'actions' },
      h('button', { type: 'button', id: 'confirm-not-duplicate', onclick: onConfirm }, 'Different people: register anyway')));
}

// restricted shows the break-glass form for a record the caller may not read yet.
function restricted(id, r) {
  const reason = field('Reason for emergency access (at least 10 characters)', 'reason', { tag: 'textarea', rows: 3, required: true });
  const msg = h('div', {});
  const may = session && ['admin', 'clinician'].includes(session.role);
  mount(h('h1', {}, 'Restricted record'), h('p', {}, r.sentence),
    may ? h('form', { id: 'break-glass', onsubmit: async (e) => {
      e.preventDefault();
      const g = await call('POST', '/api/patients/' + id + '/break-glass', { body: { reason: reason.input.value } });
      if (g.ok) { say('Emergency access granted until ' + dateTime(g.body.expiresAt)); patientScreen(id); return; }
      showFieldErrors([reason], g.fields);
      msg.replaceChildren(alertBox(g.sentence));
    } }, h('p', {}, 'Emergency access is recorded and reviewed. Give the reason you need this record now.'), msg, reason.el,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'danger' }, 'Break the glass'))) : null);
}

function isBreakGlass(r) { return r.status === 403 && /break-glass/.test((r.body && r.body.message) || ''); }

export async function patientScreen(id) {
  const r = await call('GET', '/api/patients/' + id);
  if (r.status === 410) return mount(h('h1', {}, 'Patient deleted'), h('p', { id: 'deleted' }, 'This patient record has been deleted.'), h('p', {}, h('a', { href: '#/patients' }, 'Back to patients')));
  if (isBreakGlass(r)) return restricted(id, r);
  if (!r.ok) return failure('Patient', r, () => patientScreen(id));
  const p = r.body;
  const del = h('div', {});
  const askDelete = () => del.replaceChildren(h('div', { class: 'alert', role: 'alertdialog', 'aria-labelledby': 'del-q' },
    h('p', { id: 'del-q' }, 'Delete this patient? The record disappears from searches; its history and audit trail stay.'),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'danger', id: 'confirm-delete', onclick: async () => {
        const d = await call('DELETE', '/api/patients/' + id, { headers: { 'If-Match': '"' + p.version + '"' } });
        if (d.ok || d.status === 410) { say('Patient deleted'); patientScreen(id); } else del.replaceChildren(alertBox(d.sentence));
      } }, 'Delete'),
      h('button', { type: 'button', class: 'secondary', onclick: () => del.replaceChildren() }, 'Cancel'))));
  mount(h('h1', {}, p.name),
    h('dl', { class: 'facts', id: 'patient' },
      [['MRN', p.mrn], ['Email', p.email], ['Address', p.address], ['Date of birth', p.dateOfBirth], ['Registered', p.registeredDate],
        ['Confidentiality', p.confidentiality], ['Version', String(p.version)], ['Updated', dateTime(p.updatedAt)]]
        .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('div', { class: 'actions' },
      canWrite() ? h('a', { href: '#/patients/' + id + '/edit', id: 'edit-link' }, 'Edit') : null,
      h('a', { href: '#/patients/' + id + '/history' }, 'History'),
      canWrite() ? h('button', { type: 'button', class: 'danger', id: 'delete', onclick: askDelete }, 'Delete patient') : null),
    del,
    await billingSection(id));
}

export async function editScreen(id) {
  const r = await call('GET', '/api/patients/' + id);
  if (isBreakGlass(r)) return restricted(id, r);
  if (!r.ok) return failure('Edit patient', r, () => editScreen(id));
  const opened = r.body;
  const { form, msg } = patientForm('edit', opened, 'Save', async (body) => {
    const u = await call('PUT', '/api/patients/' + id, { body, headers: { 'If-Match': '"' + opened.version + '"' } });
    if (u.ok) { say('Saved'); location.hash = '#/patients/' + id; return u; }
    if (u.status === 412) return conflict(id, opened, body);
    return u;
  });
  mount(h('h1', {}, 'Edit ' + opened.name), h('p', { class: 'muted' }, 'Version ' + opened.version), msg, form);
}

// conflict: someone saved the record after this form opened. Show, per field, what the form
// opened with, what is there now, and what this user wrote; re-apply puts this user's own
// changes over the current version (with its If-Match), leaving the other changes in place.
async function conflict(id, opened, mine) {
  const r = await call('GET', '/api/patients/' + id);
  if (!r.ok) return r;
  const now = r.body;
  const changed = FIELDS.filter(([k]) => mine[k] !== opened[k]).map(([k]) => k);
  mount(h('h1', { id: 'conflict' }, 'Someone else changed this patient'),
    h('p', {}, 'Version ' + now.version + ' was saved after you opened version ' + opened.version + '. Compare, then re-apply your changes or discard them.'),
    h('table', {}, h('thead', {}, h('tr', {}, ['Field', 'When you opened it', 'Now', 'Yours'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, FIELDS.map(([k, label]) => h('tr', {}, h('th', { scope: 'row' }, label.replace(/ \(.*/, '')),
        h('td', {}, opened[k]), h('td', {}, now[k] !== opened[k] ? h('ins', {}, now[k]) : now[k]),
        h('td', {}, changed.includes(k) ? h('ins', {}, mine[k]) : h('span', { class: 'muted' }, 'unchanged')))))),
    h('div', { class: 'actions' },
      h('button', { type: 'button', id: 'reapply', onclick: async () => {
        const body = Object.fromEntries(FIELDS.map(([k]) => [k, changed.includes(k) ? mine[k] : now[k]]));
        const u = await call('PUT', '/api/patients/' + id, { body, headers: { 'If-Match': '"' + now.version + '"' } });
        if (u.ok) { say('Your changes were re-applied'); location.hash = '#/patients/' + id; return; }
        if (u.status === 412) { conflict(id, now, body); return; }
        document.getElementById('main').append(alertBox(u.sentence));
      } }, 'Re-apply my changes'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { location.hash = '#/patients/' + id; } }, 'Discard mine')));
  return { ok: true };
}

export async function historyScreen(id) {
  const r = await call('GET', '/api/patients/' + id + '/history');
  if (isBreakGlass(r)) return restricted(id, r);
  if (!r.ok) return failure('History', r, () => historyScreen(id));
  const versions = r.body;
  mount(h('h1', {}, 'History'), h('p', {}, h('a', { href: '#/patients/' + id }, 'Back to the patient')),
    h('ol', { id: 'history', reversed: true }, versions.slice().reverse().map((v) => {
      const prev = versions.find((x) => x.version === v.version - 1);
      const diffs = prev ? FIELDS.filter(([k]) => prev.patient[k] !== v.patient[k]) : FIELDS;
      return h('li', {}, h('h2', {}, 'Version ' + v.version + ': ' + v.change),
        h('p', { class: 'muted' }, dateTime(v.changedAt) + ' by ' + v.changedBy + (v.role ? ' (' + v.role + ')' : '')),
        diffs.length ? h('table', {}, h('thead', {}, h('tr', {}, ['Field', 'Before', 'After'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, diffs.map(([k, label]) => h('tr', {}, h('th', { scope: 'row' }, label.replace(/ \(.*/, '')),
            h('td', {}, prev ? h('del', {}, prev.patient[k]) : ''), h('td', {}, h('ins', {}, v.patient[k])))))) : null);
    })));
}
