'use strict';
// Presence channels: members, dedup by user id, limits, REST users.

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
const { hmac, sdkJson } = require('../lib/rest');

const ref = useServer({
  name: 'presence',
  env: { SOCKUDO_DEFAULT_APP_MAX_PRESENCE_MEMBERS_PER_CHANNEL: '2' },
});

const user = (id, info) => ({ presence: { user_id: id, user_info: info } });

async function rawPresence(s, sock, channel, channelData) {
  const cd = JSON.stringify(channelData);
  return rawSubscribe(sock, channel, {
    auth: `${s.app.key}:${hmac(s.app.secret, `${sock.socketId}:${channel}:${cd}`)}`,
    channel_data: cd,
  });
}

async function marker(client, channel) {
  const since = client.log.mark();
  await newBackend(ref.server).trigger(channel, 'marker', {});
  await nextMessage(client, 'marker', { channel, since });
}

it('join: members.count, me and the members hash', async () => {
  const s = ref.server;
  const a = await connectedClient(s, user('1', { name: 'A' }));
  const ch = await subscribe(a, 'presence-join');
  assert.equal(ch.members.count, 1);
  assert.deepEqual(ch.members.me, { id: '1', info: { name: 'A' } });
  assert.deepEqual(ch.members.members, { 1: { name: 'A' } });
});

it('raw: presence subscription_succeeded data is a JSON string with ids, hash, count', async () => {
  const s = ref.server;
  const a = await connectedClient(s, user('1', { name: 'A' }));
  await subscribe(a, 'presence-raw');
  const sock = await rawConnected(s);
  const f = await rawPresence(s, sock, 'presence-raw', { user_id: '2', user_info: { name: 'B' } });
  assert.equal(typeof f.json.data, 'string', f.text);
  const { presence } = JSON.parse(f.json.data);
  assert.equal(presence.count, 2);
  assert.deepEqual([...presence.ids].sort(), ['1', '2']);
  assert.deepEqual(presence.hash, { 1: { name: 'A' }, 2: { name: 'B' } });
});

it('second user joins → member_added on the first; both see count 2', async () => {
  const s = ref.server;
  const a = await connectedClient(s, user('1', { name: 'A' }));
  const chA = await subscribe(a, 'presence-two');
  const added = waitFor(chA, 'pusher:member_added', 5000);
  const b = await connectedClient(s, user('2', { name: 'B' }));
  const chB = await subscribe(b, 'presence-two');
  assert.deepEqual(await added, { id: '2', info: { name: 'B' } });
  assert.equal(chA.members.count, 2);
  assert.equal(chB.members.count, 2);
  assert.deepEqual(chB.members.me, { id: '2', info: { name: 'B' } });
  // member_added is a JSON string on the wire (raw view via the log of pusher-js is decoded),
  // and is not sent to the joining socket itself.
  await marker(b, 'presence-two');
  assert.equal(b.log.find((m) => m.event === 'pusher_internal:member_added'), undefined);
});

it('raw: member_added / member_removed data are JSON strings', async () => {
  const s = ref.server;
  const watcher = await rawConnected(s);
  await rawPresence(s, watcher, 'presence-wire', { user_id: 'w', user_info: {} });
  const since = watcher.mark();
  const joiner = await rawConnected(s);
  await rawPresence(s, joiner, 'presence-wire', { user_id: 'j', user_info: { x: 1 } });
  const add = await watcher.waitFrame('pusher_internal:member_added', 5000, { since });
  assert.equal(typeof add.json.data, 'string', add.text);
  assert.deepEqual(JSON.parse(add.json.data), { user_id: 'j', user_info: { x: 1 } });
  joiner.close();
  const rem = await watcher.waitFrame('pusher_internal:member_removed', 5000, { since });
  assert.equal(typeof rem.json.data, 'string', rem.text);
  assert.equal(JSON.parse(rem.json.data).user_id, 'j');
});

