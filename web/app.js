// app.js — the console's shell: sign-in with the gateway's sessions,
// navigation between app pages (#/flow, #/status, …), dark mode, the
// API helper (refreshes an expired access token once) and one live
// WebSocket shared by the pages.
'use strict';

// Storage can be refused (private modes, opaque origins): then a session
// lasts as long as the page.
function storage(kind) {
  try { const s = window[kind]; s.getItem('x'); return s; } catch (e) {
    const m = new Map();
    return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
  }
}
const session = storage('sessionStorage'), local = storage('localStorage');

const grove = {
  pages: {},
  token: session.getItem('grove.access'),
  refresh: local.getItem('grove.refresh'),
};

grove.api = async function (path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (grove.token) headers.Authorization = 'Bearer ' + grove.token;
  if (options.body && !headers['Content-Type']) headers['Content-Type'] = 'application/json';
  let r = await fetch(path, Object.assign({}, options, { headers }));
  if (r.status === 401 && grove.refresh && !options.retried) {
    if (await grove.renew()) return grove.api(path, Object.assign({}, options, { retried: true }));
  }
  if (r.status === 401) { grove.signedOut(); throw new Error('signed out'); }
  const body = r.status === 204 ? {} : await r.json();
  if (!r.ok) throw new Error(body.message || r.statusText);
  return body.data;
};

// One renewal at a time: a refresh token is good for one use, and a second
// use revokes the session (the API helper and the live socket may both ask).
grove.renew = function () {
  if (!grove.renewing) {
    grove.renewing = (async () => {
      const r = await fetch('/auth/refresh', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: grove.refresh }) });
      if (!r.ok) return false;
      grove.remember((await r.json()).data);
      return true;
    })().finally(() => { grove.renewing = null; });
  }
  return grove.renewing;
};

grove.remember = function (tokens) {
  grove.token = tokens.access_token;
  grove.refresh = tokens.refresh_token;
  session.setItem('grove.access', grove.token);
  local.setItem('grove.refresh', grove.refresh);
  grove.live.reconnect();
};

grove.signedOut = function () {
  grove.token = grove.refresh = null;
  session.removeItem('grove.access');
  local.removeItem('grove.refresh');
  if (location.hash.startsWith('#/status')) location.hash = '#/flow'; /* shows the sign-in */
  else show();
};

// ---- live topics: one WebSocket, subscriptions kept across reconnects
grove.live = {
  ws: null, handlers: new Map(), backoff: 500,
  subscribe(topic, fn) {
    this.handlers.set(topic, fn);
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify({ op: 'subscribe', topic }));
    else this.connect();
  },
  unsubscribeAll() {
    for (const topic of this.handlers.keys())
      if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify({ op: 'unsubscribe', topic }));
    this.handlers.clear();
  },
  connect() {
    if (this.ws && this.ws.readyState <= 1) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.ws = new WebSocket(proto + '//' + location.host + '/api/v1/live');
    this.ws.onopen = () => {
      this.backoff = 500;
      // app topics need the session's credential; a browser cannot send it
      // as a header on a WebSocket, so it goes first, as a message
      if (grove.token) this.ws.send(JSON.stringify({ op: 'auth', token: grove.token }));
      for (const topic of this.handlers.keys()) this.ws.send(JSON.stringify({ op: 'subscribe', topic }));
      document.dispatchEvent(new CustomEvent('grove-live', { detail: true }));
    };
    this.ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      // the access token expired: renew it (which reconnects this socket)
      if (m.type === 'error' && m.status === 401 && grove.refresh) {
        grove.renew();
        return;
      }
      if (m.type !== 'message') return;
      const fn = this.handlers.get(m.topic);
      if (fn) fn(m.data);
    };
    this.ws.onclose = () => {
      document.dispatchEvent(new CustomEvent('grove-live', { detail: false }));
      if (this.handlers.size) setTimeout(() => this.connect(), this.backoff = Math.min(this.backoff * 2, 10000));
    };
  },
  reconnect() { if (this.ws) this.ws.close(); },
};

// ---- pages
grove.el = function (tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== false && v != null) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) e.append(c.nodeType ? c : String(c));
  return e;
};

function comingSoon(name, what) {
  return (root) => {
    root.append(grove.el('h1', {}, name), grove.el('p', { class: 'muted' }, what + ' — this page comes with the app.'));
  };
}
grove.pages.relay = comingSoon('Relay', 'Devices, their requests and files, and responses pushed back');
grove.pages.matrix = comingSoon('Matrix', 'AI workloads: processes, power, cost and carbon');
grove.pages.notes = comingSoon('Notes', 'Lectures, search and chat with citations, quizzes and flashcards');
grove.pages.status = async (root) => {
  root.append(grove.el('h1', {}, 'Status'));
  const r = await fetch('/ready');
  const body = await r.json();
  const checks = body.status === 'success' ? body.data.checks : body.details.checks;
  const tbody = grove.el('tbody');
  for (const [name, c] of Object.entries(checks))
    tbody.append(grove.el('tr', {}, grove.el('td', {}, name),
      grove.el('td', { class: c.ok ? 'ok' : 'down' }, c.ok ? 'up' : 'down: ' + (c.error || ''))));
  root.append(grove.el('table', { 'aria-label': 'Backends of this instance' },
    grove.el('thead', {}, grove.el('tr', {}, grove.el('th', {}, 'backend'), grove.el('th', {}, 'state'))), tbody));
};

let current = null;
async function show() {
  const page = (location.hash.match(/^#\/(\w+)/) || [, 'flow'])[1];
  const signedIn = !!(grove.token || grove.refresh);
  document.getElementById('login').hidden = signedIn || page === 'status';
  document.getElementById('logout').hidden = !signedIn;
  for (const a of document.querySelectorAll('nav a'))
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  const root = document.getElementById('page');
  if (current && current.leave) current.leave();
  grove.live.unsubscribeAll();
  root.replaceChildren();
  current = null;
  if (!signedIn && page !== 'status') { document.querySelector('#login input').focus(); return; }
  const fn = grove.pages[page] || grove.pages.flow;
  try { current = (await fn(root)) || null; } catch (e) {
    if (e.message !== 'signed out') root.append(grove.el('p', { class: 'error', role: 'alert' }, e.message));
  }
}

function theme(dark) {
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  const b = document.getElementById('theme');
  b.setAttribute('aria-pressed', String(dark));
  b.textContent = dark ? 'Light' : 'Dark';
  b.title = dark ? 'Light mode' : 'Dark mode';
}

document.addEventListener('DOMContentLoaded', () => {
  const saved = local.getItem('grove.theme');
  theme(saved ? saved === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches);
  document.getElementById('theme').addEventListener('click', () => {
    const dark = document.documentElement.dataset.theme !== 'dark';
    local.setItem('grove.theme', dark ? 'dark' : 'light');
    theme(dark);
  });
  document.getElementById('logout').addEventListener('click', async () => {
    if (grove.refresh) fetch('/auth/logout', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: grove.refresh }) });
    grove.signedOut();
  });
  document.getElementById('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const err = document.getElementById('login-error');
    err.textContent = '';
    const r = await fetch('/auth/login', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: f.get('email'), password: f.get('password') }) });
    const body = await r.json();
    if (!r.ok) { err.textContent = body.message || 'cannot sign in'; return; }
    grove.remember(body.data);
    e.target.reset();
    show();
  });
  window.addEventListener('hashchange', show);
  show();
});
