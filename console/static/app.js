// The sockudo console: plain JS, no build step. Every POST carries the
// session's CSRF token; the session cookie is HttpOnly.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { csrf: '', app: '', es: null, paused: false, events: [], timers: [], series: [], live: null,
  nodes: false, nodesTimer: null };
const MAX_EVENTS = 500;

async function api(path, opts = {}) {
  const init = { method: opts.method || 'GET', headers: {}, credentials: 'same-origin' };
  if (opts.body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  if (init.method === 'POST') init.headers['X-CSRF-Token'] = state.csrf;
  const res = await fetch('/console/api/' + path, init);
  let body = {};
  try { body = await res.json(); } catch (e) { /* empty */ }
  return { status: res.status, body };
}

function show(loggedIn) {
  $('login').hidden = loggedIn;
  $('main').hidden = !loggedIn;
}

async function start() {
  const r = await api('session');
  if (r.status !== 200) { show(false); return; }
  enter(r.body);
}

function enter(sess) {
  state.csrf = sess.csrf;
  const sel = $('app');
  sel.textContent = '';
  for (const id of sess.apps) {
    const o = document.createElement('option');
    o.value = o.textContent = id;
    sel.appendChild(o);
  }
  $('who').textContent = sess.operator ? 'operator (all apps)' : 'app ' + sess.apps[0];
  // Redis mode: say which counts are this node's and which the cluster's;
  // the nodes panel is the operator's (the cluster's load spans apps).
  for (const el of document.querySelectorAll('.scope')) el.textContent = sess.cluster ? ' (' + el.dataset.scope + ')' : '';
  state.nodes = !!sess.cluster && sess.operator;
  $('nodes-panel').hidden = !state.nodes;
  if (state.nodes && !state.nodesTimer) {
    loadNodes();
    state.nodesTimer = setInterval(loadNodes, 2000);
  }
  show(true);
  selectApp(sess.apps[0] || '');
}

function leave() {
  if (state.es) { state.es.close(); state.es = null; }
  $('live').dataset.state = 'closed';
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (state.nodesTimer) { clearInterval(state.nodesTimer); state.nodesTimer = null; }
  $('nodes-panel').hidden = true;
  state.csrf = '';
  state.events = [];
  $('events').textContent = '';
  show(false);
}

function selectApp(app) {
  if (state.es) state.es.close();
  $('live').dataset.state = 'closed';
  state.timers.forEach(clearInterval);
  state.app = app;
  state.events = [];
  $('events').textContent = '';
  $('dropped').textContent = '';
  if (!app) return;
  const es = new EventSource('/console/api/events?app=' + encodeURIComponent(app));
  es.onopen = () => { $('live').dataset.state = 'open'; $('live').textContent = '● live'; };
  es.onerror = () => { $('live').dataset.state = 'closed'; $('live').textContent = 'reconnecting…'; };
  es.onmessage = (m) => addEvent(JSON.parse(m.data));
  es.addEventListener('dropped', (m) => { $('dropped').textContent = m.data + ' dropped (console too slow)'; });
  state.es = es;
  refresh();
  state.timers.push(setInterval(refresh, 1000));
  state.timers.push(setInterval(loadDead, 2000));
  loadDead();
}

async function refresh() {
  const app = state.app;
  const [s, c] = await Promise.all([
    api('stats?app=' + encodeURIComponent(app)),
    api('channels?app=' + encodeURIComponent(app)),
  ]);
  if (s.status === 401) { leave(); return; }
  if (s.status === 200) {
    const b = s.body;
    $('c-connections').textContent = b.connections;
    $('c-channels').textContent = b.channels;
    $('c-members').textContent = b.presence_members;
    $('c-in').textContent = b.in_per_s.toFixed(1);
    $('c-out').textContent = b.out_per_s.toFixed(1);
    state.series = b.series || [];
    state.live = { t: Date.now(), connections: b.connections, in_per_s: b.in_per_s, out_per_s: b.out_per_s };
    draw();
  }
  if (c.status === 200) renderChannels(c.body.channels || []);
}

function renderChannels(list) {
  const tb = $('channels').tBodies[0];
  tb.textContent = '';
  for (const ch of list) {
    const tr = tb.insertRow();
    tr.dataset.channel = ch.name;
    tr.insertCell().textContent = ch.name;
    tr.insertCell().textContent = ch.subscription_count;
    tr.insertCell().textContent = ch.user_count;
    tr.addEventListener('click', () => inspect(ch.name));
  }
}

async function inspect(name) {
  const r = await api('channel?app=' + encodeURIComponent(state.app) + '&name=' + encodeURIComponent(name));
  $('inspector').textContent = JSON.stringify(r.body, null, 2);
}

function matches(e) {
  const prefix = $('f-prefix').value.trim();
  const ev = $('f-event').value.trim();
  if (prefix && !(e.channel || '').startsWith(prefix)) return false;
  if (ev && e.event !== ev && e.kind !== ev) return false;
  return true;
}

function line(e) {
  const li = document.createElement('li');
  li.className = e.kind + (e.kind === 'webhook' && e.event === 'failed' ? ' bad' : '');
  li.dataset.kind = e.kind;
  const k = document.createElement('span');
  k.className = 'kind';
  k.textContent = e.kind;
  li.appendChild(k);
  const parts = [new Date(e.time).toLocaleTimeString()];
  if (e.channel) parts.push(e.channel);
  if (e.event) parts.push(e.event);
  if (e.socket_id) parts.push('socket ' + e.socket_id);
  if (e.user_id) parts.push('user ' + e.user_id);
  if (e.detail) parts.push(e.detail);
  li.appendChild(document.createTextNode(' ' + parts.join('  ')));
  return li;
}

function addEvent(e) {
  state.events.push(e);
  if (state.events.length > MAX_EVENTS) state.events.shift();
  if (!state.paused) render();
}

function render() {
  const ol = $('events');
  ol.textContent = '';
  const shown = state.events.filter(matches).slice(-200).reverse();
  for (const e of shown) ol.appendChild(line(e));
}

async function loadNodes() {
  const r = await api('nodes');
  if (r.status !== 200) return;
  const v = r.body;
  const sum = $('nodes-summary');
  sum.className = v.degraded ? 'bad' : '';
  sum.textContent = v.degraded ? v.degraded
    : v.total + ' node(s) in Redis' + (v.total > v.nodes.length ? ', ' + v.nodes.length + ' shown' : '') + '; this node is ' + v.self;
  const tb = $('nodes').tBodies[0];
  tb.textContent = '';
  for (const n of v.nodes) {
    const tr = tb.insertRow();
    tr.dataset.state = n.state;
    if (n.id === v.self) tr.className = 'self';
    tr.insertCell().textContent = n.id + (n.id === v.self ? ' (this node)' : '');
    tr.insertCell().textContent = n.state;
    tr.insertCell().textContent = n.state === 'leaving' ? '—' : (n.heartbeat_age_ms / 1000).toFixed(1) + ' s ago';
    tr.insertCell().textContent = n.entries;
  }
}

async function loadDead() {
  const r = await api('dead_letters?app=' + encodeURIComponent(state.app));
  if (r.status !== 200) return;
  const tb = $('dead').tBodies[0];
  tb.textContent = '';
  for (const d of r.body.dead_letters || []) {
    const tr = tb.insertRow();
    tr.insertCell().textContent = d.id;
    tr.insertCell().textContent = d.url;
    tr.insertCell().textContent = d.reason;
    tr.insertCell().textContent = d.attempts;
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'replay';
    b.textContent = 'Replay';
    b.addEventListener('click', () => replay([d.id]));
    tr.insertCell().appendChild(b);
  }
}

async function replay(ids) {
  const r = await api('dead_letters/replay', { method: 'POST', body: { app: state.app, ids } });
  $('replay-result').textContent = r.status === 200 ? r.body.replayed + ' replayed' : (r.body.error || 'failed');
  loadDead();
}

// draw plots the ring (one point per sample) plus the live point: messages/s
// in and out on the left scale, connections on the right.
function draw() {
  const cv = $('chart');
  const ctx = cv.getContext('2d');
  const w = cv.width, h = cv.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  const pts = state.series.map((s) => ({ t: s.t, connections: s.connections, in_per_s: s.in_per_s, out_per_s: s.out_per_s }));
  if (state.live) pts.push(state.live);
  const now = Date.now(), from = now - 15 * 60 * 1000;
  const x = (t) => pad + ((t - from) / (now - from)) * (w - 2 * pad);
  const maxRate = Math.max(1, ...pts.map((p) => Math.max(p.in_per_s, p.out_per_s)));
  const maxConns = Math.max(1, ...pts.map((p) => p.connections));
  ctx.strokeStyle = '#dde';
  ctx.beginPath();
  ctx.moveTo(pad, h - pad); ctx.lineTo(w - pad, h - pad);
  ctx.stroke();
  ctx.fillStyle = '#667';
  ctx.font = '11px sans-serif';
  ctx.fillText(maxRate.toFixed(1) + '/s', 2, 12);
  ctx.fillText(String(maxConns), w - pad + 2, 12);
  ctx.fillText('-15 min', pad, h - 8);
  ctx.fillText('now', w - pad - 18, h - 8);
  const plot = (key, max, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    pts.forEach((p, i) => {
      const y = h - pad - (p[key] / max) * (h - 2 * pad);
      if (i === 0) ctx.moveTo(x(p.t), y); else ctx.lineTo(x(p.t), y);
    });
    ctx.stroke();
  };
  plot('in_per_s', maxRate, '#2b6cb0');
  plot('out_per_s', maxRate, '#2f855a');
  plot('connections', maxConns, '#c05621');
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = $('token').value;
    const body = token ? { token } : { key: $('key').value, secret: $('secret').value };
    const r = await api('login', { method: 'POST', body });
    $('token').value = $('secret').value = '';
    if (r.status !== 200) {
      $('login-error').textContent = r.status === 429 ? 'Too many attempts; wait and retry.' : 'Invalid credentials.';
      return;
    }
    $('login-error').textContent = '';
    enter(r.body);
  });
  $('logout').addEventListener('click', async () => {
    await api('logout', { method: 'POST', body: {} });
    leave();
  });
  $('app').addEventListener('change', (ev) => selectApp(ev.target.value));
  $('pause').addEventListener('click', () => {
    state.paused = !state.paused;
    $('pause').textContent = state.paused ? 'Resume' : 'Pause';
    if (!state.paused) render();
  });
  $('f-prefix').addEventListener('input', render);
  $('f-event').addEventListener('input', render);
  $('trigger-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await api('trigger', { method: 'POST', body: {
      app: state.app, channel: $('t-channel').value, event: $('t-event').value, data: $('t-data').value } });
    $('t-result').textContent = r.status === 200 ? 'sent' : (r.body.error || 'failed');
  });
  $('replay-all').addEventListener('click', () => replay([]));
  start();
});
