'use strict';
// Security and operations: no secrets in logs, TLS with certificate reload,
// rate limits (sockets per IP, auth failures, API per app), metrics, the
// audit log, and app changes and secret rotation on a running server.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const { execFileSync } = require('node:child_process');
const { test, after } = require('node:test');
const { it, installCleanup } = require('../lib/harness');
const { startServer, runCli, freePort } = require('../lib/server');
const { rawConnected, rawConnect, rawSubscribe } = require('../lib/raw');
const { expectRefusal } = require('../lib/assertions');
const { connectedClient, newClient, subscribe, newBackend, waitFor, Pusher } = require('../lib/clients');
const { signedRequest, sdkError } = require('../lib/rest');
const { waitFor: poll } = require('../lib/wait');

installCleanup();
const started = [];
async function server(opts) {
  const s = await startServer(opts);
  started.push(s);
  return s;
}
after(async () => {
  for (const s of started) {
    await s.stop();
    s.cleanupFiles();
  }
});

const hex64 = () => crypto.randomBytes(32).toString('hex');

it('logs never contain the app secret or a full signature', async () => {
  const secret = 'e2e-s3cret-Zq7wX';
  const s = await server({
    name: 'logs',
    env: {
      SOCKUDO_DEFAULT_APP_SECRET: secret,
      SOCKUDO_DEFAULT_APP_ENABLE_USER_AUTHENTICATION: 'true',
      SOCKUDO_DEFAULT_APP_ALLOWED_ORIGINS: 'https://good.example.com',
      LOG_LEVEL: 'debug',
    },
  });
  const sent = [];
  // REST with a wrong secret, a stale timestamp and a forged signature.
  for (const o of [{ secret: 'wrong' }, { timestamp: 1000 }, { signatureOverride: hex64() }]) {
    const r = await signedRequest(s, { method: 'GET', path: `/apps/${s.app.id}/channels`, ...o });
    assert.equal(r.status, 401);
  }
  // Channel auth and signin with bad signatures.
  const sock = await rawConnected(s);
  const badSig = hex64();
  sent.push(badSig);
  const since = sock.mark();
  sock.send({ event: 'pusher:subscribe', data: { channel: 'private-x', auth: `${s.app.key}:${badSig}` } });
  const err = await sock.waitFrame('pusher:subscription_error', 5000, { since });
  assert.ok(!err.text.includes(sock.socketId), `the string to sign leaks without DEBUG: ${err.text}`);
  const signinSig = hex64();
  sent.push(signinSig);
  sock.send({ event: 'pusher:signin', data: { auth: `${s.app.key}:${signinSig}`, user_data: '{"id":"u"}' } });
  await sock.closed(5000);
  await expectRefusal(s, 4009, { origin: 'https://evil.example.com' });
  // A good private subscription and trigger, whose signatures must not be logged either.
  const good = await connectedClient(s);
  await subscribe(good, 'private-ok');
  await newBackend(s).trigger('private-ok', 'e', { a: 1 });
  await s.stop();
  const logs = s.lines.join('\n');
  assert.ok(logs.length > 0);
  assert.ok(!logs.includes(secret), 'the app secret appears in the logs');
  for (const sig of sent) assert.ok(!logs.includes(sig), `a signature appears in the logs: ${sig}`);
  const hexRuns = logs.match(/[0-9a-f]{64}/g) || [];
  assert.deepEqual(hexRuns, [], `64-hex-digit strings (signatures?) in the logs: ${hexRuns.slice(0, 3)}`);
});

// gencert (a Go program beside the suite) writes a self-signed pair for
// 127.0.0.1; no openssl needed. Built once per run.
const GENCERT = path.join(os.tmpdir(), `sockudo-gencert-${process.pid}`);
function makeCert(dir, cn) {
  if (!fs.existsSync(GENCERT)) {
    execFileSync('go', ['build', '-o', GENCERT, './e2e/gencert'], { cwd: path.resolve(__dirname, '../..'), stdio: 'inherit' });
  }
  execFileSync(GENCERT, ['-dir', dir, '-cn', cn], { stdio: 'inherit' });
  return { key: path.join(dir, 'key.pem'), cert: path.join(dir, 'cert.pem') };
}

