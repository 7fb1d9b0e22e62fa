'use strict';
// HTTP API: every endpoint, info parameters, limits and error statuses.

const assert = require('node:assert/strict');
const { useServer, it } = require('../lib/harness');
const { rawConnected, rawSubscribe } = require('../lib/raw');
const { connectedClient, subscribe, newBackend, waitFor } = require('../lib/clients');
const { signedRequest, sdkError, sdkJson } = require('../lib/rest');

const ref = useServer({ name: 'rest' });

const backend = (o) => newBackend(ref.server, o);
const appPath = (p) => `/apps/${ref.server.app.id}${p}`;

function assertJsonError(r, status) {
  assert.equal(r.status, status, `expected HTTP ${status}, got ${r.status}: ${r.body ?? r.text}`);
  const body = r.body ?? r.text;
  assert.ok(r.json !== undefined, `error response must have a JSON body, got ${JSON.stringify(body)}`);
}

async function presenceMember(channel, id) {
  const c = await connectedClient(ref.server, { presence: { user_id: id, user_info: {} } });
  await subscribe(c, channel);
  return c;
}

it('GET /channels with no channels → exactly {"channels":{}}', async () => {
  const r = await signedRequest(ref.server, { path: appPath('/channels') });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { channels: {} }, `body: ${r.text}`);
  assert.equal(r.text.replace(/\s/g, ''), '{"channels":{}}');
  assert.match(r.headers.get('content-type') || '', /application\/json/);
});

it('GET /channels lists occupied channels with empty attributes when info is absent', async () => {
  const c = await connectedClient(ref.server);
  await subscribe(c, 'list-a');
  await subscribe(c, 'list-b');
  const r = await sdkJson(await backend().get({ path: '/channels' }));
  assert.deepEqual(r.json.channels['list-a'], {}, r.text);
  assert.deepEqual(r.json.channels['list-b'], {}, r.text);
});

it('GET /channels?filter_by_prefix=presence- returns only presence channels', async () => {
  const c = await connectedClient(ref.server);
  await subscribe(c, 'fbp-public');
  await presenceMember('presence-fbp', 'p1');
  const r = await sdkJson(await backend().get({ path: '/channels', params: { filter_by_prefix: 'presence-' } }));
  assert.ok('presence-fbp' in r.json.channels, r.text);
  for (const name of Object.keys(r.json.channels)) assert.ok(name.startsWith('presence-'), r.text);
});

it('GET /channels?info=user_count without filter_by_prefix=presence- → 400', async () => {
  const r = await sdkError(backend().get({ path: '/channels', params: { info: 'user_count' } }));
  assertJsonError(r, 400);
});

it('GET /channels?filter_by_prefix=presence-&info=user_count → user_count per channel', async () => {
  await presenceMember('presence-uc', 'a');
  await presenceMember('presence-uc', 'b');
  await presenceMember('presence-uc', 'a');
  const r = await sdkJson(
    await backend().get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }),
  );
  assert.deepEqual(r.json.channels['presence-uc'], { user_count: 2 }, r.text);
});

it('GET /channels?info=subscription_count → subscription_count per channel', async () => {
  const a = await connectedClient(ref.server);
  const b = await connectedClient(ref.server);
  await subscribe(a, 'sc-list');
  await subscribe(b, 'sc-list');
  const r = await sdkJson(await backend().get({ path: '/channels', params: { info: 'subscription_count' } }));
  assert.equal(r.json.channels['sc-list']?.subscription_count, 2, r.text);
});

it('php-style escaped query and node-style unescaped query both verify', async () => {
  const c = await connectedClient(ref.server);
  await subscribe(c, 'esc-a=b@c,d.e');
  for (const escape of [false, true]) {
    const r = await signedRequest(ref.server, {
      path: appPath('/channels'),
      params: { filter_by_prefix: 'esc-a=b@c,d', info: 'subscription_count' },
      escape,
    });
    assert.equal(r.status, 200, `escape=${escape}: ${r.text}`);
    assert.deepEqual(Object.keys(r.json.channels), ['esc-a=b@c,d.e'], `escape=${escape}: ${r.text}`);
  }
});

