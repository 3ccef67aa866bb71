// dom.js: the only way the console builds HTML. Text is always a text node (no string is
// ever parsed as markup), so patient data can never become markup or script.

// h builds an element: attrs are attributes, except on* (event listeners) and the boolean
// properties; children are nodes, strings (text nodes) or arrays of them; null is skipped.
export function h(tag, attrs, ...children) {
  const el = tag === 'svg' || svgTags.has(tag)
    ? document.createElementNS('http://www.w3.org/2000/svg', tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'disabled') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

const svgTags = new Set(['rect', 'line', 'text', 'g', 'title', 'polyline', 'path']);

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

let route = null;

// expectRoute records the route being opened: a screen that finishes loading after the user
// has moved on to another route must not replace the newer one.
export function expectRoute(hash) { route = hash; }

// mount replaces the main area with a screen and moves focus to its heading (nothing when
// the user has left the route the screen belongs to).
export function mount(...children) {
  if (route !== null && location.hash !== route) return;
  const main = document.getElementById('main');
  main.replaceChildren();
  append(main, children);
  const h1 = main.querySelector('h1');
  if (h1) { h1.tabIndex = -1; h1.focus(); }
}

let fieldSeq = 0;

// field is a labelled input with its error slot (aria-describedby), named for the API field.
export function field(label, name, attrs = {}) {
  const id = 'f-' + name + '-' + (++fieldSeq);
  const input = h(attrs.tag || 'input', { id, name, ...attrs, tag: null });
  const err = h('p', { class: 'field-error', id: id + '-err', hidden: true });
  input.setAttribute('aria-describedby', err.id);
  return { el: h('div', { class: 'field' }, h('label', { for: id }, label), input, err), input, err, name };
}

// showFieldErrors puts the API's `fields` next to their inputs; returns the unmatched ones.
export function showFieldErrors(fields, errors) {
  const left = { ...(errors || {}) };
  for (const f of fields) {
    const msg = left[f.name];
    delete left[f.name];
    f.err.textContent = msg ? msg : '';
    f.err.hidden = !msg;
    if (msg) f.input.setAttribute('aria-invalid', 'true'); else f.input.removeAttribute('aria-invalid');
  }
  const firstBad = fields.find((f) => f.input.getAttribute('aria-invalid') === 'true');
  if (firstBad) firstBad.input.focus();
  return left;
}

// alert is an error box with an optional retry button.
export function alertBox(text, retry) {
  return h('div', { class: 'alert', role: 'alert' }, h('p', {}, text),
    retry ? h('button', { type: 'button', onclick: retry }, 'Retry') : null);
}

// say announces a short message in the live region.
export function say(text) {
  const s = document.getElementById('status');
  s.textContent = text;
  setTimeout(() => { if (s.textContent === text) s.textContent = ''; }, 4000);
}

// dateTime formats an RFC 3339 instant for people.
export function dateTime(s) {
  const d = new Date(s);
  return isNaN(d) ? String(s) : d.toLocaleString();
}
