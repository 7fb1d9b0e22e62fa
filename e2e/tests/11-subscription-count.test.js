'use strict';
// pusher_internal:subscription_count (ENABLE_SUBSCRIPTION_COUNT=true).

const assert = require('node:assert/strict');
const { useServer, it } = require('../lib/harness');
const { rawConnected, rawSubscribe } = require('../lib/raw');
const { connectedClient, subscribe, newBackend, nextMessage } = require('../lib/clients');
const { hmac } = require('../lib/rest');

const ref = useServer({ name: 'subcount', env: { SOCKUDO_DEFAULT_APP_ENABLE_SUBSCRIPTION_COUNT: 'true' } });
const off = useServer({ name: 'subcount-off' });

function countEvent(client, channel, n, since = 0) {
  return nextMessage(client, 'pusher_internal:subscription_count', {
    channel,
    since,
    where: (m) => m.data?.subscription_count === n,
  });
}

it('pusher-js: count 1 on subscribe, 2 when another socket joins, 1 when it leaves', async () => {
  const s = ref.server;
  const a = await connectedClient(s);
  const ch = a.subscribe('sc-public');
  const counts = [];
  ch.bind('pusher:subscription_count', (d) => counts.push(d.subscription_count));
  await countEvent(a, 'sc-public', 1);
  const b = await connectedClient(s);
  await subscribe(b, 'sc-public');
  await countEvent(a, 'sc-public', 2);
  assert.equal(ch.subscriptionCount, 2);
  b.disconnect();
  const since = a.log.mark();
  await countEvent(a, 'sc-public', 1, since);
  assert.deepEqual(counts.slice(0, 2), [1, 2]);
});

it('raw: subscription_count data is a JSON string', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  const since = sock.mark();
  await rawSubscribe(sock, 'sc-raw');
  const f = await sock.waitFrame('pusher_internal:subscription_count', 5000, { since, channel: 'sc-raw' });
  assert.equal(typeof f.json.data, 'string', f.text);
  assert.deepEqual(JSON.parse(f.json.data), { subscription_count: 1 });
});

it('private channels get subscription_count too', async () => {
  const s = ref.server;
  const sock = await rawConnected(s);
  await rawSubscribe(sock, 'private-sc', { auth: `${s.app.key}:${hmac(s.app.secret, `${sock.socketId}:private-sc`)}` });
  const f = await sock.waitFrame('pusher_internal:subscription_count', 5000, { channel: 'private-sc' });
  assert.equal(JSON.parse(f.json.data).subscription_count, 1);
});

it('presence channels never get subscription_count', async () => {
  const s = ref.server;
  const a = await connectedClient(s, { presence: { user_id: 'a', user_info: {} } });
  const b = await connectedClient(s, { presence: { user_id: 'b', user_info: {} } });
  await subscribe(a, 'presence-sc');
  await subscribe(b, 'presence-sc');
  const since = a.log.mark();
  await newBackend(s).trigger('presence-sc', 'marker', {});
  await nextMessage(a, 'marker', { since });
  assert.equal(a.log.find((m) => m.event === 'pusher_internal:subscription_count'), undefined);
});

it('without the app flag no subscription_count is sent', async () => {
  const s = off.server;
  const a = await connectedClient(s);
  await subscribe(a, 'no-sc');
  const b = await connectedClient(s);
  await subscribe(b, 'no-sc');
  const since = a.log.mark();
  await newBackend(s).trigger('no-sc', 'marker', {});
  await nextMessage(a, 'marker', { since });
  assert.equal(a.log.find((m) => m.event === 'pusher_internal:subscription_count'), undefined);
});
