'use strict';
// User authentication: signin, server-to-user events, terminate, watchlist.

const assert = require('node:assert/strict');
const { useServer, it } = require('../lib/harness');
const { rawConnected } = require('../lib/raw');
const {
  connectedClient,
  subscribe,
  newBackend,
  nextMessage,
  waitState,
  waitFor,
  signin,
} = require('../lib/clients');
const { hmac } = require('../lib/rest');
const { assertErrorFrame } = require('../lib/assertions');

const ref = useServer({
  name: 'signin',
  env: {
    SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true',
    SOCKUDO_DEFAULT_APP_ENABLE_USER_AUTHENTICATION: 'true',
    SOCKUDO_DEFAULT_APP_ENABLE_WATCHLIST_EVENTS: 'true',
  },
});

/** pusher-js client signed in as userData.id, with its #server-to-user- channel subscribed. */
async function signedIn(userData, extra = {}) {
  const c = await connectedClient(ref.server, { userData, ...extra });
  const since = c.log.mark();
  const ok = await signin(c);
  assert.equal(ok.data.user_data, JSON.stringify(userData));
  await nextMessage(c, 'pusher_internal:subscription_succeeded', {
    channel: `#server-to-user-${userData.id}`,
    since,
  });
  return c;
}

/** Raw socket signed in as userData. Resolves with the socket after signin_success. */
async function rawSignedIn(userData, { secret } = {}) {
  const s = ref.server;
  const sock = await rawConnected(s);
  const ud = JSON.stringify(userData);
  const since = sock.mark();
  sock.send({
    event: 'pusher:signin',
    data: { auth: `${s.app.key}:${hmac(secret || s.app.secret, `${sock.socketId}::user::${ud}`)}`, user_data: ud },
  });
  sock.signinReply = await sock.waitFrame(
    (f) => f.event === 'pusher:signin_success' || f.event === 'pusher:error',
    5000,
    { since },
  );
  return sock;
}

it('signin → pusher:signin_success with data {user_data: <the signed string>} (raw)', async () => {
  const ud = { id: 'raw-user', user_info: { name: 'Raw' } };
  const sock = await rawSignedIn(ud);
  const f = sock.signinReply;
  assert.equal(f.event, 'pusher:signin_success', f.text);
  const data = f.json.data;
  assert.ok(data && typeof data === 'object', `signin_success data must be an object (spec §2.1): ${f.text}`);
  assert.equal(data.user_data, JSON.stringify(ud), f.text);
  assert.equal((await sock.ping()).event, 'pusher:pong');
});

it('pusher-js signin succeeds and subscribes #server-to-user-<id>', async () => {
  const c = await signedIn({ id: 'js-user', user_info: { name: 'JS' } });
  assert.equal(c.connection.state, 'connected');
  assert.equal(c.user.user_data.id, 'js-user');
});

it('sendToUser reaches every signed-in socket of that user and no one else', async () => {
  const s = ref.server;
  const u1a = await signedIn({ id: 'u1' });
  const u1b = await signedIn({ id: 'u1' });
  const u2 = await signedIn({ id: 'u2' });
  const gotA = waitFor(u1a.user, 'notice', 5000, 'notice at u1 socket A');
  const gotB = waitFor(u1b.user, 'notice', 5000, 'notice at u1 socket B');
  const since2 = u2.log.mark();
  const res = await newBackend(s).sendToUser('u1', 'notice', { text: 'for u1' });
  assert.equal(res.status, 200);
  assert.deepEqual(await gotA, { text: 'for u1' });
  assert.deepEqual(await gotB, { text: 'for u1' });
  const m = waitFor(u2.user, 'marker', 5000, 'marker at u2');
  await newBackend(s).sendToUser('u2', 'marker', {});
  await m;
  assert.equal(u2.log.find((x) => x.event === 'notice', since2), undefined, 'u2 received u1 event');
});

it('sendToUser does not reach a socket that is connected but not signed in', async () => {
  const s = ref.server;
  const anon = await rawConnected(s);
  const since = anon.mark();
  // even if it tries to subscribe to the user channel
  anon.send({ event: 'pusher:subscribe', data: { auth: '', channel: '#server-to-user-u9' } });
  const reply = await anon.waitFrame(
    (f) =>
      f.event === 'pusher:error' ||
      (f.channel === '#server-to-user-u9' &&
        (f.event === 'pusher:subscription_error' || f.event === 'pusher_internal:subscription_succeeded')),
    5000,
    { since },
  );
  assert.notEqual(reply.event, 'pusher_internal:subscription_succeeded', 'anonymous socket subscribed to a user channel');
  const u9 = await signedIn({ id: 'u9' });
  const got = waitFor(u9.user, 'private-note', 5000);
  await newBackend(s).sendToUser('u9', 'private-note', { x: 1 });
  await got;
  assert.equal(anon.frames.find((f) => f.event === 'private-note'), undefined, 'anonymous socket got a user event');
});

