'use strict';
// Redis mode: three real sockudo processes sharing one Redis act as one
// server for pusher-js and the `pusher` SDK.

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const { it, installCleanup } = require('../lib/harness');
const { connectedClient, subscribe, newBackend, nextMessage, waitState, signin } = require('../lib/clients');
const { waitFor } = require('../lib/wait');
const { sdkJson } = require('../lib/rest');
const { WebhookReceiver } = require('../lib/webhook-receiver');
const { startCluster, waitHealthy, OwnRedis, redisKeys } = require('../lib/cluster');
const { startServer, DEFAULT_APP } = require('../lib/server');

installCleanup();

const receiver = new WebhookReceiver(DEFAULT_APP);
let cluster;
let n1, n2, n3;

before(async () => {
  await receiver.start();
  cluster = await startCluster(3, {
    name: 'cluster',
    env: {
      SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true',
      SOCKUDO_DEFAULT_APP_ENABLE_USER_AUTHENTICATION: 'true',
      SOCKUDO_DEFAULT_APP_ENABLE_WATCHLIST_EVENTS: 'true',
      SOCKUDO_DEFAULT_APP_ENABLE_SUBSCRIPTION_COUNT: 'true',
      SOCKUDO_DEFAULT_APP_WEBHOOKS: JSON.stringify([
        {
          url: `${receiver.url}/hook`,
          event_types: ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed'],
        },
      ]),
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      WEBHOOK_BATCHING_DURATION: '20',
      WEBHOOK_GRACE_PERIOD_MS: '100',
    },
  });
  [n1, n2, n3] = cluster.nodes;
});

after(async () => {
  for (const s of cluster?.nodes || []) {
    await s.stop();
    s.cleanupFiles();
  }
  await receiver.stop();
});

const user = (id) => ({ presence: { user_id: id, user_info: { name: id } }, userData: { id } });

/** Sends a marker through node via, and waits until client got it. */
async function marker(via, client, channel) {
  const since = client.log.mark();
  await newBackend(via).trigger(channel, 'marker', {});
  await nextMessage(client, 'marker', { channel, since });
}

it('a trigger on node 2 reaches subscribers on nodes 1, 2 and 3 exactly once', async () => {
  const clients = [];
  for (const s of [n1, n2, n3]) {
    const c = await connectedClient(s);
    await subscribe(c, 'news');
    clients.push(c);
  }
  for (let i = 0; i < 20; i++) await newBackend(n2).trigger('news', 'update', { i });
  for (const c of clients) await marker(n2, c, 'news');
  for (const [i, c] of clients.entries()) {
    const got = c.log.filter((m) => m.event === 'update').map((m) => m.data.i);
    assert.deepEqual(got, [...Array(20).keys()], `node ${i + 1} subscriber got ${JSON.stringify(got)}`);
  }
  // socket_id exclusion works across nodes: the excluded socket is on node 1.
  const since = clients[0].log.mark();
  await newBackend(n3).trigger('news', 'not-me', {}, { socket_id: clients[0].connection.socket_id });
  await nextMessage(clients[2], 'not-me', { channel: 'news' });
  await marker(n3, clients[0], 'news');
  assert.equal(clients[0].log.filter((m) => m.event === 'not-me', since).length, 0);
});

it('presence across nodes: ids and count everywhere, member_added and member_removed once', async () => {
  const a = await connectedClient(n1, user('alice'));
  const chA = await subscribe(a, 'presence-room');
  const b = await connectedClient(n2, user('bob'));
  const chB = await subscribe(b, 'presence-room');
  assert.equal(chB.members.count, 2);
  assert.deepEqual(Object.keys(chB.members.members).sort(), ['alice', 'bob']);
  await waitFor(() => chA.members.count === 2, 5000, 'member_added on node 1');
  // A second socket of bob on node 3: no second member_added.
  const b2 = await connectedClient(n3, user('bob'));
  const chB2 = await subscribe(b2, 'presence-room');
  assert.equal(chB2.members.count, 2);
  await marker(n1, a, 'presence-room');
  const added = a.log.filter((m) => m.event === 'pusher_internal:member_added');
  assert.equal(added.length, 1, JSON.stringify(added));
  for (const s of [n1, n2, n3]) {
    const r = await sdkJson(await newBackend(s).get({ path: '/channels/presence-room/users' }));
    assert.deepEqual(r.json.users.map((u) => u.id).sort(), ['alice', 'bob'], `users on ${s.name}`);
  }
  // bob leaves one socket: still a member; then the other: member_removed once.
  b.unsubscribe('presence-room');
  await marker(n1, a, 'presence-room');
  assert.equal(a.log.filter((m) => m.event === 'pusher_internal:member_removed').length, 0);
  b2.unsubscribe('presence-room');
  await nextMessage(a, 'pusher_internal:member_removed', { channel: 'presence-room' });
  await marker(n2, a, 'presence-room');
  assert.equal(a.log.filter((m) => m.event === 'pusher_internal:member_removed').length, 1);
  assert.equal(chA.members.count, 1);
});

