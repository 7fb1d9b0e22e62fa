'use strict';
// Push provider credentials through the real binary: the encryption key
// from the environment, the signed API (raw signing and the npm `pusher`
// SDK), the unauthenticated VAPID key route, revocation, and no key
// material in any answer or log line.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { before, after } = require('node:test');
const { useServer, it } = require('../lib/harness');
const { newBackend } = require('../lib/clients');
const { signedRequest, plainRequest, sdkJson } = require('../lib/rest');

// A fake OAuth2 token endpoint: the operator's PUSH_FCM_TOKEN_URL (a
// service account's own token_uri must be Google's). PUSH_FCM_ENDPOINT away
// from the exact default used to lift that rule.
const tokenRequests = [];
const tokenServer = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    tokenRequests.push({ path: req.url, form: new URLSearchParams(body) });
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ access_token: 't', expires_in: 3600, token_type: 'Bearer' }));
  });
});
const env = {
  PUSH_CREDENTIAL_ENCRYPTION_KEY: crypto.randomBytes(32).toString('base64'),
  PUSH_FCM_ENDPOINT: 'https://fcm.googleapis.com/',
};
before(async () => {
  await new Promise((resolve) => tokenServer.listen(0, '127.0.0.1', resolve));
  env.PUSH_FCM_TOKEN_URL = `http://127.0.0.1:${tokenServer.address().port}/token`;
});
after(() => tokenServer.close());

const ref = useServer({ name: 'push-credentials', env });
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

it('FCM: a token_uri other than Google\'s is refused; live validation fetches from PUSH_FCM_TOKEN_URL only', async () => {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const serviceAccount = (tokenUri) => ({
    type: 'service_account',
    project_id: 'demo-project',
    private_key_id: 'k1',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    client_email: 'push@demo-project.iam.gserviceaccount.com',
    token_uri: tokenUri,
  });
  let r = await signedRequest(ref.server, {
    method: 'PUT',
    path: `${base()}/fcm`,
    body: { service_account: serviceAccount(env.PUSH_FCM_TOKEN_URL.replace('/token', '/other')) },
  });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error, 'invalid_credential');
  assert.match(r.json.description, /token_uri/);

  r = await signedRequest(ref.server, {
    method: 'PUT',
    path: `${base()}/fcm`,
    body: { service_account: serviceAccount('https://oauth2.googleapis.com/token') },
  });
  assert.equal(r.status, 201, r.text);
  r = await signedRequest(ref.server, { method: 'POST', path: `${base()}/fcm/validate`, body: { live: true } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.ok, true, r.text);
  assert.equal(r.json.live, true, r.text);
  assert.deepEqual(tokenRequests.map((t) => t.path), ['/token']);
  assert.equal(tokenRequests[0].form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:jwt-bearer');
});