function peerCN(port) {
  return new Promise((resolve, reject) => {
    const c = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cn = c.getPeerCertificate().subject.CN;
      c.end();
      resolve(cn);
    });
    c.on('error', reject);
  });
}

it('TLS: pusher-js with forceTLS connects over wss, the SDK publishes over https, and a renewed certificate is served without restart', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockudo-tls-'));
  const { key, cert } = makeCert(dir, 'first');
  // The certificate is self-signed: trust it for this test process only.
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  const s = await server({ name: 'tls', env: { SSL_ENABLED: 'true', SSL_CERT_PATH: cert, SSL_KEY_PATH: key } });
  const client = newClient(s, { pusherOptions: { forceTLS: true, wssPort: s.port, enabledTransports: ['ws', 'wss'] } });
  await poll(() => client.connection.state === 'connected', 10000, 'wss connection');
  const ch = await subscribe(client, 'tls-channel');
  const got = waitFor(ch, 'secure', 5000);
  await newBackend(s, { useTLS: true }).trigger('tls-channel', 'secure', { ok: true });
  assert.deepEqual(await got, { ok: true });

  assert.equal(await peerCN(s.port), 'first');
  makeCert(dir, 'second');
  await poll(async () => (await peerCN(s.port)) === 'second', 10000, 'the renewed certificate');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(GENCERT, { force: true });
});

it('rate limits: sockets per IP (4100), auth failures (429 then close 4009), API publishes per app (429 with headers)', async () => {
  const s = await server({
    name: 'limits',
    env: {
      RATE_LIMITER_ENABLED: 'true',
      RATE_LIMITER_WS_MAX_REQUESTS: '4',
      RATE_LIMITER_API_MAX_REQUESTS: '2',
      RATE_LIMITER_AUTH_MAX_FAILURES: '2',
    },
  });
  const sock = await rawConnected(s);
  await rawConnected(s);
  await rawConnected(s);
  await rawConnected(s);
  await expectRefusal(s, 4100);

  const statuses = [];
  for (let i = 0; i < 3; i++) {
    const since = sock.mark();
    sock.send({ event: 'pusher:subscribe', data: { channel: `private-f${i}`, auth: `${s.app.key}:${hex64()}` } });
    const f = await sock.waitFrame('pusher:subscription_error', 5000, { since });
    statuses.push(f.json.data.status);
  }
  assert.deepEqual(statuses, [401, 401, 429]);
  // Over the limit the socket is closed too, with 4009: pusher-js does not
  // reconnect into the same failing auth.
  const close = await sock.closed(5000);
  assert.equal(close.code, 4009);

  const backend = newBackend(s);
  await backend.trigger('c', 'e', 1);
  await backend.trigger('c', 'e', 2);
  const e = await sdkError(backend.trigger('c', 'e', 3));
  assert.equal(e.status, 429);
  const raw = await signedRequest(s, { method: 'POST', path: `/apps/${s.app.id}/events`, body: { name: 'e', channel: 'c', data: '4' } });
  assert.equal(raw.status, 429);
  assert.equal(raw.headers.get('ratelimit-limit'), '2');
  assert.equal(raw.headers.get('ratelimit-remaining'), '0');
  assert.ok(Number(raw.headers.get('retry-after')) >= 1);
  assert.ok(raw.json && raw.json.error, `429 body: ${raw.text}`);
  // Reads have their own budget.
  const read = await signedRequest(s, { method: 'GET', path: `/apps/${s.app.id}/channels` });
  assert.equal(read.status, 200);
});

