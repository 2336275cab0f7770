// app.js — the console's shell: sign-in with the gateway's sessions,
// navigation between the pages of the apps this instance runs (from
// GET /api/v1/apps), dark mode, the API helper (refreshes an expired access
// token once), one live WebSocket shared by the pages with a heartbeat and
// a connection indicator that tells the truth, and the helpers pages share
// (elements, "2 min ago", a script loader for packaged libraries).
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
  if (!r.ok) {
    // the error envelope: its message, and its code and details for pages
    // that say more (which fields are missing, what was excluded)
    const e = new Error(body.message || r.statusText);
    Object.assign(e, { status: r.status, code: body.error_code, details: body.details });
    throw e;
  }
  return options.whole ? body : body.data; /* whole: with the envelope's metadata */
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
  if (location.hash.startsWith('#/status')) { /* another page shows the sign-in */
    const other = (apps || []).find((p) => p.page !== 'status');
    location.hash = other ? '#/' + other.page : '#/';
  }
  else show();
};

// ---- time in words: "12 s ago", "2 min ago", "3 h ago", "2 days ago"
grove.ago = function (ms, now = Date.now()) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return s < 10 ? 'just now' : s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  const d = Math.floor(s / 86400);
  return d + (d === 1 ? ' day ago' : ' days ago');
};
grove.clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
grove.when = (ms) => new Date(ms).toLocaleString([], { dateStyle: 'medium', timeStyle: 'medium' });

// A <time> that keeps saying how old it is: every element made here is
// rewritten by the ticker below (text only, and only when it changes).
grove.timeAgo = function (ms, prefix = '') {
  const t = grove.el('time', { 'data-ago': ms, 'data-prefix': prefix });
  grove.setAgo(t, ms);
  return t;
};
grove.setAgo = function (t, ms) {
  t.dataset.ago = ms == null ? '' : ms;
  if (ms == null) { grove.text(t, ''); t.removeAttribute('datetime'); t.removeAttribute('title'); return; }
  const iso = new Date(ms).toISOString();
  if (t.getAttribute('datetime') !== iso) { t.setAttribute('datetime', iso); t.title = grove.when(ms); }
  grove.text(t, (t.dataset.prefix || '') + grove.ago(ms));
};
function tickAges() {
  for (const t of document.querySelectorAll('time[data-ago]'))
    if (t.dataset.ago) grove.setAgo(t, Number(t.dataset.ago));
}

// Writes text only when it differs: unchanged values are never re-rendered
// (selections survive, screen readers hear nothing new).
grove.text = function (node, s) {
  s = String(s);
  if (node.textContent !== s) node.textContent = s;
};
grove.attr = function (node, name, v) {
  if (v == null || v === false) { if (node.hasAttribute(name)) node.removeAttribute(name); return; }
  v = v === true ? '' : String(v);
  if (node.getAttribute(name) !== v) node.setAttribute(name, v);
};

// Says something to screen readers once (a polite live region that holds
// only what is worth announcing).
grove.announce = function (s) {
  const a = document.getElementById('announce');
  a.textContent = '';
  setTimeout(() => { a.textContent = s; }, 50);
};

// Loads a script once (packaged libraries such as Chart.js, served by grove
// from Debian's /usr/share/javascript at /javascript/).
const loaded = new Map();
grove.script = function (src) {
  if (!loaded.has(src)) {
    loaded.set(src, new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = src;
      s.onload = resolve;
      s.onerror = () => { loaded.delete(src); reject(new Error('cannot load ' + src)); };
      document.head.append(s);
    }));
  }
  return loaded.get(src);
};

