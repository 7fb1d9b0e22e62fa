'use strict';
// Webhooks (spec §5): every event type produced by pusher-js clients, each
// request validated by the npm `pusher` SDK; the grace period; and a kill -9
// while webhooks are queued for a receiver that is down: none is lost.

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const { it, installCleanup } = require('../lib/harness');
const { startServer, freePort } = require('../lib/server');
const { connectedClient, subscribe, newBackend } = require('../lib/clients');
const { rawConnected, rawSubscribe } = require('../lib/raw');
const { closeAll } = require('../lib/registry');
const { waitFor } = require('../lib/wait');
const { WebhookReceiver } = require('../lib/webhook-receiver');

const APP = { id: 'app-id', key: 'app-key', secret: 'app-secret' };
const GRACE_MS = 400;

installCleanup();

let receiver;
let server;

before(async () => {
  receiver = new WebhookReceiver(APP);
  await receiver.start();
  server = await startServer({
    name: 'webhooks',
    env: {
      SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true',
      SOCKUDO_DEFAULT_APP_WEBHOOKS: JSON.stringify([{ url: `${receiver.url}/hook?token=t` }]),
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      WEBHOOK_GRACE_PERIOD_MS: String(GRACE_MS),
      WEBHOOK_BATCHING_DURATION: '20',
    },
  });
});

after(async () => {
  closeAll();
  if (server) {
    await server.stop();
    server.cleanupFiles();
  }
  if (receiver) await receiver.stop();
});

/** Every request so far passed the SDK check and §5.1's exact headers. */
function assertAllValid(rcv) {
  assert.ok(rcv.requests.length > 0, 'no webhook requests');
  for (const r of rcv.requests) {
    assert.equal(r.method, 'POST');
    assert.equal(r.valid, true, `pusher.webhook().isValid() rejected ${r.rawBody}`);
    assert.equal(r.headers['content-type'], 'application/json');
    const names = WebhookReceiver.rawHeaderNames(r);
    assert.ok(names.includes('X-Pusher-Key'), `header names on the wire: ${names}`);
    assert.ok(names.includes('X-Pusher-Signature'), `header names on the wire: ${names}`);
    assert.match(r.headers['x-pusher-signature'], /^[0-9a-f]{64}$/);
    assert.equal(typeof r.body.time_ms, 'number');
    assert.ok(Array.isArray(r.body.events) && r.body.events.length >= 1);
  }
}

const presence = (id) => ({ presence: { user_id: id, user_info: { name: id } } });

it('every event type arrives, signed, and passes the pusher SDK', async () => {
  const a = await connectedClient(server, presence('alice'));
  const b = await connectedClient(server, presence('bob'));

  // channel_occupied + member_added (presence: no subscription_count).
  const roomA = await subscribe(a, 'presence-room');
  await subscribe(b, 'presence-room');
  await receiver.waitEvent((e) => e.name === 'channel_occupied' && e.channel === 'presence-room');
  await receiver.waitEvent((e) => e.name === 'member_added' && e.user_id === 'alice');
  await receiver.waitEvent((e) => e.name === 'member_added' && e.user_id === 'bob');

  // client_event on presence: data a JSON string, socket_id, user_id.
  roomA.trigger('client-hello', { text: 'hi', n: 1 });
  const ce = await receiver.waitEvent((e) => e.name === 'client_event' && e.channel === 'presence-room');
  assert.equal(ce.event, 'client-hello');
  assert.equal(typeof ce.data, 'string');
  assert.deepEqual(JSON.parse(ce.data), { text: 'hi', n: 1 });
  assert.equal(ce.socket_id, a.connection.socket_id);
  assert.equal(ce.user_id, 'alice');

  // Private channel: subscription_count as an integer; client_event without user_id.
  await subscribe(a, 'private-chat');
  const chatB = await subscribe(b, 'private-chat');
  const count = await receiver.waitEvent(
    (e) => e.name === 'subscription_count' && e.channel === 'private-chat' && e.subscription_count === 2,
  );
  assert.equal(typeof count.subscription_count, 'number');
  chatB.trigger('client-typing', { who: 'bob' });
  const typing = await receiver.waitEvent((e) => e.name === 'client_event' && e.channel === 'private-chat');
  assert.deepEqual(JSON.parse(typing.data), { who: 'bob' });
  assert.equal(typing.socket_id, b.connection.socket_id);
  assert.equal('user_id' in typing, false, 'no user_id on private channels');

  // cache_miss, once for two subscribers missing the cache together.
  await Promise.all([subscribe(a, 'cache-news'), subscribe(b, 'cache-news')]);
  // Markers subscribed after the cache channel by each socket: their
  // occupied events are emitted after both cache misses.
  await Promise.all([subscribe(a, 'marker-a'), subscribe(b, 'marker-b')]);
  await receiver.waitEvent((e) => e.name === 'channel_occupied' && e.channel === 'marker-a');
  await receiver.waitEvent((e) => e.name === 'channel_occupied' && e.channel === 'marker-b');
  assert.equal(receiver.named('cache_miss', 'cache-news').length, 1, 'cache_miss de-duplicated');

  // Leaving: member_removed and channel_vacated after the grace period.
  b.terminate();
  a.unsubscribe('private-chat');
  const removed = await receiver.waitEvent((e) => e.name === 'member_removed' && e.channel === 'presence-room');
  assert.equal(removed.user_id, 'bob');
  await receiver.waitEvent((e) => e.name === 'channel_vacated' && e.channel === 'private-chat');
  await receiver.waitEvent((e) => e.name === 'channel_vacated' && e.channel === 'marker-b');

  assertAllValid(receiver);
  // The custom URL query reaches the receiver.
  assert.ok(receiver.requests.every((r) => r.url === '/hook?token=t'));
  const seen = new Set(receiver.events.items.map((e) => e.name));
  for (const name of [
    'channel_occupied',
    'channel_vacated',
    'member_added',
    'member_removed',
    'client_event',
    'cache_miss',
    'subscription_count',
  ]) {
    assert.ok(seen.has(name), `no ${name} webhook`);
  }
});

