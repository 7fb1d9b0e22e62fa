'use strict';
// Public channels: subscribe, REST delivery, socket_id exclusion, channels /
// channel fields, unsubscribe.

const assert = require('node:assert/strict');
const { useServer, it } = require('../lib/harness');
const { rawConnected, rawSubscribe } = require('../lib/raw');
const { connectedClient, subscribe, newBackend, waitFor } = require('../lib/clients');
const { signedRequest, sdkJson } = require('../lib/rest');

const ref = useServer({ name: 'public' });

it('raw subscribe: subscription_succeeded with data exactly the string "{}"', async () => {
  const sock = await rawConnected(ref.server);
  const since = sock.mark();
  sock.send({ event: 'pusher:subscribe', data: { auth: '', channel: 'pub-raw' } });
  const f = await sock.waitFrame('pusher_internal:subscription_succeeded', 5000, { since });
  assert.equal(f.json.channel, 'pub-raw');
  assert.equal(f.json.data, '{}', `data must be the string "{}": ${f.text}`);
});

it('pusher-js subscribe + backend.trigger: the event arrives with the data sent', async () => {
  const s = ref.server;
  const client = await connectedClient(s);
  const ch = await subscribe(client, 'pub-1');
  const got = waitFor(ch, 'my-event', 5000);
  const res = await backend().trigger('pub-1', 'my-event', { hello: 'world', n: [1, 2] });
  const body = await sdkJson(res);
  assert.equal(body.status, 200);
  assert.deepEqual(body.json, {}, `trigger response: ${body.text}`);
  assert.deepEqual(await got, { hello: 'world', n: [1, 2] });
});

it('raw: REST data is relayed byte-for-byte as the string sent', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  await rawSubscribe(sock, 'pub-exact');
  const payloads = ['{"b":1,  "a":"x\\u00e9"}', 'not json at all "quoted" \\ ', '{"nested":"{\\"x\\":1}"}', 'héllo ✓'];
  for (const p of payloads) {
    const since = sock.mark();
    await backend().trigger('pub-exact', 'exact', p);
    const f = await sock.waitFrame('exact', 5000, { since, channel: 'pub-exact' });
    assert.equal(f.json.data, p, `frame: ${f.text}`);
    assert.equal(f.json.channel, 'pub-exact');
  }
});

it('event names are not charset-restricted (Laravel style App\\Events\\X)', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  await rawSubscribe(sock, 'pub-laravel');
  const since = sock.mark();
  await backend().trigger('pub-laravel', 'App\\Events\\OrderShipped', { id: 1 });
  const f = await sock.waitFrame('App\\Events\\OrderShipped', 5000, { since });
  assert.equal(f.json.data, '{"id":1}');
});

it('trigger with socket_id excludes that socket only', async () => {
  const s = ref.server;
  const a = await rawConnected(s);
  const b = await rawConnected(s);
  await rawSubscribe(a, 'pub-excl');
  await rawSubscribe(b, 'pub-excl');
  const sinceA = a.mark();
  const sinceB = b.mark();
  await backend().trigger('pub-excl', 'not-for-a', { x: 1 }, { socket_id: a.socketId });
  await b.waitFrame('not-for-a', 5000, { since: sinceB });
  await backend().trigger('pub-excl', 'marker', {});
  await a.waitFrame('marker', 5000, { since: sinceA });
  assert.equal(a.frames.find((f) => f.event === 'not-for-a', sinceA), undefined, 'excluded socket got the event');
});

it('trigger to several channels (channels array) reaches each subscribed channel', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  await rawSubscribe(sock, 'multi-a');
  await rawSubscribe(sock, 'multi-c');
  const since = sock.mark();
  await backend().trigger(['multi-a', 'multi-b', 'multi-c'], 'multi', 'payload');
  const fa = await sock.waitFrame('multi', 5000, { since, channel: 'multi-a' });
  const fc = await sock.waitFrame('multi', 5000, { since, channel: 'multi-c' });
  assert.equal(fa.json.data, 'payload');
  assert.equal(fc.json.data, 'payload');
  await backend().trigger('multi-a', 'marker', '');
  await sock.waitFrame('marker', 5000, { since });
  assert.equal(sock.frames.filter((f) => f.event === 'multi', since).length, 2, 'each channel delivered once');
});

it('trigger with a single `channel` field (php style, escaped query) is delivered', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  await rawSubscribe(sock, 'php-single');
  const since = sock.mark();
  const r = await signedRequest(s, {
    method: 'POST',
    path: `/apps/${s.app.id}/events`,
    body: { name: 'php-event', data: '{"from":"php"}', channel: 'php-single' },
    escape: true,
  });
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json !== undefined, `body must be JSON: ${r.text}`);
  const f = await sock.waitFrame('php-event', 5000, { since });
  assert.equal(f.json.data, '{"from":"php"}');
});

it('trigger with socket_id in a php-style request is honoured', async () => {
  const s = ref.server;
  const a = await rawConnected(s);
  await rawSubscribe(a, 'php-excl');
  const since = a.mark();
  const r = await signedRequest(s, {
    method: 'POST',
    path: `/apps/${s.app.id}/events`,
    body: { name: 'skip-me', data: '{}', channel: 'php-excl', socket_id: a.socketId },
    escape: true,
  });
  assert.equal(r.status, 200, r.text);
  await backend().trigger('php-excl', 'marker', {});
  await a.waitFrame('marker', 5000, { since });
  assert.equal(a.frames.find((f) => f.event === 'skip-me', since), undefined);
});

it('after unsubscribe no more events arrive; the connection stays usable', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  await rawSubscribe(sock, 'unsub-me');
  await rawSubscribe(sock, 'keep-me');
  sock.send({ event: 'pusher:unsubscribe', data: { channel: 'unsub-me' } });
  // The server sends no reply to unsubscribe; a ping/pong round trip orders it.
  await sock.ping();
  const since = sock.mark();
  await backend().trigger('unsub-me', 'gone', {});
  await backend().trigger('keep-me', 'marker', {});
  await sock.waitFrame('marker', 5000, { since });
  assert.equal(sock.frames.find((f) => f.event === 'gone', since), undefined);
  assert.equal(sock.frames.find((f) => f.event === 'pusher:error', since), undefined);
});

it('pusher-js subscribes and receives on many channels at once', async () => {
  const s = ref.server;
  const client = await connectedClient(s);
  const names = Array.from({ length: 20 }, (_, i) => `many-${i}`);
  const chans = await Promise.all(names.map((n) => subscribe(client, n)));
  const gots = chans.map((ch) => waitFor(ch, 'tick', 5000, `tick on ${ch.name}`));
  await backend().trigger(names, 'tick', { t: 1 });
  for (const d of await Promise.all(gots)) assert.deepEqual(d, { t: 1 });
});

function backend() {
  return newBackend(ref.server);
}

it('a channel whose last subscriber leaves disappears from GET /channels', async () => {
  const s = ref.server;
  const a = await rawConnected(s);
  const b = await connectedClient(s);
  await rawSubscribe(a, 'vacate-me');
  await subscribe(b, 'vacate-me');
  const list = async () => Object.keys((await (await backend().get({ path: '/channels' })).json()).channels);
  assert.ok((await list()).includes('vacate-me'));
  a.terminate(); // abrupt
  b.unsubscribe('vacate-me');
  await waitFor(async () => !(await list()).includes('vacate-me'), 5000, 'vacate-me to leave GET /channels');
  const one = await (await backend().get({ path: '/channels/vacate-me', params: { info: 'subscription_count' } })).json();
  assert.equal(one.occupied, false, JSON.stringify(one));
});
