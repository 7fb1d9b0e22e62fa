'use strict';
// pusher:ping / pusher:pong in both directions (ACTIVITY_TIMEOUT=1).

const assert = require('node:assert/strict');
const { useServer, it } = require('../lib/harness');
const { rawConnected } = require('../lib/raw');
const { connectedClient, subscribe, newBackend, nextMessage } = require('../lib/clients');

const ref = useServer({ name: 'ping', env: { ACTIVITY_TIMEOUT: '1' } });

it('client pusher:ping → {"event":"pusher:pong","data":"{}"}', async () => {
  const sock = await rawConnected(ref.server);
  const pong = await sock.ping();
  assert.deepEqual(pong.json, { event: 'pusher:pong', data: '{}' }, pong.text);
});

it('activity_timeout in the handshake is ACTIVITY_TIMEOUT (1)', async () => {
  const sock = await rawConnected(ref.server);
  assert.equal(sock.activityTimeout, 1);
});

it('server sends pusher:ping to a silent socket; answering pong keeps it open', async () => {
  const sock = await rawConnected(ref.server);
  const t0 = Date.now();
  const ping1 = await sock.waitFrame('pusher:ping', 5000);
  assert.ok(Date.now() - t0 >= 800, `pinged after ${Date.now() - t0} ms, before ACTIVITY_TIMEOUT (1 s) of silence`);
  assert.ok(
    ping1.json.data === undefined ||
      ping1.json.data === '{}' ||
      (typeof ping1.json.data === 'object' && ping1.json.data !== null),
    `server ping data: ${ping1.text}`,
  );
  // Answer it. The pong timeout (30 s) is too long for the suite, so only
  // check that the answer is taken and the socket keeps working.
  sock.send({ event: 'pusher:pong', data: {} });
  const pong = await sock.ping();
  assert.equal(pong.event, 'pusher:pong');
  assert.equal(sock.closeInfo, null, `socket closed: ${JSON.stringify(sock.closeInfo)}`);
});

it('a socket that keeps talking is not pinged before ACTIVITY_TIMEOUT of silence', async () => {
  const sock = await rawConnected(ref.server);
  // Ping every 300 ms for ~2.4 s: the server always sees activity within 1 s.
  const since = sock.mark();
  for (let i = 0; i < 8; i++) {
    await sock.ping();
    await new Promise((r) => setTimeout(r, 300)); // pacing the client's own traffic, not waiting for an event
  }
  assert.equal(sock.frames.find((f) => f.event === 'pusher:ping', since), undefined, 'pinged an active socket');
});

it('pusher-js stays connected across several activity periods and still receives events', async () => {
  const s = ref.server;
  const client = await connectedClient(s);
  await subscribe(client, 'ping-channel');
  // pusher-js pings after 1 s of silence (or answers the server's pings):
  // wait until two ping/pong exchanges have passed through it.
  await client.log.waitFor(
    () => client.log.filter((m) => m.event === 'pusher:ping' || m.event === 'pusher:pong').length >= 2,
    6000,
    'two ping/pong messages',
  );
  const since2 = client.log.mark();
  await newBackend(s).trigger('ping-channel', 'still-here', { ok: true });
  const m = await nextMessage(client, 'still-here', { since: since2 });
  assert.deepEqual(m.data, { ok: true });
  assert.equal(client.connection.state, 'connected');
  assert.equal(client.states.filter((x) => x === 'connected').length, 1, `reconnected: ${client.states}`);
});