// ---- live topics: one WebSocket, subscriptions kept across reconnects.
// The server pings at the protocol level, which a page cannot see; so the
// page sends {"op":"ping"} every HEARTBEAT ms and takes the server for gone
// when nothing at all has come for SILENCE ms (stopped, hung, or the
// network cut without a close): it then closes the socket, says "offline
// since …" and reconnects with backoff (1 s doubling to 30 s). Pages hear
// 'grove-live' events: {online, since, retry} and, after a reconnection,
// {online:true, resumed:true} to fetch what they missed.
grove.live = {
  ws: null, handlers: new Map(), backoff: 1000, HEARTBEAT: 5000, SILENCE: 12000,
  online: false, said: null, offlineSince: null, retryAt: null, wasOnline: false, timer: null, beat: null, lastHeard: 0,
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
  state(online) {
    if (online) { this.online = true; this.offlineSince = null; this.retryAt = null; } else {
      if (this.online || this.offlineSince == null) this.offlineSince = Date.now();
      this.online = false;
    }
    const resumed = online && this.wasOnline;
    if (online) this.wasOnline = true;
    // one announcement per change of state, not one per retry
    if (online !== this.said) {
      if (online && this.said === false) grove.announce('Back online: live updates resumed.');
      if (!online && this.said) grove.announce('Connection lost: values may be out of date.');
      this.said = online;
    }
    showConnection();
    document.dispatchEvent(new CustomEvent('grove-live', { detail: { online, resumed, since: this.offlineSince } }));
  },
  connect() {
    if (this.ws && this.ws.readyState <= 1) return;
    clearTimeout(this.timer);
    this.timer = null;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = this.ws = new WebSocket(proto + '//' + location.host + '/api/v1/live');
    this.lastHeard = Date.now();
    ws.onopen = () => {
      this.backoff = 1000;
      this.lastHeard = Date.now();
      // app topics need the session's credential; a browser cannot send it
      // as a header on a WebSocket, so it goes first, as a message
      if (grove.token) ws.send(JSON.stringify({ op: 'auth', token: grove.token }));
      for (const topic of this.handlers.keys()) ws.send(JSON.stringify({ op: 'subscribe', topic }));
      this.state(true);
    };
    ws.onmessage = (e) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      const m = JSON.parse(e.data);
      // the access token expired (refused at a subscribe, or the server
      // ended subscriptions it allowed): renew it, which reconnects this
      // socket and subscribes again
      if ((m.type === 'error' || m.type === 'unsubscribed') && m.status === 401 && grove.refresh) {
        grove.renew();
        return;
      }
      if (m.type !== 'message') return;
      const fn = this.handlers.get(m.topic);
      if (fn) fn(m.data);
    };
    ws.onclose = () => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.state(false);
      this.retry();
    };
    if (!this.beat) this.beat = setInterval(() => this.heartbeat(), 1000);
  },
  retry() {
    if (this.timer || !this.handlers.size) return;
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 30000);
    this.retryAt = Date.now() + wait;
    showConnection();
    this.timer = setTimeout(() => { this.timer = null; this.connect(); }, wait);
  },
  heartbeat() {
    const ws = this.ws;
    if (!ws) { showConnection(); return; }
    const quiet = Date.now() - this.lastHeard;
    if (ws.readyState === 1 && quiet >= this.HEARTBEAT && quiet < this.SILENCE) {
      if (!this.pinged || Date.now() - this.pinged >= this.HEARTBEAT) {
        this.pinged = Date.now();
        ws.send(JSON.stringify({ op: 'ping' }));
      }
    }
    if (quiet >= this.SILENCE) {
      // no message, no pong: the server is stopped or hung; a socket that
      // cannot even close cleanly is dropped all the same
      this.ws = null;
      try { ws.close(); } catch (e) { /* already closing */ }
      ws.onclose = null;
      this.state(false);
      this.retry();
    }
  },
  reconnect() { if (this.ws) this.ws.close(); },
};

