'use strict';
// private- and private-encrypted- channels.

const assert = require('node:assert/strict');
const { useServer, it } = require('../lib/harness');
const { rawConnected, rawSubscribe } = require('../lib/raw');
const {
  connectedClient,
  subscribe,
  subscribeExpectError,
  newBackend,
  nextMessage,
  waitFor,
} = require('../lib/clients');
const { signedRequest, hmac } = require('../lib/rest');
const { assertErrorFrame } = require('../lib/assertions');

// Client events enabled, so that the refusal on encrypted channels is about
// the channel type and not the app setting.
const ref = useServer({ name: 'private', env: { SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true' } });

const sign = (s, str) => `${s.app.key}:${hmac(s.app.secret, str)}`;

function assertAuthError(err) {
  assert.equal(err.type, 'AuthError', JSON.stringify(err));
  assert.equal(typeof err.error, 'string', JSON.stringify(err));
  assert.equal(err.status, 401, JSON.stringify(err));
}

it('private channel: authorized subscribe succeeds and receives events', async () => {
  const s = ref.server;
  const client = await connectedClient(s);
  const ch = await subscribe(client, 'private-ok');
  const got = waitFor(ch, 'secret-event', 5000);
  await newBackend(s).trigger('private-ok', 'secret-event', { a: 1 });
  assert.deepEqual(await got, { a: 1 });
});

it('raw: private subscription_succeeded data is the string "{}"', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  const f = await rawSubscribe(sock, 'private-raw', { auth: sign(s, `${sock.socketId}:private-raw`) });
  assert.equal(f.json.data, '{}', f.text);
});

it('private channel with a bad signature → pusher:subscription_error {type, error, status:401}; connection stays open', async () => {
  const s = ref.server;
  const client = await connectedClient(s, { authSecret: 'wrong-secret' });
  const err = await subscribeExpectError(client, 'private-bad');
  assertAuthError(err);
  assert.equal(client.connection.state, 'connected');
  // A public subscription still works on the same connection.
  const pub = await subscribe(client, 'after-bad-auth');
  const got = waitFor(pub, 'ok', 5000);
  await newBackend(s).trigger('after-bad-auth', 'ok', { fine: true });
  assert.deepEqual(await got, { fine: true });
});

it('raw: the subscription_error frame is on the channel with an object data', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  const since = sock.mark();
  sock.send({ event: 'pusher:subscribe', data: { auth: `${s.app.key}:${'0'.repeat(64)}`, channel: 'private-x' } });
  const f = await sock.waitFrame('pusher:subscription_error', 5000, { since });
  assert.equal(f.json.channel, 'private-x', f.text);
  assert.equal(typeof f.json.data, 'object', `data must be an object: ${f.text}`);
  assertAuthError(f.json.data);
  assert.equal(sock.closeInfo, null);
  assert.equal((await sock.ping()).event, 'pusher:pong');
});

it('raw: auth with another key prefix is refused (401)', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  const since = sock.mark();
  const sig = hmac(s.app.secret, `${sock.socketId}:private-key`);
  sock.send({ event: 'pusher:subscribe', data: { auth: `other-key:${sig}`, channel: 'private-key' } });
  const f = await sock.waitFrame('pusher:subscription_error', 5000, { since });
  assertAuthError(f.json.data);
});

it('raw: a token signed for another socket id is refused (no replay)', async () => {
  const s = ref.server;
  const a = await rawConnected(s);
  const b = await rawConnected(s);
  const since = b.mark();
  b.send({ event: 'pusher:subscribe', data: { auth: sign(s, `${a.socketId}:private-replay`), channel: 'private-replay' } });
  const f = await b.waitFrame('pusher:subscription_error', 5000, { since });
  assertAuthError(f.json.data);
});

it('raw: a token for another channel name is refused', async () => {
  const s = ref.server;
  const a = await rawConnected(s);
  const since = a.mark();
  a.send({ event: 'pusher:subscribe', data: { auth: sign(s, `${a.socketId}:private-one`), channel: 'private-two' } });
  const f = await a.waitFrame('pusher:subscription_error', 5000, { since });
  assertAuthError(f.json.data);
});

