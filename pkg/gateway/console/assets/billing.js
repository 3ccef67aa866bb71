// billing.js: a patient's account and invoices, a draft with lines, issue, pay, void.
// Amounts travel as integers of the currency's minor unit; people type and read them in the
// currency's own decimals (JPY none, USD two, BHD three), from the browser's ISO 4217 data.
import { h, mount, field, showFieldErrors, alertBox, say, dateTime } from './dom.js';
import { call, session } from './api.js';
import { failure, keyed } from './patients.js';

const CURRENCIES = ['USD', 'EUR', 'GBP', 'JPY', 'BHD', 'CHF'];
const canBill = () => session && ['admin', 'billing'].includes(session.role);

// digits is the number of decimals of a currency's minor unit.
export function digits(currency) {
  try { return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits; } catch { return 2; }
}

// money shows an amount of minor units in its currency.
export function money(minor, currency) {
  const d = digits(currency);
  try { return new Intl.NumberFormat(undefined, { style: 'currency', currency, minimumFractionDigits: d, maximumFractionDigits: d }).format(minor / 10 ** d); } catch { return minor + ' ' + currency; }
}

// toMinor reads "12.50" in a currency as its minor units (1250), or null when it does not
// fit the currency's decimals.
export function toMinor(text, currency) {
  const d = digits(currency);
  const m = /^\s*(\d+)(?:\.(\d*))?\s*$/.exec(text);
  if (!m || (m[2] || '').length > d) return null;
  return parseInt(m[1], 10) * 10 ** d + parseInt(((m[2] || '') + '0'.repeat(d)).slice(0, d) || '0', 10);
}

function plain(minor, currency) {
  const d = digits(currency);
  return d === 0 ? String(minor) : (minor / 10 ** d).toFixed(d);
}

// billingSection is the patient page's account and invoices.
export async function billingSection(patientId) {
  const [a, inv] = await Promise.all([call('GET', '/api/patients/' + patientId + '/billing-account'), call('GET', '/api/patients/' + patientId + '/invoices')]);
  return h('section', { 'aria-labelledby': 'billing-h' }, h('h2', { id: 'billing-h' }, 'Billing'),
    a.ok ? h('p', {}, 'Account ' + a.body.id + ' (' + a.body.status + ')') : h('p', { class: 'muted' }, a.sentence),
    inv.ok ? invoiceTable(inv.body) : h('p', { class: 'muted' }, inv.sentence),
    canBill() ? h('p', {}, h('a', { href: '#/patients/' + patientId + '/invoices/new', id: 'new-invoice' }, 'New invoice')) : null);
}

function invoiceTable(list) {
  if (!list.length) return h('p', {}, 'No invoices yet.');
  return h('table', { id: 'invoices' }, h('thead', {}, h('tr', {}, ['Invoice', 'Status', 'Due', 'Total', 'Amount due'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, list.map((i) => h('tr', {}, h('td', {}, h('a', { href: '#/invoices/' + i.id }, i.id.slice(0, 8))),
      h('td', {}, i.status), h('td', {}, i.dueDate), h('td', {}, money(i.subtotal, i.currency)), h('td', {}, money(i.amountDue, i.currency))))));
}

export function newInvoiceScreen(patientId) {
  const currency = field('Currency', 'currency', { tag: 'select' });
  currency.input.append(...CURRENCIES.map((c) => h('option', { value: c }, c)));
  const due = new Date(Date.now() + 30 * 86400000).toISOString().slice(0, 10);
  const dueDate = field('Due date (YYYY-MM-DD)', 'dueDate', { value: due, required: true });
  const lines = h('fieldset', { id: 'lines' }, h('legend', {}, 'Lines'));
  const rows = [];
  const addLine = () => {
    const n = rows.length;
    const row = {
      description: field('Description', 'lines[' + n + '].description', { required: true }),
      quantity: field('Quantity', 'lines[' + n + '].quantity', { type: 'number', min: 1, value: '1', required: true }),
      unit: field('Unit amount', 'lines[' + n + '].unitAmount', { inputmode: 'decimal', required: true }),
    };
    rows.push(row);
    lines.append(h('div', { class: 'row line' }, row.description.el, row.quantity.el, row.unit.el));
    row.description.input.focus();
  };
  addLine();
  const hint = h('p', { class: 'muted', id: 'amount-hint' });
  const showHint = () => { const d = digits(currency.input.value); hint.textContent = 'Amounts in ' + currency.input.value + (d ? ' with up to ' + d + ' decimals' : ' (no decimals)') + '.'; };
  currency.input.addEventListener('change', showHint);
  showHint();
  const msg = h('div', {});
  const key = keyed();
  const all = () => [currency, dueDate, ...rows.flatMap((r) => [r.description, r.quantity, r.unit])];
  mount(h('h1', {}, 'New invoice'), msg,
    h('form', { id: 'invoice', novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      const cur = currency.input.value;
      const bad = {};
      const body = { patientId, currency: cur, dueDate: dueDate.input.value.trim(), lines: rows.map((r, i) => {
        const unit = toMinor(r.unit.input.value, cur);
        if (unit === null) bad['lines[' + i + '].unitAmount'] = 'must be an amount in ' + cur + ' with at most ' + digits(cur) + ' decimals';
        return { description: r.description.input.value.trim(), quantity: parseInt(r.quantity.input.value, 10) || 0, unitAmount: unit || 0 };
      }) };
      if (Object.keys(bad).length) { showFieldErrors(all(), bad); return; }
      const r = await call('POST', '/api/billing/invoices', { body, idem: key(body) });
      if (r.ok) { say('Draft invoice created'); location.hash = '#/invoices/' + r.body.id; return; }
      showFieldErrors(all(), r.fields);
      msg.replaceChildren(alertBox(r.sentence));
    } }, currency.el, hint, dueDate.el, lines,
    h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', id: 'add-line', onclick: addLine }, 'Add a line'),
      h('button', { type: 'submit' }, 'Create draft'), h('a', { href: '#/patients/' + patientId }, 'Cancel'))));
}

