'use strict';
// Handshake, socket ids, the pusher-js happy path, handshake refusals on the
// default server, and a second app created with the CLI.

const assert = require('node:assert/strict');
const { useServer, it } = require('../lib/harness');
const { rawConnect, rawConnected, SOCKET_ID_RE } = require('../lib/raw');
const { newClient, connectedClient, waitState, subscribe, newBackend, nextMessage, waitFor } = require('../lib/clients');
const { expectRefusal } = require('../lib/assertions');
const { signedRequest, plainRequest } = require('../lib/rest');

const APP2 = { id: 'app2', key: 'key2', secret: 'secret2' };

const ref = useServer({
  name: 'connect',
  env: { ACTIVITY_TIMEOUT: '77' },
  apps: [{ ...APP2, flags: ['--enable-client-messages'] }],
});

it('first frame is pusher:connection_established with a JSON-string data', async () => {
  const s = ref.server;
  const sock = await rawConnect(s);
  const f = sock.frames.items[0];
  assert.equal(f.event, 'pusher:connection_established', `first frame: ${f.text}`);
  assert.equal(typeof f.json.data, 'string', `data must be a JSON string (double-encoded): ${f.text}`);
  const data = JSON.parse(f.json.data);
  assert.equal(typeof data.socket_id, 'string');
  assert.match(data.socket_id, SOCKET_ID_RE);
  assert.equal(data.activity_timeout, 77, 'activity_timeout must come from ACTIVITY_TIMEOUT');
  assert.equal(f.json.channel, undefined);
});

it('socket ids are unique per connection', async () => {
  const socks = await Promise.all([1, 2, 3, 4, 5].map(() => rawConnected(ref.server)));
  const ids = new Set(socks.map((s) => s.socketId));
  assert.equal(ids.size, socks.length, `duplicate socket ids: ${[...ids]}`);
});

it('connection without a protocol parameter is accepted (treated as 7)', async () => {
  const sock = await rawConnect(ref.server, { query: '' });
  assert.equal(sock.first.event, 'pusher:connection_established', sock.first.text);
});

it('protocol 4..7 accepted', async () => {
  for (const p of [4, 5, 6, 7]) {
    const sock = await rawConnect(ref.server, { query: `?protocol=${p}&client=js&version=8.6.0` });
    assert.equal(sock.first.event, 'pusher:connection_established', `protocol=${p}: ${sock.first.text}`);
    sock.close();
  }
});

it('pusher-js reaches connected and gets a socket_id', async () => {
  const client = await connectedClient(ref.server);
  assert.match(client.connection.socket_id, SOCKET_ID_RE);
  assert.equal(client.connection.state, 'connected');
});

it('unknown app key → pusher:error 4001 then close 4001', async () => {
  await expectRefusal(ref.server, 4001, { key: 'no-such-key' });
});

it('protocol=3 → 4007', async () => {
  await expectRefusal(ref.server, 4007, { query: '?protocol=3&client=js&version=8.6.0' });
});

it('protocol=8 → 4007', async () => {
  await expectRefusal(ref.server, 4007, { query: '?protocol=8&client=js&version=8.6.0' });
});

it('bad path /app/ (no key) → upgraded and refused with 4005', async () => {
  await expectRefusal(ref.server, 4005, { path: '/app/?protocol=7' });
});

it('bad path /app/<key>/extra → upgraded and refused with 4005', async () => {
  await expectRefusal(ref.server, 4005, { path: `/app/${ref.server.app.key}/extra?protocol=7` });
});

it('pusher-js with an unknown key: error 4001, state disconnected, no reconnect scheduled', async () => {
  const client = newClient(ref.server, { key: 'no-such-key' });
  const err = await waitFor(client.connection, 'error', 5000, 'pusher-js connection error');
  await waitState(client, 'disconnected');
  const code = err?.error?.data?.code;
  assert.equal(code, 4001, `pusher-js error: ${JSON.stringify(err)}`);
  // 'disconnected' via the refused action has no pending retry; a backoff
  // or retry action would have left a retry timer (or state connecting).
  assert.equal(client.connection.state, 'disconnected');
  assert.ok(!client.connection.retryTimer, 'pusher-js scheduled a reconnect');
  assert.ok(!client.connection.runner, 'pusher-js is still trying to connect');
  assert.ok(!client.states.includes('connected'), `states: ${client.states}`);
});

it('GET /up and /live answer 200 without auth', async () => {
  const up = await plainRequest(ref.server, '/up');
  assert.equal(up.status, 200);
  const live = await plainRequest(ref.server, '/live');
  assert.equal(live.status, 200);
});

it('second app created with the CLI: connect, subscribe, REST trigger', async () => {
  const s = ref.server;
  const client = await connectedClient(s, { app: APP2 });
  await subscribe(client, 'app2-channel');
  const backend = newBackend(s, { app: APP2 });
  const since = client.log.mark();
  const res = await backend.trigger('app2-channel', 'hello', { n: 2 });
  assert.equal(res.status, 200);
  const m = await nextMessage(client, 'hello', { channel: 'app2-channel', since });
  assert.deepEqual(m.data, { n: 2 });
});

it('apps are isolated: a default-app trigger does not reach app2 subscribers', async () => {
  const s = ref.server;
  const c2 = await connectedClient(s, { app: APP2 });
  await subscribe(c2, 'shared-name');
  const since = c2.log.mark();
  await newBackend(s).trigger('shared-name', 'from-default-app', {});
  await newBackend(s, { app: APP2 }).trigger('shared-name', 'marker', {});
  await nextMessage(c2, 'marker', { since });
  assert.equal(c2.log.find((m) => m.event === 'from-default-app', since), undefined);
});

it('REST: the auth_key of another app is refused for this app (401)', async () => {
  const r = await signedRequest(ref.server, {
    method: 'POST',
    path: `/apps/${ref.server.app.id}/events`,
    key: APP2.key,
    secret: APP2.secret,
    body: { name: 'x', channels: ['c'], data: '{}' },
  });
  assert.equal(r.status, 401, r.text);
  assert.ok(r.json, `error body must be JSON: ${r.text}`);
});

it('client events allowed on app2 (created with --enable-client-messages)', async () => {
  const s = ref.server;
  const a = await connectedClient(s, { app: APP2 });
  const b = await connectedClient(s, { app: APP2 });
  await subscribe(a, 'private-app2');
  const chB = await subscribe(b, 'private-app2');
  const got = waitFor(chB, 'client-hi', 5000, 'client-hi relayed to the other app2 socket');
  a.channel('private-app2').trigger('client-hi', { x: 1 });
  assert.deepEqual(await got, { x: 1 });
  assert.equal(a.log.find((m) => m.event === 'pusher:error'), undefined);
});
