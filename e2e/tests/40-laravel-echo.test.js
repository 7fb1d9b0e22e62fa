'use strict';
// Laravel Echo 2.x (on pusher-js) against sockudo, the way a Laravel front
// end uses it: namespaced event names, private/presence/encrypted channels,
// whispers, .error(), and toOthers through socket_id.

const assert = require('node:assert/strict');
const { before } = require('node:test');
const { useServer, it } = require('../lib/harness');
const { newClient, waitState, newBackend } = require('../lib/clients');
const { withTimeout } = require('../lib/wait');

// laravel-echo 2.5's CommonJS build does not load under Node ("type":
// "module" with a .js CJS file), so load its ES module build.
let Echo;
before(async () => {
  Echo = (await import('laravel-echo')).default;
});
const ref = useServer({ name: 'echo', env: { SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true' } });

async function echoFor(opts = {}) {
  const client = newClient(ref.server, opts);
  await waitState(client, 'connected');
  return new Echo({ broadcaster: 'pusher', client });
}

// once resolves with the first call of a callback-taking registration.
function once(register, what, ms = 5000) {
  return withTimeout(new Promise((resolve) => register(resolve)), ms, what);
}

it('public channel: a namespaced Laravel event (App\\Events\\OrderShipped) and a dotted custom name', async () => {
  const echo = await echoFor();
  const ch = echo.channel('orders');
  const shipped = once((cb) => ch.listen('OrderShipped', cb), 'OrderShipped');
  const custom = once((cb) => ch.listen('.order.custom', cb), '.order.custom');
  await once((cb) => ch.subscribed(cb), 'subscribed');
  const backend = newBackend(ref.server);
  await backend.trigger('orders', 'App\\Events\\OrderShipped', { id: 7 });
  await backend.trigger('orders', 'order.custom', { ok: true });
  assert.deepEqual(await shipped, { id: 7 });
  assert.deepEqual(await custom, { ok: true });
});

it('private channel with whisper / listenForWhisper, not echoed to the sender', async () => {
  const alice = await echoFor();
  const bob = await echoFor();
  const a = alice.private('chat.1');
  const b = bob.private('chat.1');
  await Promise.all([once((cb) => a.subscribed(cb), 'alice subscribed'), once((cb) => b.subscribed(cb), 'bob subscribed')]);
  let echoed = false;
  a.listenForWhisper('typing', () => (echoed = true));
  const got = once((cb) => b.listenForWhisper('typing', cb), 'whisper');
  a.whisper('typing', { name: 'alice' });
  assert.deepEqual(await got, { name: 'alice' });
  // A marker from bob reaches alice, and alice never saw her own whisper.
  const marker = once((cb) => a.listenForWhisper('marker', cb), 'marker');
  b.whisper('marker', {});
  await marker;
  assert.equal(echoed, false);
});

it('presence: here(), joining(), leaving()', async () => {
  const first = await echoFor({ presence: { user_id: '1', user_info: { name: 'Ann' } } });
  const room = first.join('room.9');
  const here = await once((cb) => room.here(cb), 'here');
  assert.deepEqual(here, [{ name: 'Ann' }]);
  const joining = once((cb) => room.joining(cb), 'joining');
  const second = await echoFor({ presence: { user_id: '2', user_info: { name: 'Bob' } } });
  const room2 = second.join('room.9');
  const here2 = await once((cb) => room2.here(cb), 'here 2');
  assert.equal(here2.length, 2);
  assert.deepEqual(await joining, { name: 'Bob' });
  const leaving = once((cb) => room.leaving(cb), 'leaving');
  second.leave('room.9');
  assert.deepEqual(await leaving, { name: 'Bob' });
});

it('.error() fires on a refused private subscription', async () => {
  const echo = await echoFor({ authSecret: 'not-the-secret' });
  const err = await once((cb) => echo.private('secret.1').error(cb), 'error');
  assert.equal(err.type, 'AuthError');
  assert.equal(err.status, 401);
});

it('toOthers: the socket id Echo reports excludes the sender', async () => {
  const sender = await echoFor();
  const other = await echoFor();
  const s = sender.channel('feed');
  const o = other.channel('feed');
  await Promise.all([once((cb) => s.subscribed(cb), 'sender subscribed'), once((cb) => o.subscribed(cb), 'other subscribed')]);
  let senderGot = false;
  s.listen('.post', () => (senderGot = true));
  const got = once((cb) => o.listen('.post', cb), 'post');
  const backend = newBackend(ref.server);
  await backend.trigger('feed', 'post', { n: 1 }, { socket_id: sender.socketId() });
  assert.deepEqual(await got, { n: 1 });
  const marker = once((cb) => s.listen('.marker', cb), 'marker');
  await backend.trigger('feed', 'marker', {});
  await marker;
  assert.equal(senderGot, false);
});

it('encryptedPrivate: the SDK encrypts, Echo decrypts', async () => {
  const echo = await echoFor();
  const ch = echo.encryptedPrivate('vault.1');
  const got = once((cb) => ch.listen('.sealed', cb), 'sealed');
  await once((cb) => ch.subscribed(cb), 'subscribed');
  await newBackend(ref.server).trigger('private-encrypted-vault.1', 'sealed', { secret: 42 });
  assert.deepEqual(await got, { secret: 42 });
});
