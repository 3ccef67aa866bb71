// app.js: the console's shell: the hash router, role-aware navigation and the session's
// start (a reload stays signed in through the refresh cookie). The server stays the
// authority: a screen a role may not use shows "Not allowed", and its API calls would be
// refused anyway.
import { h, mount, expectRoute } from './dom.js';
import { session, onSession, refresh, signOut } from './api.js';
import { signInScreen } from './signin.js';
import * as patients from './patients.js';
import * as billing from './billing.js';
import { dashboardScreen, stopDashboard } from './dashboard.js';
import { usersScreen, auditScreen } from './admin.js';

const ALL = ['admin', 'clinician', 'billing'];

// routes: pattern, the roles that may see the screen, the screen.
const routes = [
  [/^patients$/, ALL, () => patients.searchScreen()],
  [/^patients\/new$/, ['admin', 'clinician'], () => patients.registerScreen()],
  [/^patients\/([0-9a-f-]{36})$/, ALL, (id) => patients.patientScreen(id)],
  [/^patients\/([0-9a-f-]{36})\/edit$/, ['admin', 'clinician'], (id) => patients.editScreen(id)],
  [/^patients\/([0-9a-f-]{36})\/history$/, ALL, (id) => patients.historyScreen(id)],
  [/^patients\/([0-9a-f-]{36})\/invoices\/new$/, ['admin', 'billing'], (id) => billing.newInvoiceScreen(id)],
  [/^invoices\/([0-9a-f-]{36})$/, ALL, (id) => billing.invoiceScreen(id)],
  [/^dashboard$/, ['admin', 'analyst'], () => dashboardScreen()],
  [/^admin\/users$/, ['admin'], () => usersScreen()],
  [/^admin\/audit$/, ['admin', 'privacy'], () => auditScreen()],
];

// nav: the links each role sees.
const nav = [
  ['#/patients', 'Patients', ALL],
  ['#/dashboard', 'Dashboard', ['admin', 'analyst']],
  ['#/admin/users', 'Users', ['admin']],
  ['#/admin/audit', 'Audit log', ['admin', 'privacy']],
];

function home(role) {
  return nav.find((n) => n[2].includes(role))?.[0] || '#/patients';
}

// allowed says whether the signed-in role may open a hash route (for links).
export function allowed(hash) {
  const path = hash.replace(/^#\//, '');
  const r = routes.find(([re]) => re.test(path));
  return !!(r && session && r[1].includes(session.role));
}

function renderShell() {
  const navEl = document.getElementById('nav');
  const who = document.getElementById('who');
  const here = location.hash.split('/').slice(0, 2).join('/');
  navEl.replaceChildren();
  who.replaceChildren();
  if (!session) return;
  navEl.append(h('ul', {}, nav.filter((n) => n[2].includes(session.role)).map(([href, label]) =>
    h('li', {}, h('a', { href, 'aria-current': here === href || location.hash.startsWith(href + '/') ? 'page' : null }, label)))));
  who.append(h('span', {}, session.email + ' (' + session.role + ')'),
    h('button', { type: 'button', id: 'signout', onclick: async () => { await signOut(); sessionStorage.removeItem('pms.after'); location.hash = '#/signin'; } }, 'Sign out'));
}

function route() {
  expectRoute(location.hash);
  stopDashboard();
  const path = location.hash.replace(/^#\/?/, '');
  renderShell();
  if (!session) {
    if (path !== 'signin') { sessionStorage.setItem('pms.after', location.hash); location.hash = '#/signin'; return; }
    return signInScreen(() => { location.hash = sessionStorage.getItem('pms.after') || home(session.role); sessionStorage.removeItem('pms.after'); });
  }
  if (path === '' || path === 'signin') { location.hash = home(session.role); return; }
  for (const [re, roles, screen] of routes) {
    const m = path.match(re);
    if (!m) continue;
    if (!roles.includes(session.role)) return notAllowed();
    return screen(...m.slice(1));
  }
  mount(h('h1', {}, 'Page not found'), h('p', {}, 'There is no such page.'), h('p', {}, h('a', { href: home(session.role) }, 'Go to the start page')));
}

function notAllowed() {
  mount(h('h1', { id: 'not-allowed' }, 'Not allowed'),
    h('p', {}, 'Your role (' + session.role + ') may not use this screen.'),
    h('p', {}, h('a', { href: home(session.role) }, 'Go to the start page')));
}

onSession((s) => { if (!s && location.hash !== '#/signin') route(); else renderShell(); });
addEventListener('hashchange', route);

// Start: a reload is still signed in when the refresh cookie is.
(async () => {
  await refresh();
  route();
})();