it('GET /channels/:name → occupied true/false', async () => {
  const c = await connectedClient(ref.server);
  await subscribe(c, 'occ-yes');
  const yes = await sdkJson(await backend().get({ path: '/channels/occ-yes' }));
  assert.deepEqual(yes.json, { occupied: true }, yes.text);
  const no = await sdkJson(await backend().get({ path: '/channels/occ-never-used' }));
  assert.equal(no.json.occupied, false, no.text);
});

it('GET /channels/:name?info=subscription_count → subscription_count', async () => {
  const a = await connectedClient(ref.server);
  const b = await connectedClient(ref.server);
  await subscribe(a, 'occ-count');
  await subscribe(b, 'occ-count');
  const r = await sdkJson(await backend().get({ path: '/channels/occ-count', params: { info: 'subscription_count' } }));
  assert.equal(r.json.occupied, true);
  assert.equal(r.json.subscription_count, 2, r.text);
});

it('GET /channels/:name?info=user_count on a public channel → 400', async () => {
  const r = await sdkError(backend().get({ path: '/channels/some-public', params: { info: 'user_count' } }));
  assertJsonError(r, 400);
});

it('GET /channels/presence-x?info=user_count → user_count', async () => {
  await presenceMember('presence-one-info', 'x');
  const r = await sdkJson(await backend().get({ path: '/channels/presence-one-info', params: { info: 'user_count' } }));
  assert.deepEqual(r.json, { occupied: true, user_count: 1 }, r.text);
});

it('GET /channels/:name/users on a non-presence channel → 400', async () => {
  const r = await sdkError(backend().get({ path: '/channels/private-not-presence/users' }));
  assertJsonError(r, 400);
  const r2 = await sdkError(backend().get({ path: '/channels/public-thing/users' }));
  assertJsonError(r2, 400);
});

it('GET /channels/presence-empty/users → {"users":[]}', async () => {
  const r = await sdkJson(await backend().get({ path: '/channels/presence-nobody/users' }));
  assert.deepEqual(r.json, { users: [] }, r.text);
});

it('trigger with info=subscription_count,user_count → channels map', async () => {
  const pub = await connectedClient(ref.server);
  await subscribe(pub, 'info-pub');
  await presenceMember('presence-info', 'one');
  const res = await backend().trigger(['info-pub', 'presence-info'], 'ev', {}, {
    info: 'subscription_count,user_count',
  });
  const r = await sdkJson(res);
  assert.equal(r.json.channels?.['info-pub']?.subscription_count, 1, r.text);
  assert.equal(r.json.channels?.['presence-info']?.user_count, 1, r.text);
  assert.equal(r.json.channels['info-pub'].user_count, undefined, `user_count is presence-only: ${r.text}`);
});

it('batch_events delivers every event; response {}', async () => {
  const c = await connectedClient(ref.server);
  const a = await subscribe(c, 'batch-a');
  const b = await subscribe(c, 'batch-b');
  const gotA = waitFor(a, 'ba', 5000);
  const gotB = waitFor(b, 'bb', 5000);
  const r = await sdkJson(
    await backend().triggerBatch([
      { channel: 'batch-a', name: 'ba', data: { x: 1 } },
      { channel: 'batch-b', name: 'bb', data: 'plain' },
    ]),
  );
  assert.deepEqual(r.json, {}, r.text);
  assert.deepEqual(await gotA, { x: 1 });
  assert.equal(await gotB, 'plain');
});

it('batch_events with socket_id excludes that socket', async () => {
  const sock = await rawConnected(ref.server);
  await rawSubscribe(sock, 'batch-excl');
  const since = sock.mark();
  await backend().triggerBatch([
    { channel: 'batch-excl', name: 'skip', data: {}, socket_id: sock.socketId },
    { channel: 'batch-excl', name: 'marker', data: {} },
  ]);
  await sock.waitFrame('marker', 5000, { since });
  assert.equal(sock.frames.find((f) => f.event === 'skip', since), undefined);
});