it('a signed-in user cannot subscribe to another user\'s #server-to-user- channel', async () => {
  const sock = await rawSignedIn({ id: 'me' });
  assert.equal(sock.signinReply.event, 'pusher:signin_success');
  const since = sock.mark();
  sock.send({ event: 'pusher:subscribe', data: { auth: '', channel: '#server-to-user-someone-else' } });
  const reply = await sock.waitFrame(
    (f) =>
      f.event === 'pusher:error' ||
      (f.channel === '#server-to-user-someone-else' &&
        (f.event === 'pusher:subscription_error' || f.event === 'pusher_internal:subscription_succeeded')),
    5000,
    { since },
  );
  assert.notEqual(reply.event, 'pusher_internal:subscription_succeeded', reply.text);
});

it('terminateUserConnections → pusher:error 4009, close 4009, pusher-js disconnected without reconnect; others unaffected', async () => {
  const s = ref.server;
  const t1 = await signedIn({ id: 'term' });
  const t2 = await signedIn({ id: 'term' });
  const raw = await rawSignedIn({ id: 'term' });
  assert.equal(raw.signinReply.event, 'pusher:signin_success');
  const other = await signedIn({ id: 'stay' });
  const since1 = t1.log.mark();
  const since2 = t2.log.mark();
  const res = await newBackend(s).terminateUserConnections('term');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  // raw view
  const errFrame = await raw.waitFrame('pusher:error', 5000);
  assertErrorFrame(errFrame, 4009);
  assert.equal((await raw.closed()).code, 4009);
  // pusher-js view
  for (const [c, since] of [
    [t1, since1],
    [t2, since2],
  ]) {
    const e = await nextMessage(c, 'pusher:error', { since });
    assert.equal(e.data.code, 4009, JSON.stringify(e));
    await waitState(c, 'disconnected');
    assert.ok(!c.connection.retryTimer, 'pusher-js scheduled a reconnect after 4009');
  }
  // the other user is still connected and reachable
  const got = waitFor(other.user, 'still', 5000);
  await newBackend(s).sendToUser('stay', 'still', {});
  await got;
  assert.equal(other.connection.state, 'connected');
});

it('terminate_connections for a user with no sockets → 200 {}', async () => {
  const res = await newBackend(ref.server).terminateUserConnections('nobody-here');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
});

it('terminate does not affect sockets known only through presence channel_data', async () => {
  const s = ref.server;
  const p = await connectedClient(s, { presence: { user_id: 'pres-only', user_info: {} } });
  await subscribe(p, 'presence-term');
  await newBackend(s).terminateUserConnections('pres-only');
  const since = p.log.mark();
  await newBackend(s).trigger('presence-term', 'marker', {});
  await nextMessage(p, 'marker', { since });
  assert.equal(p.connection.state, 'connected');
});

it('bad signin signature → pusher:error 4009 then close 4009 (raw)', async () => {
  const sock = await rawSignedIn({ id: 'evil' }, { secret: 'not-the-secret' });
  assertErrorFrame(sock.signinReply, 4009);
  assert.equal((await sock.closed()).code, 4009);
});

it('signin user_data without an id → refused (4009)', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  const ud = JSON.stringify({ user_info: { name: 'no id' } });
  const since = sock.mark();
  sock.send({
    event: 'pusher:signin',
    data: { auth: `${s.app.key}:${hmac(s.app.secret, `${sock.socketId}::user::${ud}`)}`, user_data: ud },
  });
  const f = await sock.waitFrame((x) => x.event === 'pusher:error' || x.event === 'pusher:signin_success', 5000, {
    since,
  });
  assertErrorFrame(f, 4009);
  assert.equal((await sock.closed()).code, 4009);
});

it('presence by a signed-in user without channel_data uses the signin user_data', async () => {
  const s = ref.server;
  const c = await signedIn({ id: 'pres-signed', user_info: { name: 'Signed' } }, { presence: null });
  const ch = await subscribe(c, 'presence-signed');
  assert.equal(ch.members.count, 1);
  assert.deepEqual(ch.members.me, { id: 'pres-signed', info: { name: 'Signed' } });
  const users = await (await newBackend(s).get({ path: '/channels/presence-signed/users' })).json();
  assert.deepEqual(users, { users: [{ id: 'pres-signed' }] });
});