it('behind a trusted proxy: a budget per forwarded client, one per IPv6 /64; other peers\' headers are ignored', async () => {
  // The first frame tells: connection_established, or pusher:error 4100 when over the budget.
  const firstEvent = async (s, xff) => {
    const sock = await rawConnect(s, { headers: { 'X-Forwarded-For': xff } });
    return sock.first.event === 'pusher:connection_established' ? 'ok' : `${sock.first.event} ${sock.first.text}`;
  };
  const proxied = await server({ name: 'proxied', env: { RATE_LIMITER_ENABLED: 'true', TRUSTED_PROXIES: '127.0.0.1', RATE_LIMITER_WS_MAX_REQUESTS: '2' } });
  const got = [];
  for (const xff of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff::3', '2001:db8:1:3::1', '203.0.113.1', '203.0.113.2']) {
    got.push(await firstEvent(proxied, xff));
  }
  assert.deepEqual(got.map((g) => (g === 'ok' ? 'ok' : 'refused')), ['ok', 'ok', 'refused', 'ok', 'ok', 'ok'], got.join('\n'));
  // Without TRUSTED_PROXIES the header is nobody's word: every socket counts against the peer.
  const direct = await server({ name: 'direct', env: { RATE_LIMITER_ENABLED: 'true', RATE_LIMITER_WS_MAX_REQUESTS: '2' } });
  const d = [];
  for (const xff of ['203.0.113.1', '203.0.113.2', '203.0.113.3']) d.push(await firstEvent(direct, xff));
  assert.deepEqual(d.map((g) => (g === 'ok' ? 'ok' : 'refused')), ['ok', 'ok', 'refused'], d.join('\n'));
});

it('HTTP API: a copy of a signed write gets 409 with the replay cache; refusals past the failure budget get 429 unaudited', async () => {
  const s = await server({ name: 'replay', env: { RATE_LIMITER_ENABLED: 'true', HTTP_API_REPLAY_CACHE_ENABLED: 'true', RATE_LIMITER_AUTH_MAX_FAILURES: '3' } });
  const publish = { method: 'POST', path: `/apps/${s.app.id}/events`, body: { name: 'e', channel: 'c', data: 'once' } };
  const timestamp = Math.floor(Date.now() / 1000);
  const first = await signedRequest(s, { ...publish, timestamp });
  assert.equal(first.status, 200, first.text);
  const copy = await signedRequest(s, { ...publish, timestamp });
  assert.equal(copy.status, 409, copy.text);
  assert.ok(copy.json && copy.json.error, copy.text);
  // Re-signed (a later timestamp), the same event is a new request.
  assert.equal((await signedRequest(s, { ...publish, timestamp: timestamp + 1 })).status, 200);

  // The copy counted as one refusal; two more are answered 401, the rest 429.
  const statuses = [];
  for (let i = 0; i < 6; i++) {
    const path = i % 2 ? '/apps/no-such-app/channels' : `/apps/${s.app.id}/channels`;
    statuses.push((await signedRequest(s, { method: 'GET', path, secret: 'wrong' })).status);
  }
  assert.deepEqual(statuses, [401, 401, 429, 429, 429, 429]);
  let denied = [];
  await poll(async () => {
    const r = await runCli(['audit', 'list', '--action', 'api_signature_denied', '--json'], { dbPath: s.dbPath });
    denied = JSON.parse(r.stdout);
    return denied.length >= 3;
  }, 5000, 'audit entries');
  assert.equal(denied.length, 3, JSON.stringify(denied));
});