export async function invoiceScreen(id) {
  const r = await call('GET', '/api/billing/invoices/' + id);
  if (!r.ok) return failure('Invoice', r, () => invoiceScreen(id));
  const inv = r.body;
  const msg = h('div', {});
  const act = (path, body) => async () => {
    const a = await call('POST', '/api/billing/invoices/' + id + path, { body, idem: true });
    if (a.ok) { say('Invoice ' + a.body.status); invoiceScreen(id); } else msg.replaceChildren(alertBox(a.sentence));
  };
  let pay = null;
  if (canBill() && inv.status === 'open') {
    const amount = field('Amount (' + inv.currency + ')', 'amount', { value: plain(inv.amountDue, inv.currency), inputmode: 'decimal', required: true });
    const method = field('Method', 'method', { tag: 'select' });
    method.input.append(...[['card', 'Card'], ['cash', 'Cash'], ['bank_transfer', 'Bank transfer'], ['insurance', 'Insurance']].map(([v, t]) => h('option', { value: v }, t)));
    const key = keyed();
    pay = h('form', { id: 'pay', onsubmit: async (e) => {
      e.preventDefault();
      const minor = toMinor(amount.input.value, inv.currency);
      if (minor === null) { showFieldErrors([amount], { amount: 'must be an amount in ' + inv.currency + ' with at most ' + digits(inv.currency) + ' decimals' }); return; }
      const body = { amount: minor, method: method.input.value };
      const p = await call('POST', '/api/billing/invoices/' + id + '/payments', { body, idem: key(body) });
      if (p.ok) { say('Payment recorded'); invoiceScreen(id); return; }
      showFieldErrors([amount, method], p.fields);
      msg.replaceChildren(alertBox(p.sentence));
    } }, h('h2', {}, 'Record a payment'), h('div', { class: 'row' }, amount.el, method.el, h('button', { type: 'submit' }, 'Record payment')));
  }
  mount(h('h1', {}, 'Invoice ' + id.slice(0, 8)),
    h('dl', { class: 'facts' }, [['Status', h('span', { id: 'invoice-status' }, inv.status)], ['Currency', inv.currency], ['Due', inv.dueDate],
      ['Subtotal', money(inv.subtotal, inv.currency)], ['Paid', money(inv.amountPaid, inv.currency)], ['Amount due', money(inv.amountDue, inv.currency)],
      ['Updated', dateTime(inv.updatedAt)]].map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('p', {}, h('a', { href: '#/patients/' + inv.patientId }, 'Back to the patient')),
    h('table', {}, h('caption', {}, 'Lines'), h('thead', {}, h('tr', {}, ['Description', 'Quantity', 'Unit', 'Amount'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, inv.lines.map((l) => h('tr', {}, h('td', {}, l.description), h('td', {}, String(l.quantity)),
        h('td', {}, money(l.unitAmount, inv.currency)), h('td', {}, money(l.amount, inv.currency)))))),
    inv.payments && inv.payments.length ? h('ul', {}, inv.payments.map((p) => h('li', {}, money(p.amount, inv.currency) + ' by ' + p.method + ', ' + dateTime(p.at)))) : null,
    msg,
    canBill() ? h('div', { class: 'actions' },
      inv.status === 'draft' ? h('button', { type: 'button', id: 'issue', onclick: act('/issue') }, 'Issue') : null,
      inv.status === 'draft' || inv.status === 'open' ? h('button', { type: 'button', class: 'danger', id: 'void', onclick: act('/void') }, 'Void') : null) : null,
    pay);
}