it('batch_events with info per item → index-aligned batch array', async () => {
  const c = await connectedClient(ref.server);
  await subscribe(c, 'batch-info');
  await presenceMember('presence-batch-info', 'u');
  const r = await sdkJson(
    await backend().triggerBatch([
      { channel: 'batch-info', name: 'e', data: {}, info: 'subscription_count' },
      { channel: 'presence-batch-info', name: 'e', data: {}, info: 'user_count' },
      { channel: 'batch-info', name: 'e', data: {} },
    ]),
  );
  assert.ok(Array.isArray(r.json.batch), r.text);
  assert.equal(r.json.batch.length, 3, r.text);
  assert.equal(r.json.batch[0].subscription_count, 1, r.text);
  assert.equal(r.json.batch[1].user_count, 1, r.text);
  assert.deepEqual(r.json.batch[2], {}, r.text);
});

it('batch_events with more than 10 events → 400', async () => {
  const batch = Array.from({ length: 11 }, (_, i) => ({ channel: 'b', name: `e${i}`, data: '{}' }));
  const r = await sdkError(backend().triggerBatch(batch));
  assertJsonError(r, 400);
});

it('batch_events with 10 events → 200', async () => {
  const batch = Array.from({ length: 10 }, (_, i) => ({ channel: 'b', name: `e${i}`, data: '{}' }));
  const r = await sdkJson(await backend().triggerBatch(batch));
  assert.equal(r.status, 200);
});

it('batch_events with one item over 10 KB → 413', async () => {
  const r = await sdkError(
    backend().triggerBatch([
      { channel: 'b', name: 'ok', data: '{}' },
      { channel: 'b', name: 'big', data: 'x'.repeat(10241) },
    ]),
  );
  assertJsonError(r, 413);
});

it('unknown app id → 401, the answer of a wrong key (app ids cannot be enumerated)', async () => {
  const r = await sdkError(backend({ app: { id: 'no-such-app', key: 'app-key', secret: 'app-secret' } }).trigger('c', 'e', {}));
  assertJsonError(r, 401);
  const wrongKey = await sdkError(backend({ app: { id: ref.server.app.id, key: 'app-key-x', secret: 'app-secret' } }).trigger('c', 'e', {}));
  assert.equal(r.body, wrongKey.body);
});

it('wrong secret → 401', async () => {
  const r = await sdkError(backend({ secret: 'wrong-secret' }).trigger('c', 'e', {}));
  assertJsonError(r, 401);
  const g = await sdkError(backend({ secret: 'wrong-secret' }).get({ path: '/channels' }));
  assertJsonError(g, 401);
});

it('unknown auth_key → 401', async () => {
  const r = await signedRequest(ref.server, { path: appPath('/channels'), key: 'unknown-key' });
  assertJsonError(r, 401);
});

it('stale auth_timestamp (700 s old) → 401; 500 s old is accepted', async () => {
  const now = Math.floor(Date.now() / 1000);
  const old = await signedRequest(ref.server, { path: appPath('/channels'), timestamp: now - 700 });
  assertJsonError(old, 401);
  const future = await signedRequest(ref.server, { path: appPath('/channels'), timestamp: now + 700 });
  assertJsonError(future, 401);
  const ok = await signedRequest(ref.server, { path: appPath('/channels'), timestamp: now - 500 });
  assert.equal(ok.status, 200, ok.text);
});

it('body_md5 mismatch → 401; missing body_md5 with a body → 401', async () => {
  const body = { name: 'e', channels: ['c'], data: '{}' };
  const bad = await signedRequest(ref.server, {
    method: 'POST',
    path: appPath('/events'),
    body,
    bodyMd5: 'd41d8cd98f00b204e9800998ecf8427e',
  });
  assertJsonError(bad, 401);
  // sign and send without body_md5 by removing it after signing
  const missing = await signedRequest(ref.server, {
    method: 'POST',
    path: appPath('/events'),
    body,
    mutateQuery: (qs) => qs.replace(/&?body_md5=[0-9a-f]+/, ''),
  });
  assertJsonError(missing, 401);
});

it('a query parameter changed after signing → 401', async () => {
  const r = await signedRequest(ref.server, {
    path: appPath('/channels'),
    params: { filter_by_prefix: 'aaa' },
    mutateQuery: (qs) => qs.replace('filter_by_prefix=aaa', 'filter_by_prefix=bbb'),
  });
  assertJsonError(r, 401);
});