it('metrics and the audit log record refusals without secrets or channel names in labels', async () => {
  const metricsPort = await freePort();
  const s = await server({ name: 'metrics', env: { METRICS_ENABLED: 'true', METRICS_HOST: '127.0.0.1', METRICS_PORT: String(metricsPort) } });
  const sock = await rawConnected(s);
  const since = sock.mark();
  sock.send({ event: 'pusher:subscribe', data: { channel: 'private-audited', auth: `${s.app.key}:${hex64()}` } });
  await sock.waitFrame('pusher:subscription_error', 5000, { since });
  await signedRequest(s, { method: 'GET', path: `/apps/${s.app.id}/channels`, secret: 'wrong' });

  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  assert.match(text, /sockudo_connections\{app_id="app-id"\} 1/);
  assert.match(text, /sockudo_auth_failures_total\{reason="channel_signature"\} 1/);
  assert.match(text, /sockudo_api_signature_failures_total\{reason="signature"\} 1/);
  assert.match(text, /sockudo_webhook_queue_depth 0/);
  assert.ok(!text.includes('private-audited') && !text.includes(s.app.secret));

  // The audit writer flushes within 200 ms.
  let entries = [];
  await poll(async () => {
    const r = await signedRequest(s, { method: 'GET', path: `/apps/${s.app.id}/audit` });
    entries = (r.json && r.json.entries) || [];
    return entries.length >= 2;
  }, 5000, 'audit entries');
  const actions = entries.map((e) => `${e.action} ${e.channel || ''}`.trim());
  assert.ok(actions.includes('auth_denied private-audited'), JSON.stringify(entries));
  assert.ok(actions.includes('api_signature_denied'), JSON.stringify(entries));
  assert.ok(!JSON.stringify(entries).includes(s.app.secret));

  // A flood of badly signed requests from one IP is one entry counting on,
  // not one entry per request (issue 8: 3,000 requests wrote 3,005).
  for (let i = 0; i < 300; i++) {
    await signedRequest(s, { method: 'GET', path: `/apps/${s.app.id}/channels`, secret: 'wrong' });
  }
  let denied = [];
  await poll(async () => {
    const r = await signedRequest(s, { method: 'GET', path: `/apps/${s.app.id}/audit` });
    entries = (r.json && r.json.entries) || [];
    denied = entries.filter((e) => e.action === 'api_signature_denied');
    return denied.reduce((n, e) => n + (e.count || 1), 0) >= 301 || entries.some((e) => e.action === 'rate_limited');
  }, 5000, 'the flood counted');
  assert.ok(entries.length <= 6, `${entries.length} entries after 301 refusals: ${JSON.stringify(entries)}`);
  assert.ok(denied[0].count > 1 && denied[0].last_seen >= denied[0].time, JSON.stringify(denied));
});

it('apps created and secrets rotated with the CLI apply to the running server at once', async () => {
  const s = await server({ name: 'admin' });
  await runCli(['apps', 'create', '--id', 'live', '--key', 'live-key', '--secret', 'live-secret'], { dbPath: s.dbPath });
  const sock = await rawConnected(s, { key: 'live-key' });
  assert.ok(sock.socketId);

  const out = await runCli(['apps', 'rotate-secret', s.app.id, '--grace', '1h', '--json'], { dbPath: s.dbPath });
  const rotated = JSON.parse(out.stdout);
  assert.notEqual(rotated.secret, s.app.secret);
  // Both secrets sign REST calls during the grace period.
  for (const secret of [s.app.secret, rotated.secret]) {
    const r = await signedRequest(s, { method: 'GET', path: `/apps/${s.app.id}/channels`, secret });
    assert.equal(r.status, 200, `secret ${secret === s.app.secret ? 'old' : 'new'}: ${r.text}`);
  }
  // Revoke the old one now.
  const out2 = await runCli(['apps', 'rotate-secret', s.app.id, '--secret', 'third-secret', '--grace', '0', '--json'], { dbPath: s.dbPath });
  assert.equal(JSON.parse(out2.stdout).secret, 'third-secret');
  assert.equal((await signedRequest(s, { method: 'GET', path: `/apps/${s.app.id}/channels`, secret: rotated.secret })).status, 401);
  assert.equal((await signedRequest(s, { method: 'GET', path: `/apps/${s.app.id}/channels`, secret: 'third-secret' })).status, 200);

  const audit = await runCli(['audit', 'list', '--app', s.app.id, '--json'], { dbPath: s.dbPath });
  const actions = JSON.parse(audit.stdout).map((e) => e.action);
  assert.deepEqual(actions.filter((a) => a === 'secret_rotated').length, 2, audit.stdout);
  assert.ok(!audit.stdout.includes('third-secret'));
});