it('GET /channels on any node shows cluster-wide counts', async () => {
  const subs = [];
  for (const s of [n1, n2, n3, n3]) {
    const c = await connectedClient(s, user(`u-${subs.length}`));
    await subscribe(c, 'counted');
    await subscribe(c, 'presence-counted');
    subs.push(c);
  }
  for (const s of [n1, n2, n3]) {
    const b = newBackend(s);
    const one = await sdkJson(await b.get({ path: '/channels/counted', params: { info: 'subscription_count' } }));
    assert.equal(one.json.occupied, true);
    assert.equal(one.json.subscription_count, 4, `${s.name}: ${one.text}`);
    const pres = await sdkJson(await b.get({ path: '/channels/presence-counted', params: { info: 'user_count' } }));
    assert.equal(pres.json.user_count, 4, `${s.name}: ${pres.text}`);
    const list = await sdkJson(await b.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }));
    assert.equal(list.json.channels['presence-counted']?.user_count, 4, `${s.name}: ${list.text}`);
  }
  // pusher_internal:subscription_count reaches every node's subscribers.
  await waitFor(
    () => subs[0].log.find((m) => m.event === 'pusher_internal:subscription_count' && m.data.subscription_count === 4),
    5000,
    'subscription_count 4 on node 1',
  );
});

it('terminate_connections on node 3 closes the user socket on node 1; others stay', async () => {
  const victim = await connectedClient(n1, { userData: { id: 'victim' } });
  await signin(victim);
  const bystander = await connectedClient(n1, { userData: { id: 'bystander' } });
  await signin(bystander);
  const res = await newBackend(n3).terminateUserConnections('victim');
  assert.equal(res.status, 200);
  await waitState(victim, 'disconnected', 5000);
  assert.equal(bystander.connection.state, 'connected');
});

it('server-to-user events and watchlists cross nodes', async () => {
  const watcher = await connectedClient(n1, { userData: { id: 'watcher', watchlist: ['watched'] } });
  await signin(watcher);
  const online = waitFor(watcher.user.watchlist, 'online', 5000, 'watchlist online from node 2');
  const watched = await connectedClient(n2, { userData: { id: 'watched' } });
  await signin(watched);
  const ev = await online;
  assert.deepEqual(ev.user_ids, ['watched']);
  const got = waitFor(watched.user, 'direct', 5000, 'sendToUser through node 3');
  await newBackend(n3).sendToUser('watched', 'direct', { hi: 1 });
  assert.deepEqual(await got, { hi: 1 });
});

it('client events cross nodes and never echo to the sender', async () => {
  const a = await connectedClient(n1, user('ca'));
  const chA = await subscribe(a, 'private-chat');
  const b = await connectedClient(n3, user('cb'));
  await subscribe(b, 'private-chat');
  chA.trigger('client-typing', { who: 'ca' });
  const m = await nextMessage(b, 'client-typing', { channel: 'private-chat' });
  assert.deepEqual(m.data, { who: 'ca' });
  await marker(n2, a, 'private-chat');
  assert.equal(a.log.filter((x) => x.event === 'client-typing').length, 0);
});

it('cache channels: the last event published on node 1 is replayed to a subscriber on node 3', async () => {
  await newBackend(n1).trigger('cache-prices', 'price', { v: 42 });
  const c = await connectedClient(n3);
  const since = c.log.mark();
  await subscribe(c, 'cache-prices');
  const m = await nextMessage(c, 'price', { channel: 'cache-prices', since });
  assert.deepEqual(m.data, { v: 42 });
});

it('webhooks fire once per cluster transition', async () => {
  const since = receiver.events.mark();
  const a = await connectedClient(n1, user('wa'));
  await subscribe(a, 'presence-hooks');
  const b = await connectedClient(n2, user('wb'));
  await subscribe(b, 'presence-hooks');
  const c = await connectedClient(n3, user('wa')); // wa again, on another node
  await subscribe(c, 'presence-hooks');
  for (const x of [a, b, c]) x.unsubscribe('presence-hooks');
  await receiver.waitEvent((e) => e.name === 'channel_vacated' && e.channel === 'presence-hooks', 10000);
  // Anything duplicated would be in flight within the same batching window;
  // a later marker transition proves the earlier batches arrived.
  const d = await connectedClient(n2);
  await subscribe(d, 'hooks-marker');
  d.unsubscribe('hooks-marker');
  await receiver.waitEvent((e) => e.name === 'channel_vacated' && e.channel === 'hooks-marker', 10000);
  const got = receiver.events
    .filter((e) => e.channel === 'presence-hooks', since)
    .map((e) => `${e.name}${e.user_id ? ':' + e.user_id : ''}`)
    .sort();
  assert.deepEqual(got, [
    'channel_occupied',
    'channel_vacated',
    'member_added:wa',
    'member_added:wb',
    'member_removed:wa',
    'member_removed:wb',
  ]);
});

