'use strict';
// Graceful shutdown: SIGTERM closes every socket with 4200 and exits 0.

const assert = require('node:assert/strict');
const { it, installCleanup } = require('../lib/harness');
const { startServer } = require('../lib/server');
const { rawConnected, rawSubscribe } = require('../lib/raw');
const { connectedClient, subscribe, waitFor } = require('../lib/clients');
const { withTimeout } = require('../lib/wait');

installCleanup();

it('SIGTERM → every socket closed with 4200, process exits 0 within SHUTDOWN_GRACE_PERIOD', async () => {
  const grace = 3;
  const server = await startServer({ name: 'shutdown', env: { SHUTDOWN_GRACE_PERIOD: String(grace) } });
  try {
    const a = await rawConnected(server);
    const b = await rawConnected(server);
    await rawSubscribe(b, 'shutdown-channel');
    const client = await connectedClient(server);
    await subscribe(client, 'shutdown-js');
    const jsClosed = waitFor(
      () => client.states.slice(client.states.indexOf('connected') + 1).length > 0,
      (grace + 2) * 1000,
      'pusher-js leaving connected',
    );

    const t0 = Date.now();
    server.proc.kill('SIGTERM');
    const [ca, cb] = await Promise.all([a.closed((grace + 2) * 1000), b.closed((grace + 2) * 1000)]);
    assert.equal(ca.code, 4200, `close code: ${JSON.stringify(ca)}`);
    assert.equal(cb.code, 4200, `close code: ${JSON.stringify(cb)}`);
    const exit = await withTimeout(server.exited, (grace + 2) * 1000, 'process exit after SIGTERM');
    const took = Date.now() - t0;
    assert.deepEqual(exit, { code: 0, signal: null }, `exit: ${JSON.stringify(exit)}`);
    assert.ok(took <= (grace + 1) * 1000, `exit took ${took} ms with SHUTDOWN_GRACE_PERIOD=${grace}`);
    await jsClosed;
    client.disconnect(); // stop pusher-js from reconnecting to the dead port
  } finally {
    await server.stop();
    server.cleanupFiles();
  }
});

it('SIGTERM with no connections exits 0 quickly; the db is reusable by the next start', async () => {
  const first = await startServer({ name: 'shutdown-idle' });
  const t0 = Date.now();
  first.proc.kill('SIGTERM');
  const exit = await withTimeout(first.exited, 5000, 'exit');
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(Date.now() - t0 < 3000, `idle shutdown took ${Date.now() - t0} ms`);
  // the bbolt file was closed properly: a new server on the same db starts
  const { SockudoServer, freePort } = require('../lib/server');
  const port = await freePort();
  const again = new SockudoServer({
    name: 'restart',
    env: { ...first.env, PORT: String(port) },
    tmpDir: first.tmpDir,
    dbPath: first.dbPath,
    port,
  });
  try {
    await again.start();
    const sock = await rawConnected(again);
    assert.ok(sock.socketId);
  } finally {
    await again.stop();
    again.cleanupFiles();
  }
});
