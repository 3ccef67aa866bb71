// dashboard.js: the analytics summary, polled every 5 seconds (in the background: polling
// never keeps a session alive), registrations per day as an inline SVG bar chart.
import { h, mount, alertBox } from './dom.js';
import { call, retryable } from './api.js';
import { money } from './billing.js';

let timer = null;

// stopDashboard ends the polling when the user leaves the screen.
export function stopDashboard() { clearTimeout(timer); timer = null; }

export function dashboardScreen() {
  const body = h('div', { id: 'summary', 'aria-live': 'polite' }, h('p', {}, 'Loading…'));
  mount(h('h1', {}, 'Dashboard'), body);
  const poll = async () => {
    const r = await call('GET', '/api/analytics/summary', { background: true });
    if (!document.body.contains(body)) return;
    if (r.ok) body.replaceChildren(...render(r.body));
    else body.replaceChildren(alertBox(r.sentence, retryable(r) ? poll : null));
    if (r.status !== 401 && r.status !== 403) timer = setTimeout(poll, 5000);
  };
  poll();
}

function card(label, n, id) {
  return h('div', { class: 'card' }, h('div', { class: 'n', id }, String(n)), h('div', {}, label));
}

function render(s) {
  return [
    h('h2', {}, 'Patients'),
    h('div', { class: 'cards' }, card('registered', s.patients.registered, 'registered'), card('updated', s.patients.updated, 'updated'),
      card('deleted', s.patients.deleted, 'deleted'), card('live', s.patients.live, 'live'),
      card('with possible duplicates', s.patients.duplicates || 0, 'duplicates')),
    h('h2', {}, 'Registrations per day'), chart(s.days || []),
    h('h2', {}, 'Invoices'),
    h('div', { class: 'cards' }, card('issued', s.invoices.issued, 'issued'), card('paid', s.invoices.paid, 'paid'), card('voided', s.invoices.voided, 'voided')),
    (s.amounts || []).length ? h('table', { id: 'amounts' }, h('caption', {}, 'Amounts per currency'),
      h('thead', {}, h('tr', {}, ['Currency', 'Invoiced', 'Paid'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, s.amounts.map((a) => h('tr', {}, h('td', {}, a.currency), h('td', {}, money(a.invoiced, a.currency)), h('td', {}, money(a.paid, a.currency)))))) : null,
    h('p', { class: 'muted' }, 'Consumer lag: ' + s.lag + ' events' + (s.lastEventAt ? '; last event ' + new Date(s.lastEventAt).toLocaleString() : '')),
  ];
}

// chart draws the last 14 days' registrations as bars, with a text title per bar.
function chart(days) {
  const last = days.slice(-14);
  const W = 560, H = 160, pad = 24;
  const max = Math.max(1, ...last.map((d) => d.registered));
  const bw = last.length ? (W - pad) / last.length : 0;
  const svg = h('svg', { class: 'chart', viewBox: '0 0 ' + W + ' ' + (H + pad), width: W, height: H + pad, role: 'img', 'aria-labelledby': 'chart-t' },
    h('title', { id: 'chart-t' }, 'Registrations per day: ' + (last.map((d) => d.day + ' ' + d.registered).join(', ') || 'none yet')),
    h('line', { x1: pad, y1: H, x2: W, y2: H, stroke: '#4a4a4a' }));
  last.forEach((d, i) => {
    const bh = Math.round((d.registered / max) * (H - 20));
    svg.append(h('g', {}, h('rect', { x: pad + i * bw + 2, y: H - bh, width: Math.max(1, bw - 4), height: bh, fill: '#0b5394' }),
      h('text', { x: pad + i * bw + bw / 2, y: H - bh - 4, 'text-anchor': 'middle', 'font-size': 11, fill: '#1b1b1b' }, String(d.registered)),
      h('text', { x: pad + i * bw + bw / 2, y: H + 16, 'text-anchor': 'middle', 'font-size': 10, fill: '#1b1b1b' }, d.day.slice(5))));
  });
  return svg;
}
