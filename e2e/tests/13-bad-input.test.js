'use strict';
// Bad input on a raw socket: answered with pusher:error, never a close.

const assert = require('node:assert/strict');
const { useServer, it } = require('../lib/harness');
const { rawConnected, rawSubscribe } = require('../lib/raw');
const { newBackend } = require('../lib/clients');
const { assertErrorFrame } = require('../lib/assertions');

const ref = useServer({ name: 'bad-input', env: { WEBSOCKET_MAX_PAYLOAD_KB: '1' } });

/** Sends something via send(sock), expects a pusher:error, then proves the socket is alive. */
async function expectErrorAndAlive(send, label) {
  const sock = await rawConnected(ref.server);
  const since = sock.mark();
  send(sock);
  const f = await sock.waitFrame('pusher:error', 5000, { since }).catch((e) => {
    e.message = `${label}: ${e.message}`;
    throw e;
  });
  assertErrorFrame(f);
  const pong = await sock.ping().catch((e) => {
    e.message = `${label}: socket not usable after the error (close ${JSON.stringify(sock.closeInfo)}): ${e.message}`;
    throw e;
  });
  assert.equal(pong.event, 'pusher:pong');
  assert.equal(sock.closeInfo, null, `${label}: socket closed ${JSON.stringify(sock.closeInfo)}`);
  return { sock, error: f };
}

it('malformed JSON → pusher:error, socket stays open', async () => {
  await expectErrorAndAlive((s) => s.sendText('{"event":"pusher:ping",'), 'malformed JSON');
});

it('JSON that is not an object → pusher:error', async () => {
  for (const text of ['[1,2,3]', '"just a string"', 'null', '42']) {
    await expectErrorAndAlive((s) => s.sendText(text), `frame ${text}`);
  }
});

it('object without an event → pusher:error', async () => {
  await expectErrorAndAlive((s) => s.sendText('{"data":{}}'), 'no event');
});

it('binary frame → pusher:error, never a 1003 close', async () => {
  await expectErrorAndAlive(
    (s) => s.sendBinary(Buffer.from('{"event":"pusher:ping","data":{}}')),
    'binary frame',
  );
});

it('unknown pusher: event → pusher:error', async () => {
  await expectErrorAndAlive((s) => s.send({ event: 'pusher:does_not_exist', data: {} }), 'unknown event');
});

it('oversized frame (2 KB over a 1 KB WEBSOCKET_MAX_PAYLOAD_KB) → pusher:error, socket stays open', async () => {
  const { error } = await expectErrorAndAlive(
    (s) => s.send({ event: 'pusher:ping', data: { pad: 'x'.repeat(2048) } }),
    'oversized frame',
  );
  assert.ok(error.json.data.message.length > 0);
});

it('a frame just under the payload limit is processed normally', async () => {
  const sock = await rawConnected(ref.server);
  const since = sock.mark();
  sock.send({ event: 'pusher:subscribe', data: { auth: '', channel: 'under-limit', pad: 'x'.repeat(700) } });
  await sock.waitFrame('pusher_internal:subscription_succeeded', 5000, { since });
});

it('duplicate subscribe → pusher:error; the subscription still delivers once', async () => {
  const sock = await rawConnected(ref.server);
  await rawSubscribe(sock, 'dup-chan');
  const since = sock.mark();
  sock.send({ event: 'pusher:subscribe', data: { auth: '', channel: 'dup-chan' } });
  const f = await sock.waitFrame(
    (x) => x.event === 'pusher:error' || x.event === 'pusher:subscription_error',
    5000,
    { since },
  );
  assert.equal(f.event, 'pusher:error', `duplicate subscribe answered with ${f.text}`);
  assertErrorFrame(f);
  await newBackend(ref.server).trigger('dup-chan', 'once', {});
  await newBackend(ref.server).trigger('dup-chan', 'marker', {});
  await sock.waitFrame('marker', 5000, { since });
  assert.equal(sock.frames.filter((x) => x.event === 'once', since).length, 1);
  assert.equal(sock.frames.find((x) => x.event === 'pusher_internal:subscription_succeeded', since), undefined);
});

it('unsubscribe without a subscription → no close, socket stays usable', async () => {
  const sock = await rawConnected(ref.server);
  sock.send({ event: 'pusher:unsubscribe', data: { channel: 'never-subscribed' } });
  const pong = await sock.ping();
  assert.equal(pong.event, 'pusher:pong');
  assert.equal(sock.closeInfo, null);
});

it('subscribe data sent as a JSON string (non-JS clients) is accepted', async () => {
  const sock = await rawConnected(ref.server);
  const since = sock.mark();
  sock.sendText(JSON.stringify({ event: 'pusher:subscribe', data: JSON.stringify({ channel: 'string-data' }) }));
  const f = await sock.waitFrame('pusher_internal:subscription_succeeded', 5000, { since });
  assert.equal(f.json.channel, 'string-data');
});

it('subscribe with an invalid channel name → pusher:subscription_error status 400 (spec §10)', async () => {
  for (const name of ['bad name', 'x'.repeat(201), 'star*']) {
    const sock = await rawConnected(ref.server);
    const since = sock.mark();
    sock.send({ event: 'pusher:subscribe', data: { auth: '', channel: name } });
    const f = await sock.waitFrame(
      (x) =>
        x.event === 'pusher:error' ||
        x.event === 'pusher:subscription_error' ||
        x.event === 'pusher_internal:subscription_succeeded',
      5000,
      { since },
    );
    assert.notEqual(f.event, 'pusher_internal:subscription_succeeded', `subscribed to invalid name ${name}`);
    assert.equal(f.event, 'pusher:subscription_error', f.text);
    assert.equal(f.json.channel, name, f.text);
    assert.equal(f.json.data.status, 400, f.text);
    assert.equal((await sock.ping()).event, 'pusher:pong');
  }
});

it('subscribe with a 200-char channel name is accepted', async () => {
  const sock = await rawConnected(ref.server);
  await rawSubscribe(sock, 'c'.repeat(200));
});

it('subscribe without a channel → error, socket stays open', async () => {
  await expectErrorAndAlive((s) => s.send({ event: 'pusher:subscribe', data: { auth: '' } }), 'no channel');
});

it('many bad frames in a row never close the socket', async () => {
  const sock = await rawConnected(ref.server);
  const since = sock.mark();
  for (let i = 0; i < 20; i++) {
    sock.sendText('not json');
    sock.sendBinary(Buffer.from([0, 1, 2, 3]));
  }
  await sock.frames.waitFor(
    () => sock.frames.filter((f) => f.event === 'pusher:error', since).length >= 40,
    5000,
    '40 pusher:error frames',
  );
  assert.equal((await sock.ping()).event, 'pusher:pong');
  assert.equal(sock.closeInfo, null);
});
