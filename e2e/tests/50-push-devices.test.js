'use strict';
// Push devices: a web device registers through the client API, binds a user
// and subscribes to a private channel with signatures from the `pusher`
// server SDK over challenges (pseudo socket ids); bad and replayed
// signatures are refused; the device secret is never shown again.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { useServer, it } = require('../lib/harness');
const { newBackend } = require('../lib/clients');
const { signedRequest } = require('../lib/rest');

const ref = useServer({ name: 'push-devices', env: { PUSH_ALLOW_LOCAL_WEB_PUSH_ENDPOINTS: 'true' } });

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A browser PushSubscription with real keys, at a loopback endpoint. */
function subscription(tag) {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.generateKeys();
  return {
    endpoint: `http://127.0.0.1:${ref.server.port}/x/${tag}`,
    keys: { p256dh: b64url(ecdh.getPublicKey()), auth: b64url(crypto.randomBytes(16)) },
  };
}

/** Calls the client API; every answer's text is kept in `seen`. */
const seen = [];
async function client(method, path, { secret, body } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (secret) headers['x-device-secret'] = secret;
  const res = await fetch(`${ref.server.httpUrl}/apps/${ref.server.app.id}/push/client${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  seen.push(text);
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, text, json };
}

function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json?.error, code, r.text);
  assert.equal(typeof r.json?.description, 'string', r.text);
}

it('a web device binds a user and subscribes to a private channel with pusher SDK signatures', async () => {
  const tag = crypto.randomBytes(12).toString('hex');
  const reg = await client('POST', '/devices', { body: { platform: 'web', subscription: subscription(tag) } });
  assert.equal(reg.status, 201, reg.text);
  const { id, device_secret: secret, socket_id: regSocket } = reg.json;
  assert.match(regSocket, /^\d+\.\d+$/);
  assert.ok(secret.length >= 40, reg.text);
  seen.length = 0; // the registration answer is the only one with the secret

  const pusher = newBackend(ref.server);
  const impostor = newBackend(ref.server, { secret: 'not-the-app-secret' });

  // A signature made with the wrong secret is refused and does not use up
  // the challenge.
  const bad = impostor.authenticateUser(regSocket, { id: 'u1' });
  assertError(await client('PUT', `/devices/${id}/user`, { secret, body: { socket_id: regSocket, ...bad } }), 401, 'invalid_signature');

  // The customer's user-auth endpoint signs the pseudo socket id exactly as
  // it would sign a pusher:signin.
  const signin = pusher.authenticateUser(regSocket, { id: 'u1', user_info: { name: 'Ada' } });
  const bound = await client('PUT', `/devices/${id}/user`, { secret, body: { socket_id: regSocket, ...signin } });
  assert.equal(bound.status, 200, bound.text);
  assert.equal(bound.json.user_id, 'u1');

  // The same signed body again: a replay.
  assertError(await client('PUT', `/devices/${id}/user`, { secret, body: { socket_id: regSocket, ...signin } }), 401, 'invalid_challenge');

  // A private channel: a fresh challenge, signed as for pusher:subscribe.
  const ch = await client('POST', `/devices/${id}/challenge`, { secret });
  assert.equal(ch.status, 200, ch.text);
  const sid = ch.json.socket_id;
  assert.match(sid, /^\d+\.\d+$/);
  assert.notEqual(sid, regSocket);
  const wrongChannel = pusher.authorizeChannel(sid, 'private-other');
  assertError(await client('PUT', `/devices/${id}/channels/private-orders`, { secret, body: { socket_id: sid, ...wrongChannel } }), 401, 'invalid_signature');
  const auth = pusher.authorizeChannel(sid, 'private-orders');
  const sub = await client('PUT', `/devices/${id}/channels/private-orders`, { secret, body: { socket_id: sid, ...auth } });
  assert.equal(sub.status, 200, sub.text);
  assert.equal(sub.json.channel, 'private-orders');
  assertError(await client('PUT', `/devices/${id}/channels/private-orders`, { secret, body: { socket_id: sid, ...auth } }), 401, 'invalid_challenge');

  // Interests that look like private channels are refused.
  assertError(await client('POST', `/devices/${id}/interests/private-orders`, { secret }), 400, 'invalid_interest');
  // Without the secret the device is not reachable.
  assertError(await client('GET', `/devices/${id}`, {}), 401, 'unauthorized');

  // The backend sees the device through the signed server API.
  const dev = await signedRequest(ref.server, { path: `/apps/${ref.server.app.id}/push/devices/${id}` });
  seen.push(dev.text);
  assert.equal(dev.status, 200, dev.text);
  assert.equal(dev.json.user_id, 'u1');
  assert.deepEqual(dev.json.channels.map((c) => c.channel), ['private-orders']);
  assert.equal(dev.json.token_last6, tag.slice(-6));
  assert.ok(!dev.text.includes(tag), 'the server API shows the whole endpoint');
  const byChannel = await signedRequest(ref.server, { path: `/apps/${ref.server.app.id}/push/channels/private-orders/devices` });
  seen.push(byChannel.text);
  assert.deepEqual(byChannel.json.items.map((d) => d.id), [id], byChannel.text);

  const mine = await client('GET', `/devices/${id}`, { secret });
  assert.equal(mine.status, 200, mine.text);

  for (const text of seen) assert.ok(!text.includes(secret), `the device secret came back: ${text}`);
  const logs = ref.server.lines.join('\n');
  assert.ok(!logs.includes(secret), 'the device secret appears in the server log');
  assert.ok(!logs.includes(tag), 'the subscription endpoint appears in the server log');
});

it('the backend registers, lists and revokes through the signed server API (pusher SDK get/post)', async () => {
  const pusher = newBackend(ref.server);
  const token = `fcm-${crypto.randomBytes(16).toString('hex')}`;
  const res = await pusher.post({
    path: '/push/devices',
    body: { platform: 'fcm', token, user_id: 'u9', interests: ['news'], channels: ['private-room'] },
  });
  const created = await res.json();
  assert.equal(res.status, 201, JSON.stringify(created));
  assert.equal(created.token_last6, token.slice(-6));
  assert.ok(!JSON.stringify(created).includes(token), 'the token came back');

  const list = await (await pusher.get({ path: '/push/users/u9/devices' })).json();
  assert.deepEqual(list.items.map((d) => d.id), [created.id]);

  const bad = await signedRequest(ref.server, { method: 'POST', path: `/apps/${ref.server.app.id}/push/devices`, secret: 'wrong', body: { platform: 'fcm', token: 'x' } });
  assert.equal(bad.status, 401, bad.text);

  const revoke = await signedRequest(ref.server, {
    method: 'DELETE',
    path: `/apps/${ref.server.app.id}/push/channels/private-room/subscriptions`,
    params: { user_id: 'u9' },
  });
  assert.equal(revoke.status, 200, revoke.text);
  assert.deepEqual(revoke.json, { revoked: 1, device_ids: [created.id] });
  const after = await signedRequest(ref.server, { path: `/apps/${ref.server.app.id}/push/channels/private-room/devices` });
  assert.deepEqual(after.json.items, [], after.text);
});
