'use strict';
// Cache channels: cache_miss, replay of the last event, REST info=cache.

const assert = require('node:assert/strict');
const { useServer, it } = require('../lib/harness');
const { rawConnected, rawSubscribe } = require('../lib/raw');
const { connectedClient, subscribe, newBackend, waitFor } = require('../lib/clients');
const { hmac, sdkJson } = require('../lib/rest');

const ref = useServer({ name: 'cache' });
const ce = useServer({ name: 'cache-client-events', env: { SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true' } });

it('cache- channel with nothing cached → pusher:cache_miss right after subscription_succeeded', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  const ok = await rawSubscribe(sock, 'cache-empty');
  const idx = sock.frames.items.indexOf(ok);
  const miss = await sock.waitFrame('pusher:cache_miss', 5000, { channel: 'cache-empty' });
  assert.equal(sock.frames.items.indexOf(miss), idx + 1, 'cache_miss must directly follow subscription_succeeded');
});

it('pusher-js: cache_miss is emitted on the channel', async () => {
  const s = ref.server;
  const c = await connectedClient(s);
  const ch = c.subscribe('cache-js-miss');
  await waitFor(ch, 'pusher:cache_miss', 5000);
});

it('after a REST trigger, a new subscriber gets the last event right after subscription_succeeded', async () => {
  const s = ref.server;
  const backend = newBackend(s);
  await backend.trigger('cache-replay', 'first', { n: 1 });
  await backend.trigger('cache-replay', 'last', { n: 2 });
  const sock = await rawConnected(s);
  const ok = await rawSubscribe(sock, 'cache-replay');
  const idx = sock.frames.items.indexOf(ok);
  const next = await sock.waitFrame((f, i) => sock.frames.items.indexOf(f) === idx + 1, 5000);
  assert.equal(next.event, 'last', `frame after subscription_succeeded: ${next.text}`);
  assert.equal(next.json.channel, 'cache-replay');
  assert.equal(next.json.data, '{"n":2}', 'cached data relayed exactly');
  // the marker proves no cache_miss and no stale 'first' follow
  const since = sock.mark();
  await backend.trigger('cache-replay', 'marker', {});
  await sock.waitFrame('marker', 5000, { since });
  assert.equal(sock.frames.find((f) => f.event === 'pusher:cache_miss'), undefined);
  assert.equal(sock.frames.find((f) => f.event === 'first'), undefined);
});

it('pusher-js: replayed event reaches a handler bound before subscribing', async () => {
  const s = ref.server;
  await newBackend(s).trigger('cache-js', 'state', { on: true });
  const c = await connectedClient(s);
  const ch = c.subscribe('cache-js');
  const got = await waitFor(ch, 'state', 5000);
  assert.deepEqual(got, { on: true });
});

it('private-cache- channel replays the last event', async () => {
  const s = ref.server;
  await newBackend(s).trigger('private-cache-room', 'pc', { secret: 1 });
  const c = await connectedClient(s);
  const ch = c.subscribe('private-cache-room');
  assert.deepEqual(await waitFor(ch, 'pc', 5000), { secret: 1 });
});

it('private-cache- channel with nothing cached → cache_miss', async () => {
  const s = ref.server;
  const c = await connectedClient(s);
  const ch = c.subscribe('private-cache-nothing');
  await waitFor(ch, 'pusher:cache_miss', 5000);
});

it('presence-cache- channel replays the last event', async () => {
  const s = ref.server;
  await newBackend(s).trigger('presence-cache-room', 'pres', { p: 1 });
  const c = await connectedClient(s, { presence: { user_id: 'c1', user_info: {} } });
  const ch = c.subscribe('presence-cache-room');
  assert.deepEqual(await waitFor(ch, 'pres', 5000), { p: 1 });
  assert.equal(ch.members.count, 1);
});

it('private-encrypted-cache- channel replays the last (encrypted) event', async () => {
  const s = ref.server;
  await newBackend(s).trigger('private-encrypted-cache-room', 'enc', { hidden: 'yes' });
  const c = await connectedClient(s);
  const ch = c.subscribe('private-encrypted-cache-room');
  assert.deepEqual(await waitFor(ch, 'enc', 5000), { hidden: 'yes' });
});

it('names that merely contain "cache-" are not cache channels', async () => {
  const s = ref.server;
  await newBackend(s).trigger('not-cache-x', 'old', {});
  const sock = await rawConnected(s);
  await rawSubscribe(sock, 'not-cache-x');
  const since = sock.mark();
  await newBackend(s).trigger('not-cache-x', 'marker', {});
  await sock.waitFrame('marker', 5000, { since });
  assert.equal(sock.frames.find((f) => f.event === 'old' || f.event === 'pusher:cache_miss'), undefined);
});

it('client events are not cached', async () => {
  const s = ce.server;
  await newBackend(s).trigger('private-cache-ce', 'from-rest', { r: 1 });
  const auth = (sock) => ({ auth: `${s.app.key}:${hmac(s.app.secret, `${sock.socketId}:private-cache-ce`)}` });
  const a = await rawConnected(s);
  const b = await rawConnected(s);
  await rawSubscribe(a, 'private-cache-ce', auth(a));
  await rawSubscribe(b, 'private-cache-ce', auth(b));
  const since = b.mark();
  a.send({ event: 'client-x', channel: 'private-cache-ce', data: { c: 1 } });
  await b.waitFrame('client-x', 5000, { since }); // accepted and relayed
  const late = await rawConnected(s);
  const ok = await rawSubscribe(late, 'private-cache-ce', auth(late));
  const idx = late.frames.items.indexOf(ok);
  const next = await late.waitFrame((f) => late.frames.items.indexOf(f) === idx + 1, 5000);
  assert.equal(next.event, 'from-rest', `replayed: ${next.text}`);
});

it('GET /channels/cache-x?info=cache → cache {event, data, ttl}', async () => {
  const s = ref.server;
  const backend = newBackend(s);
  const c = await connectedClient(s);
  await subscribe(c, 'cache-info');
  await backend.trigger('cache-info', 'snapshot', { v: 3 });
  const r = await sdkJson(await backend.get({ path: '/channels/cache-info', params: { info: 'cache' } }));
  assert.equal(r.json.occupied, true, r.text);
  assert.ok(r.json.cache, `cache missing: ${r.text}`);
  assert.equal(r.json.cache.event, 'snapshot', r.text);
  assert.equal(r.json.cache.data, '{"v":3}', r.text);
  assert.equal(typeof r.json.cache.ttl, 'number', r.text);
  assert.ok(r.json.cache.ttl > 0 && r.json.cache.ttl <= 1800, r.text);
});
