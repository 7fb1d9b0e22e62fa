'use strict';
// Refusals that need their own app settings: disabled app, connection quota,
// allowed origins.

const assert = require('node:assert/strict');
const { useServer, it } = require('../lib/harness');
const { rawConnect } = require('../lib/raw');
const { expectRefusal } = require('../lib/assertions');
const { newClient, waitState, waitFor } = require('../lib/clients');
const { signedRequest } = require('../lib/rest');

const disabled = useServer({ name: 'disabled', env: { SOCKUDO_DEFAULT_APP_ENABLED: 'false' } });
const quota = useServer({ name: 'quota', env: { SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS: '2' } });
const capacity = useServer({ name: 'capacity', env: { SOCKUDO_MAX_CONNECTIONS: '1' } });
const origins = useServer({
  name: 'origins',
  env: { SOCKUDO_DEFAULT_APP_ALLOWED_ORIGINS: 'https://good.example.com,https://*.example.org' },
});

/**
 * Connects to the quota server, retrying while sockets of a previous test are
 * still being released by the server (their close is asynchronous).
 */
function connectWhenFree(s) {
  return waitFor(
    async () => {
      const sock = await rawConnect(s);
      if (sock.first.event === 'pusher:connection_established') return sock;
      sock.close();
      return null;
    },
    5000,
    'a free connection slot',
  );
}

it('disabled app → pusher:error 4003 then close 4003', async () => {
  await expectRefusal(disabled.server, 4003);
});

it('disabled app → REST is refused with 403 and a JSON body', async () => {
  const s = disabled.server;
  const r = await signedRequest(s, {
    method: 'POST',
    path: `/apps/${s.app.id}/events`,
    body: { name: 'e', channels: ['c'], data: '{}' },
  });
  assert.equal(r.status, 403, r.text);
  assert.ok(r.json, `error body must be JSON: ${r.text}`);
});

it('pusher-js on a disabled app: error 4003, disconnected, no reconnect scheduled', async () => {
  const client = newClient(disabled.server);
  const err = await waitFor(client.connection, 'error', 5000, 'pusher-js error');
  await waitState(client, 'disconnected');
  assert.equal(err?.error?.data?.code, 4003, JSON.stringify(err));
  assert.ok(!client.connection.retryTimer, 'pusher-js scheduled a reconnect');
});

it('app connection quota: third socket → 4004; a freed slot is reusable', async () => {
  const s = quota.server;
  const a = await connectWhenFree(s);
  const b = await connectWhenFree(s);
  await expectRefusal(s, 4004);
  // a and b are unaffected
  assert.equal((await a.ping()).event, 'pusher:pong');
  assert.equal((await b.ping()).event, 'pusher:pong');
  // After one leaves, a new socket gets in (the server may need a moment to
  // notice the close, so poll with a deadline).
  a.close();
  await a.closed();
  const c = await connectWhenFree(s);
  assert.equal(c.first.event, 'pusher:connection_established');
});

it('pusher-js over the quota: error 4004 and no reconnect loop', async () => {
  const s = quota.server;
  await connectWhenFree(s);
  await connectWhenFree(s);
  const client = newClient(s);
  const err = await waitFor(client.connection, 'error', 5000, 'pusher-js error');
  await waitState(client, 'disconnected');
  assert.equal(err?.error?.data?.code, 4004, JSON.stringify(err));
  assert.ok(!client.connection.retryTimer, 'pusher-js scheduled a reconnect');
});

it('server over capacity (SOCKUDO_MAX_CONNECTIONS=1) → 4100 (pusher-js backs off and retries)', async () => {
  const s = capacity.server;
  const first = await connectWhenFree(s);
  await expectRefusal(s, 4100);
  assert.equal((await first.ping()).event, 'pusher:pong');
});

it('origin not allowed → pusher:error 4009 then close 4009', async () => {
  await expectRefusal(origins.server, 4009, { origin: 'https://evil.example.com' });
});

it('origin that only ends like an allowed wildcard is refused (4009)', async () => {
  await expectRefusal(origins.server, 4009, { origin: 'https://a.example.org.evil.com' });
});

it('allowed origin matched exactly → accepted', async () => {
  const sock = await rawConnect(origins.server, { origin: 'https://good.example.com' });
  assert.equal(sock.first.event, 'pusher:connection_established', sock.first.text);
});

it('allowed origin matched by a wildcard pattern → accepted', async () => {
  const sock = await rawConnect(origins.server, { origin: 'https://a.example.org' });
  assert.equal(sock.first.event, 'pusher:connection_established', sock.first.text);
});

it('same host, different scheme than the allowed origin → refused (4009)', async () => {
  await expectRefusal(origins.server, 4009, { origin: 'http://good.example.com' });
});