it('same user on a second socket → no second member_added; leaving one socket → no member_removed', async () => {
  const s = ref.server;
  const b = await connectedClient(s, user('2', { name: 'B' }));
  await subscribe(b, 'presence-dedup');
  const a1 = await connectedClient(s, user('1', { name: 'A' }));
  await subscribe(a1, 'presence-dedup');
  await nextMessage(b, 'pusher_internal:member_added', { channel: 'presence-dedup' });
  const since = b.log.mark();

  // Same user id on a raw socket (so that its unsubscribe can be ordered with a ping).
  const a2 = await rawConnected(s);
  const f = await rawPresence(s, a2, 'presence-dedup', { user_id: '1', user_info: { name: 'A' } });
  assert.equal(JSON.parse(f.json.data).presence.count, 2, 'a user counted once across sockets');
  await marker(b, 'presence-dedup');
  assert.equal(
    b.log.find((m) => m.event === 'pusher_internal:member_added', since),
    undefined,
    'member_added sent for an already-present user',
  );

  // REST sees unique users.
  const users = await sdkJson(await newBackend(s).get({ path: '/channels/presence-dedup/users' }));
  assert.deepEqual(users.json.users.map((u) => u.id).sort(), ['1', '2']);

  // The second socket leaves: user 1 still present through a1.
  a2.send({ event: 'pusher:unsubscribe', data: { channel: 'presence-dedup' } });
  await a2.ping(); // the unsubscribe has been processed
  const since2 = b.log.mark();
  await marker(b, 'presence-dedup');
  assert.equal(
    b.log.find((m) => m.event === 'pusher_internal:member_removed', since2),
    undefined,
    'member_removed sent while the user still has a socket in the channel',
  );

  // The last socket leaves → member_removed.
  const removed = waitFor(b.channel('presence-dedup'), 'pusher:member_removed', 5000);
  a1.disconnect();
  assert.deepEqual(await removed, { id: '1', info: { name: 'A' } });
  assert.equal(b.channel('presence-dedup').members.count, 1);
});

it('a user on two sockets that both disconnect → exactly one member_removed', async () => {
  const s = ref.server;
  const b = await connectedClient(s, user('2', {}));
  await subscribe(b, 'presence-two-socks');
  const a1 = await connectedClient(s, user('1', {}));
  const a2 = await connectedClient(s, user('1', {}));
  await subscribe(a1, 'presence-two-socks');
  await subscribe(a2, 'presence-two-socks');
  const since = b.log.mark();
  a1.disconnect();
  a2.disconnect();
  await nextMessage(b, 'pusher_internal:member_removed', { since });
  await marker(b, 'presence-two-socks');
  assert.equal(b.log.filter((m) => m.event === 'pusher_internal:member_removed', since).length, 1);
});

it('unsubscribe of the last socket → member_removed', async () => {
  const s = ref.server;
  const b = await connectedClient(s, user('2', {}));
  const chB = await subscribe(b, 'presence-unsub');
  const a = await connectedClient(s, user('1', { name: 'A' }));
  await subscribe(a, 'presence-unsub');
  const removed = waitFor(chB, 'pusher:member_removed', 5000);
  a.unsubscribe('presence-unsub');
  assert.deepEqual(await removed, { id: '1', info: { name: 'A' } });
});

it('numeric user_id in channel_data works; identity is the string "10"', async () => {
  const s = ref.server;
  const watcher = await rawConnected(s);
  await rawPresence(s, watcher, 'presence-numeric', { user_id: 'w', user_info: null });
  const since = watcher.mark();
  // Signed over the exact string {"user_id":10,...} (a number, as old PHP SDKs send).
  const ten = await rawConnected(s);
  const f = await rawPresence(s, ten, 'presence-numeric', { user_id: 10, user_info: { name: 'Ten' } });
  const { presence } = JSON.parse(f.json.data);
  assert.equal(presence.count, 2, f.text);
  assert.deepEqual([...presence.ids].sort(), ['10', 'w'], `ids must be strings: ${f.text}`);
  assert.deepEqual(Object.keys(presence.hash).sort(), ['10', 'w']);
  assert.deepEqual(presence.hash.w, null, 'a member without user_info keeps its key with null');
  const add = await watcher.waitFrame('pusher_internal:member_added', 5000, { since });
  assert.equal(String(JSON.parse(add.json.data).user_id), '10', add.text);
  const users = await sdkJson(await newBackend(s).get({ path: '/channels/presence-numeric/users' }));
  assert.deepEqual(users.json.users.map((u) => u.id).sort(), ['10', 'w'], users.text);
  // pusher-js with a numeric id: members.me resolves.
  const c = await connectedClient(s, user(11, { name: 'Eleven' }));
  const ch = await subscribe(c, 'presence-numeric-js');
  assert.equal(ch.members.count, 1);
  assert.deepEqual(ch.members.me, { id: 11, info: { name: 'Eleven' } });
});

it('presence limit (2 members): a third user gets subscription_error status 4100; the same user again is fine', async () => {
  const s = ref.server;
  const a = await connectedClient(s, user('1', {}));
  const b = await connectedClient(s, user('2', {}));
  await subscribe(a, 'presence-full');
  await subscribe(b, 'presence-full');
  const c = await connectedClient(s, user('3', {}));
  const err = await subscribeExpectError(c, 'presence-full');
  assert.equal(err.status, 4100, JSON.stringify(err));
  assert.equal(c.connection.state, 'connected');
  // user 1 on another socket is not a new member
  const a2 = await connectedClient(s, user('1', {}));
  const ch = await subscribe(a2, 'presence-full');
  assert.equal(ch.members.count, 2);
});