it('watchlist: offline at signin, online when the watched user signs in, offline when they leave', async () => {
  const a = await connectedClient(ref.server, { userData: { id: 'watcher', watchlist: ['watched'] } });
  const initial = waitFor(a.user.watchlist, 'offline', 5000, 'initial offline watchlist event');
  await signin(a);
  const off0 = await initial;
  assert.deepEqual(off0.user_ids, ['watched']);
  assert.equal(off0.name, 'offline');

  const online = waitFor(a.user.watchlist, 'online', 5000, 'online watchlist event');
  const b = await signedIn({ id: 'watched' });
  const on = await online;
  assert.deepEqual(on.user_ids, ['watched']);

  const offline = waitFor(a.user.watchlist, 'offline', 5000, 'offline watchlist event');
  b.disconnect();
  const off = await offline;
  assert.deepEqual(off.user_ids, ['watched']);
});

it('watchlist: online at signin when the watched user is already signed in (raw envelope)', async () => {
  await signedIn({ id: 'early-bird' });
  const sock = await rawSignedIn({ id: 'late-watcher', watchlist: ['early-bird', 'absent'] });
  assert.equal(sock.signinReply.event, 'pusher:signin_success');
  const f = await sock.waitFrame('pusher_internal:watchlist_events', 5000);
  assert.equal(f.json.channel, undefined, 'watchlist events have no channel');
  const data = f.json.data;
  assert.ok(data && typeof data === 'object', `watchlist_events data must be an object (spec §2.1): ${f.text}`);
  assert.ok(Array.isArray(data.events), f.text);
  for (const e of data.events) {
    assert.ok(['online', 'offline'].includes(e.name), f.text);
    assert.ok(Array.isArray(e.user_ids), f.text);
  }
  const frames = sock.frames.filter((x) => x.event === 'pusher_internal:watchlist_events');
  const events = frames.flatMap((x) => (typeof x.json.data === 'string' ? JSON.parse(x.json.data) : x.json.data).events);
  const onlineIds = events.filter((e) => e.name === 'online').flatMap((e) => e.user_ids);
  const offlineIds = events.filter((e) => e.name === 'offline').flatMap((e) => e.user_ids);
  assert.ok(onlineIds.includes('early-bird'), f.text);
  // 'absent' may arrive in the same or a separate frame; wait for it if needed
  if (!offlineIds.includes('absent')) {
    await sock.waitFrame(
      (x) =>
        x.event === 'pusher_internal:watchlist_events' &&
        JSON.stringify(x.json.data).includes('absent'),
      5000,
    );
  }
});

it('watchlist of more than 100 ids: signin succeeds and pusher:error 4302 is sent; socket stays open', async () => {
  const ids = Array.from({ length: 101 }, (_, i) => `w${i}`);
  const sock = await rawSignedIn({ id: 'big-watcher', watchlist: ids });
  // signin_success and the 4302 error may come in either order
  const ok = await sock.waitFrame('pusher:signin_success', 5000);
  const err = await sock.waitFrame((f) => f.event === 'pusher:error' && f.json.data?.code === 4302, 5000);
  assertErrorFrame(err, 4302);
  assert.ok(ok);
  assert.equal((await sock.ping()).event, 'pusher:pong');
  assert.equal(sock.closeInfo, null);
});

it('#server-to-user- channels are hidden from GET /channels', async () => {
  await signedIn({ id: 'hidden-user' });
  const r = await (await newBackend(ref.server).get({ path: '/channels' })).json();
  const names = Object.keys(r.channels);
  assert.ok(!names.some((n) => n.startsWith('#')), `listed: ${names}`);
});

it('signin twice on one socket as a different user is refused', async () => {
  const s = ref.server;
  const sock = await rawSignedIn({ id: 'first-id' });
  assert.equal(sock.signinReply.event, 'pusher:signin_success');
  const ud = JSON.stringify({ id: 'second-id' });
  const since = sock.mark();
  sock.send({
    event: 'pusher:signin',
    data: { auth: `${s.app.key}:${hmac(s.app.secret, `${sock.socketId}::user::${ud}`)}`, user_data: ud },
  });
  const f = await sock.waitFrame((x) => x.event === 'pusher:error' || x.event === 'pusher:signin_success', 5000, {
    since,
  });
  assert.equal(f.event, 'pusher:error', `second signin as another user: ${f.text}`);
});