it('a channel that comes back within the grace period sends no vacated/occupied pair', async () => {
  const a = await connectedClient(server);
  await subscribe(a, 'flap');
  await receiver.waitEvent((e) => e.name === 'channel_occupied' && e.channel === 'flap');
  a.unsubscribe('flap');
  await subscribe(a, 'flap'); // back well within GRACE_MS
  a.unsubscribe('flap'); // for good this time
  await receiver.waitEvent((e) => e.name === 'channel_vacated' && e.channel === 'flap');
  assert.equal(receiver.named('channel_occupied', 'flap').length, 1);
  assert.equal(receiver.named('channel_vacated', 'flap').length, 1);
});

it('the dead-letter and queue endpoints are signed like the REST API', async () => {
  const api = newBackend(server);
  const q = await (await api.get({ path: '/webhooks' })).json();
  assert.equal(q.targets.length, 1);
  assert.equal(q.targets[0].url, `${receiver.url}/hook`); // the query (a token) is not shown to the app's backend
  const dl = await (await api.get({ path: '/webhooks/dead_letters' })).json();
  assert.deepEqual(dl, { dead_letters: [] });
  const rp = await (await api.post({ path: '/webhooks/dead_letters/replay', body: {} })).json();
  assert.deepEqual(rp, { replayed: 0, skipped: 0 });
  const bad = newBackend(server, { secret: 'wrong-secret' });
  await assert.rejects(bad.get({ path: '/webhooks/dead_letters' }), (e) => e.status === 401);
});

it('one anonymous socket opening channels with the receiver down cannot grow the queue past WEBHOOK_QUEUE_MAX', async () => {
  const port = await freePort(); // nothing listens: connections are refused
  const s = await startServer({
    name: 'webhooks-flood',
    env: {
      SOCKUDO_DEFAULT_APP_WEBHOOKS: JSON.stringify([
        { url: `http://127.0.0.1:${port}/hook`, event_types: ['channel_occupied', 'channel_vacated'] },
      ]),
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      WEBHOOK_GRACE_PERIOD_MS: '0',
      WEBHOOK_QUEUE_MAX: '100',
      // One event per request: a failed request holds back (may have sent)
      // only the head, so everything behind it can still be coalesced.
      WEBHOOK_BATCHING_ENABLED: 'false',
      // The per-socket limits would stop one socket long before the queue
      // cap; lift them so this socket stands for many.
      WEBSOCKET_MAX_INBOUND_MESSAGES_PER_SECOND: '100000',
      WEBSOCKET_MAX_CHANNELS_PER_CONNECTION: '10000',
    },
  });
  try {
    const api = newBackend(s);
    const pending = async () => (await (await api.get({ path: '/webhooks' })).json()).targets[0].pending;
    const sock = await rawConnected(s);
    // Channels that come and go leave nothing behind them in the queue
    // (the first may already be on the wire, with its vacated).
    for (let i = 0; i < 150; i++) {
      await rawSubscribe(sock, `churn-${i}`);
      sock.send({ event: 'pusher:unsubscribe', data: { channel: `churn-${i}` } });
    }
    await sock.ping(); // every unsubscribe is handled
    await waitFor(async () => (await pending()) <= 2, 5000, 'the churn coalesced');
    // Channels that stay: the newest 100 wait, the oldest are dead letters.
    for (let i = 0; i < 300; i++) await rawSubscribe(sock, `anon-${i}`);
    let dead = [];
    await waitFor(
      async () => {
        dead = (await (await api.get({ path: '/webhooks/dead_letters' })).json()).dead_letters;
        return dead.length >= 200;
      },
      5000,
      'the oldest events dead-lettered',
    );
    assert.ok((await pending()) <= 100);
    assert.match(dead[dead.length - 1].reason, /^queue full/);
  } finally {
    closeAll();
    await s.stop();
    s.cleanupFiles();
  }
});