it('user_info over MAX_PRESENCE_MEMBER_SIZE_IN_KB (1) → subscription_error status 413', async () => {
  const s = ref.server;
  const big = await connectedClient(s, user('big', { bio: 'x'.repeat(1100) }));
  const err = await subscribeExpectError(big, 'presence-big');
  assert.equal(err.status, 413, JSON.stringify(err));
  assert.equal(big.connection.state, 'connected');
});

it('user_info just under the size limit is accepted', async () => {
  const s = ref.server;
  const ok = await connectedClient(s, user('medium', { bio: 'x'.repeat(900) }));
  const ch = await subscribe(ok, 'presence-medium');
  assert.equal(ch.members.me.info.bio.length, 900);
});

it('presence with a bad signature → subscription_error status 401', async () => {
  const s = ref.server;
  const c = await connectedClient(s, { ...user('1', {}), authSecret: 'bad' });
  const err = await subscribeExpectError(c, 'presence-badauth');
  assert.equal(err.status, 401, JSON.stringify(err));
  assert.equal(err.type, 'AuthError');
});

it('raw: channel_data is verified as the exact string (re-serialised data fails)', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  const signed = '{"user_id":"7", "user_info":{"a":1}}'; // note the space
  const sent = '{"user_id":"7","user_info":{"a":1}}';
  const since = sock.mark();
  sock.send({
    event: 'pusher:subscribe',
    data: {
      channel: 'presence-exact',
      auth: `${s.app.key}:${hmac(s.app.secret, `${sock.socketId}:presence-exact:${signed}`)}`,
      channel_data: sent,
    },
  });
  const f = await sock.waitFrame('pusher:subscription_error', 5000, { since });
  assert.equal(f.json.data.status, 401, f.text);
  // ...and the exact signed string (with the space) is accepted
  const ok = await rawConnected(s);
  const since2 = ok.mark();
  ok.send({
    event: 'pusher:subscribe',
    data: {
      channel: 'presence-exact',
      auth: `${s.app.key}:${hmac(s.app.secret, `${ok.socketId}:presence-exact:${signed}`)}`,
      channel_data: signed,
    },
  });
  await ok.waitFrame('pusher_internal:subscription_succeeded', 5000, { since: since2 });
});

it('REST: /channels/presence-x/users lists unique users; ?info=user_count counts them', async () => {
  const s = ref.server;
  const a = await connectedClient(s, user('u1', {}));
  const a2 = await connectedClient(s, user('u1', {}));
  const b = await connectedClient(s, user('u2', {}));
  for (const c of [a, a2, b]) await subscribe(c, 'presence-rest');
  const backend = newBackend(s);
  const users = await sdkJson(await backend.get({ path: '/channels/presence-rest/users' }));
  assert.deepEqual(
    users.json.users.map((u) => u.id).sort(),
    ['u1', 'u2'],
    users.text,
  );
  for (const u of users.json.users) assert.deepEqual(Object.keys(u), ['id']);
  const info = await sdkJson(await backend.get({ path: '/channels/presence-rest', params: { info: 'user_count' } }));
  assert.equal(info.json.occupied, true, info.text);
  assert.equal(info.json.user_count, 2, info.text);
});

it('a presence socket that drops without a close handshake → member_removed', async () => {
  const s = ref.server;
  const watcher = await connectedClient(s, user('watch', {}));
  const ch = await subscribe(watcher, 'presence-drop');
  const sock = await rawConnected(s);
  await rawPresence(s, sock, 'presence-drop', { user_id: 'dropper', user_info: { d: 1 } });
  await nextMessage(watcher, 'pusher_internal:member_added', { channel: 'presence-drop' });
  const removed = waitFor(ch, 'pusher:member_removed', 5000);
  sock.terminate(); // TCP reset, no close frame
  assert.deepEqual(await removed, { id: 'dropper', info: { d: 1 } });
  const users = await sdkJson(await newBackend(s).get({ path: '/channels/presence-drop/users' }));
  assert.deepEqual(users.json.users, [{ id: 'watch' }]);
});

it('a member whose channel_data has no user_info keeps its key in hash (null)', async () => {
  const s = ref.server;
  const a = await rawConnected(s);
  await rawPresence(s, a, 'presence-noinfo', { user_id: 'bare' });
  const b = await rawConnected(s);
  const f = await rawPresence(s, b, 'presence-noinfo', { user_id: 'other', user_info: {} });
  const { presence } = JSON.parse(f.json.data);
  assert.ok(Object.prototype.hasOwnProperty.call(presence.hash, 'bare'), `hash dropped the member: ${f.text}`);
  assert.equal(presence.hash.bare, null, f.text);
  assert.equal(presence.count, 2);
});
