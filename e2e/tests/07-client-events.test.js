'use strict';
// Client events: relay rules, encoding, user_id on presence, refusals, rate limit.

const assert = require('node:assert/strict');
const { useServer, it } = require('../lib/harness');
const { rawConnected, rawSubscribe } = require('../lib/raw');
const { connectedClient, subscribe, newBackend, nextMessage } = require('../lib/clients');
const { withTimeout } = require('../lib/wait');
const { hmac } = require('../lib/rest');
const { assertErrorFrame } = require('../lib/assertions');

const on = useServer({ name: 'client-events-on', env: { SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true' } });
const off = useServer({ name: 'client-events-off' });

const privAuth = (s, sock, ch) => ({ auth: `${s.app.key}:${hmac(s.app.secret, `${sock.socketId}:${ch}`)}` });

async function marker(server, client, channel) {
  const since = client.log.mark();
  await newBackend(server).trigger(channel, 'marker', {});
  await nextMessage(client, 'marker', { channel, since });
}

function errorsSince(client, since) {
  return client.log.filter((m) => m.event === 'pusher:error', since);
}

it('private: relayed to other subscribers as the object sent, not echoed to the sender', async () => {
  const s = on.server;
  const a = await connectedClient(s);
  const b = await connectedClient(s);
  const chA = await subscribe(a, 'private-chat');
  const chB = await subscribe(b, 'private-chat');
  const sinceA = a.log.mark();
  const got = new Promise((resolve) => chB.bind('client-typing', (data, meta) => resolve({ data, meta })));
  assert.equal(chA.trigger('client-typing', { who: 'A', n: 1, nested: { ok: true } }), true);
  const { data, meta } = await withTimeout(got, 5000, 'client-typing at B');
  assert.deepEqual(data, { who: 'A', n: 1, nested: { ok: true } });
  assert.equal(meta?.user_id, undefined, 'no user_id on private channels');
  await marker(s, a, 'private-chat');
  assert.equal(a.log.find((m) => m.event === 'client-typing', sinceA), undefined, 'client event echoed to its sender');
  assert.deepEqual(errorsSince(a, sinceA), []);
});

it('raw: relayed client-event data is a JSON string, without user_id on private channels', async () => {
  const s = on.server;
  const a = await rawConnected(s);
  const b = await rawConnected(s);
  await rawSubscribe(a, 'private-wire', privAuth(s, a, 'private-wire'));
  await rawSubscribe(b, 'private-wire', privAuth(s, b, 'private-wire'));
  const since = b.mark();
  a.send({ event: 'client-x', channel: 'private-wire', data: { k: 'v', list: [1, 2] } });
  const f = await b.waitFrame('client-x', 5000, { since });
  assert.equal(f.json.channel, 'private-wire');
  assert.equal(typeof f.json.data, 'string', `relayed data must be a JSON string: ${f.text}`);
  assert.deepEqual(JSON.parse(f.json.data), { k: 'v', list: [1, 2] });
  assert.equal(f.json.user_id, undefined, f.text);
});

it('raw: client-event data sent as a string (Java style) is relayed unchanged', async () => {
  const s = on.server;
  const a = await rawConnected(s);
  const b = await rawConnected(s);
  await rawSubscribe(a, 'private-str', privAuth(s, a, 'private-str'));
  await rawSubscribe(b, 'private-str', privAuth(s, b, 'private-str'));
  const since = b.mark();
  a.send({ event: 'client-s', channel: 'private-str', data: '{"from":"java"}' });
  const f = await b.waitFrame('client-s', 5000, { since });
  assert.equal(f.json.data, '{"from":"java"}', f.text);
});

it('presence: the receiver gets metadata.user_id of the sender', async () => {
  const s = on.server;
  const a = await connectedClient(s, { presence: { user_id: 'alice', user_info: {} } });
  const b = await connectedClient(s, { presence: { user_id: 'bob', user_info: {} } });
  const chA = await subscribe(a, 'presence-chat');
  const chB = await subscribe(b, 'presence-chat');
  const got = new Promise((resolve) => chB.bind('client-hello', (data, meta) => resolve({ data, meta })));
  chA.trigger('client-hello', { text: 'hi' });
  const { data, meta } = await withTimeout(got, 5000, 'client-hello at bob');
  assert.deepEqual(data, { text: 'hi' });
  assert.equal(meta.user_id, 'alice');
  const sinceA = a.log.mark();
  await marker(s, a, 'presence-chat');
  assert.equal(a.log.find((m) => m.event === 'client-hello', sinceA), undefined);
});

it('public channel: client event refused with pusher:error and not relayed', async () => {
  const s = on.server;
  const a = await rawConnected(s);
  const b = await rawConnected(s);
  await rawSubscribe(a, 'public-chat');
  await rawSubscribe(b, 'public-chat');
  const sinceA = a.mark();
  const sinceB = b.mark();
  a.send({ event: 'client-nope', channel: 'public-chat', data: {} });
  assertErrorFrame(await a.waitFrame('pusher:error', 5000, { since: sinceA }));
  await newBackend(s).trigger('public-chat', 'marker', {});
  await b.waitFrame('marker', 5000, { since: sinceB });
  assert.equal(b.frames.find((f) => f.event === 'client-nope', sinceB), undefined);
  assert.equal(a.closeInfo, null);
});

it('pusher-js on a public channel: refused with pusher:error, connection stays connected', async () => {
  const s = on.server;
  const a = await connectedClient(s);
  const ch = await subscribe(a, 'public-js');
  const since = a.log.mark();
  ch.trigger('client-nope', { x: 1 });
  const m = await nextMessage(a, 'pusher:error', { since });
  assert.equal(typeof m.data.message, 'string');
  assert.equal(a.connection.state, 'connected');
});

it('client messages disabled (default app settings): refused with pusher:error, not relayed', async () => {
  const s = off.server;
  const a = await connectedClient(s);
  const b = await connectedClient(s);
  const chA = await subscribe(a, 'private-off');
  await subscribe(b, 'private-off');
  const sinceA = a.log.mark();
  const sinceB = b.log.mark();
  chA.trigger('client-x', { y: 1 });
  const m = await nextMessage(a, 'pusher:error', { since: sinceA });
  assert.equal(typeof m.data.message, 'string');
  await marker(s, b, 'private-off');
  assert.equal(b.log.find((x) => x.event === 'client-x', sinceB), undefined);
  assert.equal(a.connection.state, 'connected');
});

it('sender not subscribed to the channel → pusher:error, not relayed', async () => {
  const s = on.server;
  const a = await rawConnected(s);
  const b = await rawConnected(s);
  await rawSubscribe(b, 'private-members', privAuth(s, b, 'private-members'));
  const sinceA = a.mark();
  const sinceB = b.mark();
  a.send({ event: 'client-intrude', channel: 'private-members', data: {} });
  assertErrorFrame(await a.waitFrame('pusher:error', 5000, { since: sinceA }));
  await newBackend(s).trigger('private-members', 'marker', {});
  await b.waitFrame('marker', 5000, { since: sinceB });
  assert.equal(b.frames.find((f) => f.event === 'client-intrude', sinceB), undefined);
});

it('event on a channel without the client- prefix from a client is not relayed', async () => {
  const s = on.server;
  const a = await rawConnected(s);
  const b = await rawConnected(s);
  await rawSubscribe(a, 'private-prefix', privAuth(s, a, 'private-prefix'));
  await rawSubscribe(b, 'private-prefix', privAuth(s, b, 'private-prefix'));
  const sinceB = b.mark();
  a.send({ event: 'server-like', channel: 'private-prefix', data: {} });
  await newBackend(s).trigger('private-prefix', 'marker', {});
  await b.waitFrame('marker', 5000, { since: sinceB });
  assert.equal(b.frames.find((f) => f.event === 'server-like', sinceB), undefined);
});

it('rate limit: a burst of 15 → at least one pusher:error 4301; the connection stays open', async () => {
  const s = on.server;
  const a = await connectedClient(s);
  const b = await connectedClient(s);
  const chA = await subscribe(a, 'private-burst');
  await subscribe(b, 'private-burst');
  const since = a.log.mark();
  for (let i = 0; i < 15; i++) chA.trigger('client-burst', { i });
  const err = await nextMessage(a, 'pusher:error', { since, where: (m) => m.data?.code === 4301 });
  assert.equal(typeof err.data.message, 'string');
  // A ping after the burst: its pong means all 15 frames were processed.
  const pingSince = a.log.mark();
  a.send_event('pusher:ping', {});
  await nextMessage(a, 'pusher:pong', { since: pingSince });
  // Everything not rejected reached b; nothing beyond the 10/s budget (+1 for
  // refill during the burst) got through.
  await marker(s, b, 'private-burst');
  const rejected = errorsSince(a, since).filter((m) => m.data?.code === 4301).length;
  const delivered = b.log.filter((m) => m.event === 'client-burst').length;
  assert.ok(delivered <= 11, `delivered ${delivered} of 15 in one burst`);
  assert.equal(delivered + rejected, 15, `delivered ${delivered} + rejected ${rejected}`);
  assert.equal(a.connection.state, 'connected');
  assert.deepEqual(a.states.filter((x) => x === 'connected').length, 1, `reconnected: ${a.states}`);
  // still usable
  const since2 = b.log.mark();
  await new Promise((r) => setTimeout(r, 1100)); // let the per-second budget refill (rate, not an event wait)
  chA.trigger('client-after', { ok: 1 });
  await nextMessage(b, 'client-after', { since: since2 });
});

it('raw: presence relay carries a top-level user_id string', async () => {
  const s = on.server;
  const pres = async (id) => {
    const sock = await rawConnected(s);
    const cd = JSON.stringify({ user_id: id, user_info: {} });
    await rawSubscribe(sock, 'presence-wire', {
      auth: `${s.app.key}:${hmac(s.app.secret, `${sock.socketId}:presence-wire:${cd}`)}`,
      channel_data: cd,
    });
    return sock;
  };
  const a = await pres('sender-7');
  const b = await pres('receiver-8');
  const since = b.mark();
  a.send({ event: 'client-ping', channel: 'presence-wire', data: { q: 1 } });
  const f = await b.waitFrame('client-ping', 5000, { since });
  assert.equal(f.json.user_id, 'sender-7', f.text);
  assert.deepEqual(JSON.parse(f.json.data), { q: 1 });
});

it('client event with data over 10 KB → pusher:error, not relayed', async () => {
  const s = on.server;
  const a = await rawConnected(s);
  const b = await rawConnected(s);
  await rawSubscribe(a, 'private-big', privAuth(s, a, 'private-big'));
  await rawSubscribe(b, 'private-big', privAuth(s, b, 'private-big'));
  const sinceA = a.mark();
  const sinceB = b.mark();
  a.send({ event: 'client-big', channel: 'private-big', data: { blob: 'x'.repeat(11 * 1024) } });
  assertErrorFrame(await a.waitFrame('pusher:error', 5000, { since: sinceA }));
  await newBackend(s).trigger('private-big', 'marker', {});
  await b.waitFrame('marker', 5000, { since: sinceB });
  assert.equal(b.frames.find((f) => f.event === 'client-big', sinceB), undefined);
  assert.equal((await a.ping()).event, 'pusher:pong');
});