it('SIGKILL of a node: the others remove its members within the bound, once', async () => {
  const extra = await startServer({ name: 'cluster-4', env: cluster.env });
  await waitHealthy(extra);
  const watcher = await connectedClient(n1, user('stayer'));
  const ch = await subscribe(watcher, 'presence-crash');
  const since = receiver.events.mark();
  const doomed = [];
  for (const id of ['ghost-1', 'ghost-2']) {
    const c = await connectedClient(extra, user(id));
    await subscribe(c, 'presence-crash');
    doomed.push(c);
  }
  await waitFor(() => ch.members.count === 3, 5000, 'both members on node 1');
  extra.proc.kill('SIGKILL');
  await extra.exited;
  const killedAt = Date.now();
  for (const c of doomed) c.terminate();
  // Bound: CLUSTER_HEALTH_NODE_TIMEOUT (1 s) + a heartbeat (0.2 s) + slack.
  await waitFor(() => ch.members.count === 1, 5000, 'ghost members removed');
  const took = Date.now() - killedAt;
  console.log(`dead node's members removed ${took} ms after SIGKILL (timeout 1000 ms, heartbeat 200 ms)`);
  assert.ok(took < 3000, `cleanup took ${took} ms`);
  for (const s of [n1, n2, n3]) {
    const r = await sdkJson(await newBackend(s).get({ path: '/channels/presence-crash/users' }));
    assert.deepEqual(r.json.users.map((u) => u.id), ['stayer'], `${s.name}: ${r.text}`);
  }
  await marker(n2, watcher, 'presence-crash');
  const removed = watcher.log.filter((m) => m.event === 'pusher_internal:member_removed').map((m) => m.data.user_id);
  assert.deepEqual(removed.sort(), ['ghost-1', 'ghost-2']);
  await receiver.waitEvent((e) => e.name === 'member_removed' && e.user_id === 'ghost-2', 10000);
  await receiver.waitEvent((e) => e.name === 'member_removed' && e.user_id === 'ghost-1', 10000);
  // Another transition afterwards proves no duplicate was in flight.
  watcher.unsubscribe('presence-crash');
  await receiver.waitEvent((e) => e.name === 'channel_vacated' && e.channel === 'presence-crash', 10000);
  const hooks = receiver.events.filter((e) => e.name === 'member_removed' && e.channel === 'presence-crash', since);
  assert.equal(hooks.length, 3, JSON.stringify(hooks)); // two ghosts and stayer
  extra.cleanupFiles();
});

it('a Redis outage: local delivery continues, /up says degraded, the cluster reconverges', async () => {
  const redis = await OwnRedis.create();
  await redis.start();
  const pair = await startCluster(2, { name: 'outage', redisUrl: redis.url });
  const [p1, p2] = pair.nodes;
  try {
    const a = await connectedClient(p1, user('oa'));
    const chA = await subscribe(a, 'presence-outage');
    const b = await connectedClient(p2, user('ob'));
    await subscribe(b, 'presence-outage');
    await waitFor(() => chA.members.count === 2, 5000, 'members before the outage');

    await redis.stop();
    await waitFor(
      async () => (await (await fetch(`${p1.httpUrl}/up`)).text()).includes('degraded'),
      5000,
      '/up degraded',
    );
    // Local delivery on node 1 continues.
    const since = a.log.mark();
    const res = await newBackend(p1).trigger('presence-outage', 'local', { n: 1 });
    assert.equal(res.status, 200);
    await nextMessage(a, 'local', { channel: 'presence-outage', since });
    // A new subscriber on node 1 is served from node 1's view.
    const c = await connectedClient(p1, user('oc'));
    await subscribe(c, 'presence-outage');

    await redis.start(); // empty: as after a restart without persistence
    await Promise.all([waitHealthy(p1), waitHealthy(p2)]);
    // Reconverged: both nodes see all three members and deliver across.
    for (const s of [p1, p2]) {
      await waitFor(
        async () => {
          const r = await sdkJson(await newBackend(s).get({ path: '/channels/presence-outage/users' }));
          return r.json.users?.map((u) => u.id).sort().join() === 'oa,ob,oc';
        },
        10000,
        `members on ${s.name} after Redis returned`,
      );
    }
    const since2 = b.log.mark();
    await newBackend(p1).trigger('presence-outage', 'after', {});
    await nextMessage(b, 'after', { channel: 'presence-outage', since: since2 });
  } finally {
    for (const s of pair.nodes) {
      await s.stop();
      s.cleanupFiles();
    }
    await redis.stop();
  }
});

it('nodes that stop cleanly leave no keys behind', async () => {
  const pair = await startCluster(2, { name: 'clean', env: { SOCKUDO_DEFAULT_APP_ENABLE_USER_AUTHENTICATION: 'true' } });
  const a = await connectedClient(pair.nodes[0], user('k1'));
  await subscribe(a, 'presence-keys');
  await signin(a);
  const b = await connectedClient(pair.nodes[1]);
  await subscribe(b, 'public-keys');
  a.terminate();
  b.terminate();
  for (const s of pair.nodes) {
    await s.stop();
    s.cleanupFiles();
  }
  await waitFor(() => redisKeys(pair.prefix).length === 0, 5000, `no keys left: ${redisKeys(pair.prefix)}`);
});