it('missing auth parameters → 401', async () => {
  const res = await fetch(`${ref.server.httpUrl}${appPath('/channels')}`);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  assertJsonError({ status: res.status, text, json }, 401);
});

it('data of exactly 10240 bytes → 200; 10241 bytes → 413', async () => {
  const ok = await sdkJson(await backend().trigger('size-ok', 'e', 'x'.repeat(10240)));
  assert.equal(ok.status, 200);
  const r = await sdkError(backend().trigger('size-big', 'e', 'x'.repeat(10241)));
  assertJsonError(r, 413);
});

it('more than 100 channels in one trigger → 400; exactly 100 → 200', async () => {
  const names = (n) => Array.from({ length: n }, (_, i) => `many-${i}`);
  const over = await signedRequest(ref.server, {
    method: 'POST',
    path: appPath('/events'),
    body: { name: 'e', channels: names(101), data: '{}' },
  });
  assertJsonError(over, 400);
  const exact = await signedRequest(ref.server, {
    method: 'POST',
    path: appPath('/events'),
    body: { name: 'e', channels: names(100), data: '{}' },
  });
  assert.equal(exact.status, 200, exact.text);
});

it('event name over 200 chars → 400; 200 chars → 200', async () => {
  const over = await signedRequest(ref.server, {
    method: 'POST',
    path: appPath('/events'),
    body: { name: 'e'.repeat(201), channels: ['c'], data: '{}' },
  });
  assertJsonError(over, 400);
  const ok = await signedRequest(ref.server, {
    method: 'POST',
    path: appPath('/events'),
    body: { name: 'e'.repeat(200), channels: ['c'], data: '{}' },
  });
  assert.equal(ok.status, 200, ok.text);
});

it('invalid channel names → 400', async () => {
  for (const bad of ['has space', 'slash/no', 'star*', 'x'.repeat(201), '']) {
    const r = await signedRequest(ref.server, {
      method: 'POST',
      path: appPath('/events'),
      body: { name: 'e', channels: [bad], data: '{}' },
    });
    assertJsonError(r, 400);
  }
});

it('channel name of 200 chars with every allowed character → 200', async () => {
  const name = ('Az09_-=@,.;').repeat(19).slice(0, 200);
  assert.equal(name.length, 200);
  const r = await signedRequest(ref.server, {
    method: 'POST',
    path: appPath('/events'),
    body: { name: 'e', channels: [name], data: '{}' },
  });
  assert.equal(r.status, 200, r.text);
});

it('trigger without a name, without channels, or with a malformed body → 400', async () => {
  const bodies = [
    { channels: ['c'], data: '{}' },
    { name: 'e', data: '{}' },
    { name: 'e', channels: [], data: '{}' },
    '{"name":"e",',
  ];
  for (const body of bodies) {
    const r = await signedRequest(ref.server, { method: 'POST', path: appPath('/events'), body });
    assertJsonError(r, 400);
  }
});

it('every success response body is JSON (trigger, batch, channels, channel, users, terminate)', async () => {
  const b = backend();
  const responses = [
    await b.trigger('json-1', 'e', {}),
    await b.triggerBatch([{ channel: 'json-1', name: 'e', data: {} }]),
    await b.get({ path: '/channels' }),
    await b.get({ path: '/channels/json-1' }),
    await b.get({ path: '/channels/presence-json/users' }),
    await b.terminateUserConnections('nobody'),
  ];
  for (const res of responses) {
    assert.equal(res.status, 200);
    await sdkJson(res);
  }
});

it('REST trigger reaches pusher-js and a raw socket with identical data', async () => {
  const c = await connectedClient(ref.server);
  const ch = await subscribe(c, 'both-views');
  const sock = await rawConnected(ref.server);
  await rawSubscribe(sock, 'both-views');
  const since = sock.mark();
  const got = waitFor(ch, 'both', 5000);
  await backend().trigger('both-views', 'both', { z: [1, { y: 'é' }] });
  assert.deepEqual(await got, { z: [1, { y: 'é' }] });
  const f = await sock.waitFrame('both', 5000, { since });
  assert.equal(f.json.data, JSON.stringify({ z: [1, { y: 'é' }] }));
});