it('kill -9 with webhooks queued for a receiver that is down: every event arrives after restart', async () => {
  const port = await freePort(); // nothing listens: connections are refused
  const down = new WebhookReceiver(APP);
  const s = await startServer({
    name: 'webhooks-crash',
    env: {
      SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true',
      SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND: '1000',
      SOCKUDO_DEFAULT_APP_WEBHOOKS: JSON.stringify([
        {
          url: `http://127.0.0.1:${port}/hook`,
          event_types: ['channel_occupied', 'member_added', 'client_event'],
        },
      ]),
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    },
  });
  try {
    const a = await connectedClient(s, presence('alice'));
    const b = await connectedClient(s, presence('bob'));
    await subscribe(a, 'presence-crash');
    const ch = await subscribe(a, 'private-crash');
    await subscribe(b, 'private-crash');
    const N = 60;
    for (let i = 0; i < N; i++) ch.trigger('client-n', { n: i });
    const expected = new Set(['channel_occupied presence-crash', 'member_added alice', 'channel_occupied private-crash']);
    for (let i = 0; i < N; i++) expected.add(`client_event ${i}`);

    // Committed to the durable queue: the server counts what it stored.
    const api = newBackend(s);
    await waitFor(
      async () => {
        const q = await (await api.get({ path: '/webhooks' })).json();
        return q.targets[0].pending === expected.size && q.targets[0].failures >= 1;
      },
      10000,
      `${expected.size} webhooks pending after a failed attempt`,
    );

    s.proc.kill('SIGKILL');
    const exit = await s.exited;
    assert.equal(exit.signal, 'SIGKILL');
    closeAll(); // the clients would reconnect to the restarted server

    await down.start(port);
    await s.start();
    const key = (e) => (e.name === 'client_event' ? `client_event ${JSON.parse(e.data).n}` : e.name === 'member_added' ? `member_added ${e.user_id}` : `${e.name} ${e.channel}`);
    await waitFor(
      () => [...expected].every((k) => down.events.items.some((e) => key(e) === k)),
      20000,
      'every queued webhook after the restart',
    ).catch((e) => {
      const got = new Set(down.events.items.map(key));
      e.message += `\n  missing: ${[...expected].filter((k) => !got.has(k)).join(', ')}`;
      throw e;
    });
    assertAllValid(down);
    const extra = down.events.items.map(key).filter((k) => !expected.has(k));
    assert.deepEqual(extra, [], 'only the queued events were sent');
    await waitFor(
      async () => (await (await newBackend(s).get({ path: '/webhooks' })).json()).targets[0].pending === 0,
      5000,
      'an empty queue',
    );
  } finally {
    closeAll();
    await s.stop();
    s.cleanupFiles();
    await down.stop();
  }
});

it('kill -9 with channels occupied: the restarted server reports them vacated and the members removed', async () => {
  const rcv = new WebhookReceiver(APP);
  await rcv.start();
  const s = await startServer({
    name: 'webhooks-orphans',
    env: {
      SOCKUDO_DEFAULT_APP_WEBHOOKS: JSON.stringify([
        { url: `${rcv.url}/hook`, event_types: ['channel_vacated', 'member_removed'] },
      ]),
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      WEBHOOK_GRACE_PERIOD_MS: String(GRACE_MS),
    },
  });
  try {
    const a = await connectedClient(s, presence('carol'));
    await subscribe(a, 'presence-orphan');
    await subscribe(a, 'orphan-public');
    // The occupancy records go out with the write-behind (10 ms); a
    // channel vacated and re-occupied here proves a commit round passed.
    const b = await connectedClient(s);
    await subscribe(b, 'marker');
    b.unsubscribe('marker');
    await rcv.waitEvent((e) => e.name === 'channel_vacated' && e.channel === 'marker', 5000);

    s.proc.kill('SIGKILL');
    await s.exited;
    closeAll(); // no reconnects: the channels stay empty after the restart
    await s.start();
    await rcv.waitEvent((e) => e.name === 'member_removed' && e.channel === 'presence-orphan' && e.user_id === 'carol', 10000);
    await rcv.waitEvent((e) => e.name === 'channel_vacated' && e.channel === 'presence-orphan', 10000);
    await rcv.waitEvent((e) => e.name === 'channel_vacated' && e.channel === 'orphan-public', 10000);
    assertAllValid(rcv);
  } finally {
    closeAll();
    await s.stop();
    s.cleanupFiles();
    await rcv.stop();
  }
});
