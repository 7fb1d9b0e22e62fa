'use strict';
// Push provider credentials through the real binary: the encryption key
// from the environment, the signed API (raw signing and the npm `pusher`
// SDK), the unauthenticated VAPID key route, revocation, and no key
// material in any answer or log line.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { useServer, it } = require('../lib/harness');
const { newBackend } = require('../lib/clients');
const { signedRequest, plainRequest, sdkJson } = require('../lib/rest');

const ref = useServer({
  name: 'push-credentials',
  env: { PUSH_CREDENTIAL_ENCRYPTION_KEY: crypto.randomBytes(32).toString('base64') },
});
const base = () => `/apps/${ref.server.app.id}/push/credentials`;

it('APNs key and VAPID pair: stored, listed as metadata only, validated and revoked', async () => {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const p8 = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const keyLine = p8.split('\n')[1];

  let r = await signedRequest(ref.server, {
    method: 'PUT',
    path: `${base()}/apns`,
    body: { team_id: 'TEAM123456', key_id: 'KEY1234567', topic: 'com.example.app', p8 },
  });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.version, 1);
  assert.match(r.json.fingerprint, /^sha256:[0-9a-f]{16}$/);
  assert.ok(!r.text.includes(keyLine), 'the answer echoes the key');

  // The SDK signs any path under the app.
  const backend = newBackend(ref.server);
  const gen = await sdkJson(
    await backend.post({ path: '/push/credentials/webpush/generate', body: { subject: 'mailto:ops@example.com' } }),
  );
  assert.equal(gen.status, 201, gen.text);
  assert.equal(gen.json.vapid_key_id, 'v1');
  assert.equal(Buffer.from(gen.json.vapid_public_key, 'base64url').length, 65);
  assert.ok(!/private/.test(gen.text), `generate answers a private key: ${gen.text}`);

  const pub = await plainRequest(ref.server, `/apps/${ref.server.app.id}/push/client/web-vapid-public-key`);
  assert.equal(pub.status, 200, pub.text);
  assert.deepEqual(pub.json, { vapid_public_key: gen.json.vapid_public_key, key_id: 'v1' });

  const list = await sdkJson(await backend.get({ path: '/push/credentials' }));
  assert.equal(list.status, 200, list.text);
  const byProvider = Object.fromEntries(list.json.credentials.map((c) => [c.provider, c]));
  assert.equal(byProvider.apns.current_version, 1);
  assert.equal(byProvider.webpush.versions[0].status, 'active');
  assert.ok(!list.text.includes(keyLine) && !list.text.includes('sealed'), list.text);

  r = await signedRequest(ref.server, { method: 'POST', path: `${base()}/apns/validate` });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.ok, true, r.text);

  r = await signedRequest(ref.server, { method: 'DELETE', path: `${base()}/apns` });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { provider: 'apns', revoked: [1], current_version: 0 });

  r = await signedRequest(ref.server, { method: 'PUT', path: `${base()}/apns`, body: { p8: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' } });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error, 'invalid_credential');

  r = await signedRequest(ref.server, { method: 'GET', path: base(), secret: 'wrong' });
  assert.equal(r.status, 401, r.text);

  assert.ok(!ref.server.logsTail(3000).includes(keyLine), 'the key appears in the server log');
});

it('the CLI on a running server goes through the admin socket: a new VAPID key is served at once', async () => {
  const { runCli } = require('../lib/server');
  const app = ref.server.app.id;
  const before = await plainRequest(ref.server, `/apps/${app}/push/client/web-vapid-public-key`);
  const out = await runCli(['push', 'credentials', 'generate-vapid', '--app', app, '--subject', 'mailto:ops@example.com'], {
    dbPath: ref.server.dbPath,
  });
  const m = /Generated Web Push key (v\d+) .*\nvapid_public_key: (\S+)/.exec(out.stdout);
  assert.ok(m, out.stdout);
  const after = await plainRequest(ref.server, `/apps/${app}/push/client/web-vapid-public-key`);
  assert.deepEqual(after.json, { vapid_public_key: m[2], key_id: m[1] });
  assert.notEqual(after.json.key_id, before.json?.key_id);
  const list = await runCli(['push', 'credentials', 'list', '--app', app, '--provider', 'webpush', '--json'], {
    dbPath: ref.server.dbPath,
  });
  const [web] = JSON.parse(list.stdout);
  assert.equal(web.current_version, Number(m[1].slice(1)));
  assert.ok(web.versions.every((v) => v.created_by), list.stdout);
});
