// signin.js: sign-in with the MFA step (a code or a recovery code; enrolment when the role
// requires a factor and the account has none), the first password change, and lock-out.
import { h, mount, field, showFieldErrors, alertBox } from './dom.js';
import { call, refresh, signIn, signInMFA } from './api.js';

export function signInScreen(done) {
  const email = field('Email', 'email', { type: 'email', autocomplete: 'username', required: true });
  const password = field('Password', 'password', { type: 'password', autocomplete: 'current-password', required: true });
  const msg = h('div', {});
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { id: 'signin', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    submit.disabled = true;
    msg.replaceChildren();
    const r = await signIn(email.input.value, password.input.value);
    submit.disabled = false;
    if (r.ok) return done();
    if (r.mfa) return r.enrol ? enrolStep(r.mfa, done) : mfaStep(r.mfa, done);
    if (r.change) return changeStep(r.change);
    showFieldErrors([email, password], r.fields);
    msg.append(alertBox(r.error));
  } }, email.el, password.el, h('div', { class: 'actions' }, submit));
  mount(h('h1', {}, 'Sign in'), msg, form);
}

function mfaStep(challenge, done) {
  const code = field('Authentication code or recovery code', 'code', { autocomplete: 'one-time-code', inputmode: 'text', required: true });
  const msg = h('div', {});
  mount(h('h1', {}, 'Second step'), h('p', {}, 'Enter the 6-digit code from your authenticator app, or one of your recovery codes.'), msg,
    h('form', { id: 'mfa', onsubmit: async (e) => {
      e.preventDefault();
      msg.replaceChildren();
      const r = await signInMFA(challenge, code.input.value.trim());
      if (r.ok) return done();
      showFieldErrors([code], r.fields);
      msg.append(alertBox(r.error));
    } }, code.el, h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Continue'))));
}

async function enrolStep(challenge, done) {
  const r = await call('POST', '/auth/login/mfa/enrol', { body: { challenge } });
  if (!r.ok) return mount(h('h1', {}, 'Second factor'), alertBox(r.sentence, () => signInScreen(done)));
  const code = field('Code from the app', 'code', { autocomplete: 'one-time-code', required: true });
  const msg = h('div', {});
  mount(h('h1', {}, 'Set up a second factor'),
    h('p', {}, 'Your role needs an authenticator app. Scan the code, or enter the secret by hand, then type the code it shows.'),
    h('img', { src: 'data:image/png;base64,' + r.body.qrPng, alt: 'QR code of the authenticator secret', width: 200, height: 200 }),
    h('p', {}, 'Secret: ', h('code', {}, r.body.secret)), msg,
    h('form', { onsubmit: async (e) => {
      e.preventDefault();
      const c = await call('POST', '/auth/login/mfa/confirm', { body: { challenge, code: code.input.value.trim() }, headers: { 'X-PMS-Refresh-Cookie': '1' } });
      if (!c.ok) { showFieldErrors([code], c.fields); msg.replaceChildren(alertBox(c.sentence)); return; }
      mount(h('h1', {}, 'Recovery codes'), h('p', {}, 'Keep these codes somewhere safe: each signs you in once without the app. They are shown only now.'),
        h('ul', {}, c.body.recoveryCodes.map((x) => h('li', {}, h('code', {}, x)))),
        h('button', { type: 'button', onclick: async () => { if (await refresh()) done(); else signInScreen(done); } }, 'Continue'));
    } }, code.el, h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Confirm'))));
}

function changeStep(token) {
  const pw = field('New password (at least 12 characters)', 'newPassword', { type: 'password', autocomplete: 'new-password', required: true });
  const msg = h('div', {});
  mount(h('h1', {}, 'Choose your password'), h('p', {}, 'This password works once: choose your own to continue.'), msg,
    h('form', { onsubmit: async (e) => {
      e.preventDefault();
      const r = await call('POST', '/auth/password/set', { body: { token, newPassword: pw.input.value } });
      if (!r.ok) { showFieldErrors([pw], r.fields); msg.replaceChildren(alertBox(r.sentence)); return; }
      msg.replaceChildren(h('p', { class: 'note' }, 'Password set. Sign in with it now.'));
      signInScreen(() => { location.hash = '#/'; });
    } }, pw.el, h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Set password'))));
}