function showConnection() {
  const c = document.getElementById('connection');
  if (!c) return;
  const l = grove.live;
  const signedIn = !!(grove.token || grove.refresh);
  c.hidden = !signedIn || (!l.online && l.offlineSince == null);
  c.dataset.state = l.online ? 'online' : 'offline';
  if (l.online) { grove.text(c, 'Live'); return; }
  let s = 'Offline since ' + grove.clock(l.offlineSince || Date.now());
  if (l.retryAt) {
    const secs = Math.max(0, Math.ceil((l.retryAt - Date.now()) / 1000));
    s += secs ? ` · retrying in ${secs} s` : ' · reconnecting…';
  } else if (l.ws) s += ' · reconnecting…';
  grove.text(c, s);
}

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

grove.pages.status = async (root) => {
  root.append(grove.el('h1', { tabindex: '-1' }, 'Status'));
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

// The navigation: one link per running app that has a page, as each app's
// table declares it (GET /api/v1/apps: page, title and the page's script,
// fetched only when the instance runs the app).
let apps = null;
async function loadApps() {
  const r = await fetch('/api/v1/apps');
  const list = r.ok ? (await r.json()).data : [];
  apps = list.filter((a) => a.page).map((a) => a.page);
  apps.sort((a, b) => (a.page === 'status') - (b.page === 'status')); /* the shell's own page last */
  const nav = document.getElementById('apps');
  nav.replaceChildren(...apps.map((p) => grove.el('a', { href: '#/' + p.page, 'data-page': p.page }, p.title)));
  await Promise.all(apps.filter((p) => p.script).map((p) => grove.script(p.script)));
}

let current = null, focusHeading = false;
async function show() {
  const pages = apps.map((p) => p.page);
  const want = (location.hash.match(/^#\/(\w+)/) || [])[1];
  const page = pages.includes(want) ? want : pages.find((p) => p !== 'status') || 'status';
  const signedIn = !!(grove.token || grove.refresh);
  document.getElementById('login').hidden = signedIn || page === 'status';
  document.getElementById('logout').hidden = !signedIn;
  showConnection();
  for (const a of document.querySelectorAll('nav a'))
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  const root = document.getElementById('page');
  if (current && current.leave) current.leave();
  grove.live.unsubscribeAll();
  root.replaceChildren();
  current = null;
  if (!signedIn && page !== 'status') { document.querySelector('#login input').focus(); return; }
  const fn = grove.pages[page];
  try { current = (fn && (await fn(root))) || null; } catch (e) {
    if (e.message !== 'signed out') root.append(grove.el('p', { class: 'error', role: 'alert' }, e.message));
  }
  if (focusHeading) {
    focusHeading = false;
    const h = root.querySelector('h1');
    if (h) h.focus();
  }
}

function theme(dark) {
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  const b = document.getElementById('theme');
  b.setAttribute('aria-pressed', String(dark));
  b.textContent = dark ? 'Light' : 'Dark';
  b.title = dark ? 'Light mode' : 'Dark mode';
  document.dispatchEvent(new CustomEvent('grove-theme', { detail: dark }));
}

document.addEventListener('DOMContentLoaded', async () => {
  const saved = local.getItem('grove.theme');
  theme(saved ? saved === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches);
  document.getElementById('theme').addEventListener('click', () => {
    const dark = document.documentElement.dataset.theme !== 'dark';
    local.setItem('grove.theme', dark ? 'dark' : 'light');
    theme(dark);
  });
  // the skip link moves focus; it does not change the address (which
  // would reload the page's view)
  document.querySelector('.skip').addEventListener('click', (e) => {
    e.preventDefault();
    const h = document.querySelector('#page h1') || document.getElementById('main');
    h.focus();
  });
  document.getElementById('logout').addEventListener('click', async () => {
    if (grove.refresh) fetch('/auth/logout', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: grove.refresh }) });
    grove.live.state(false);
    grove.live.offlineSince = null;
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
    focusHeading = true;
    show();
  });
  setInterval(() => { tickAges(); if (!grove.live.online) showConnection(); }, 1000);
  window.addEventListener('hashchange', show);
  try { await loadApps(); } catch (e) { apps = []; }
  show();
});