it('raw: channel_data null on a private channel is accepted', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  await rawSubscribe(sock, 'private-null-cd', {
    auth: sign(s, `${sock.socketId}:private-null-cd`),
    channel_data: null,
  });
});

it('encrypted channel: backend.trigger → pusher-js receives the decrypted data', async () => {
  const s = ref.server;
  const client = await connectedClient(s);
  const ch = await subscribe(client, 'private-encrypted-room');
  const got = waitFor(ch, 'enc-event', 5000);
  const res = await newBackend(s).trigger('private-encrypted-room', 'enc-event', { msg: 'top secret', n: 42 });
  assert.equal(res.status, 200);
  assert.deepEqual(await got, { msg: 'top secret', n: 42 });
});

it('encrypted channel: the server relays ciphertext unchanged (raw view)', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  await rawSubscribe(sock, 'private-encrypted-raw', { auth: sign(s, `${sock.socketId}:private-encrypted-raw`) });
  const since = sock.mark();
  await newBackend(s).trigger('private-encrypted-raw', 'enc', { msg: 'plaintext-marker' });
  const f = await sock.waitFrame('enc', 5000, { since });
  assert.equal(typeof f.json.data, 'string');
  const payload = JSON.parse(f.json.data);
  assert.equal(typeof payload.nonce, 'string');
  assert.equal(typeof payload.ciphertext, 'string');
  assert.ok(!f.text.includes('plaintext-marker'));
});

it('encrypted channel: a bad signature is refused (401)', async () => {
  const s = ref.server;
  const client = await connectedClient(s, { authSecret: 'nope' });
  const err = await subscribeExpectError(client, 'private-encrypted-bad');
  assertAuthError(err);
});

it('encrypted channel: client events are refused with pusher:error and not relayed', async () => {
  const s = ref.server;
  const a = await rawConnected(s);
  const b = await rawConnected(s);
  const ch = 'private-encrypted-ce';
  await rawSubscribe(a, ch, { auth: sign(s, `${a.socketId}:${ch}`) });
  await rawSubscribe(b, ch, { auth: sign(s, `${b.socketId}:${ch}`) });
  const sinceA = a.mark();
  const sinceB = b.mark();
  a.send({ event: 'client-leak', channel: ch, data: { x: 1 } });
  const err = await a.waitFrame('pusher:error', 5000, { since: sinceA });
  assertErrorFrame(err);
  await newBackend(s).trigger(ch, 'marker', {});
  await b.waitFrame('marker', 5000, { since: sinceB });
  assert.equal(b.frames.find((f) => f.event === 'client-leak', sinceB), undefined, 'client event relayed on encrypted channel');
  assert.equal(a.closeInfo, null, 'socket must stay open');
});

it('REST: an encrypted channel together with another channel → 400', async () => {
  const s = ref.server;
  const r = await signedRequest(s, {
    method: 'POST',
    path: `/apps/${s.app.id}/events`,
    body: { name: 'e', channels: ['private-encrypted-a', 'public-b'], data: '{"nonce":"x","ciphertext":"y"}' },
  });
  assert.equal(r.status, 400, r.text);
  assert.ok(r.json, `error body must be JSON: ${r.text}`);
});

it('REST: two encrypted channels in one trigger → 400', async () => {
  const s = ref.server;
  const r = await signedRequest(s, {
    method: 'POST',
    path: `/apps/${s.app.id}/events`,
    body: { name: 'e', channels: ['private-encrypted-a', 'private-encrypted-b'], data: '{}' },
  });
  assert.equal(r.status, 400, r.text);
});

it('events on one channel arrive in publish order', async () => {
  const s = ref.server;
  const good = await connectedClient(s);
  await subscribe(good, 'private-order');
  const since = good.log.mark();
  await newBackend(s).trigger('private-order', 'one', 1);
  await newBackend(s).trigger('private-order', 'two', 2);
  const one = await nextMessage(good, 'one', { since });
  const two = await nextMessage(good, 'two', { since });
  assert.ok(good.log.items.indexOf(one) < good.log.items.indexOf(two), 'events arrive in publish order');
});
