'use strict';
// Push publishes end to end (README "Push publishes", spec push-api §4.4,
// §4.6, §4.7): the real binary sends to loopback fakes of APNs (HTTP/2
// cleartext), FCM (HTTP/1.1 + OAuth2 token endpoint) and a Web Push service
// that checks the VAPID JWT and decrypts the RFC 8291 body
// (lib/push-receiver.js). Publishes reach exactly their devices once; dry
// runs and idempotent retries send nothing; the trigger fallback pushes to
// offline users only; cancels before and during dispatch; a 503 is retried,
// a 410 removes the device, a delivery out of attempts is a replayable dead
// letter; schedules survive a restart and expire while the server is down;
// the audit chain verifies and a tampered copy does not; a SIGKILL in a
// 10,000-device fan-out loses nothing (deliveries/s, CPU and VmRSS are
// printed); limits answer 429/413/400.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { before, after } = require('node:test');
const { it, installCleanup } = require('../lib/harness');
const { newBackend, connectedClient, signin, subscribe, nextMessage } = require('../lib/clients');
const { signedRequest, sdkJson } = require('../lib/rest');
const { execFile } = require('node:child_process');
const { startServer, BIN } = require('../lib/server');
const { waitFor } = require('../lib/wait');
const { PushReceiver, p256PublicKey } = require('../lib/push-receiver');

installCleanup();

const receiver = new PushReceiver();
const CRED_KEY = crypto.randomBytes(32).toString('base64');
const FINISHED = new Set(['succeeded', 'partially_succeeded', 'failed', 'expired', 'cancelled', 'partially_cancelled']);

/** Every server started here, stopped (and its files removed) at the end. */
const servers = new Set();
async function start(opts) {
  const s = await startServer({
    ...opts,
    env: {
      PUSH_CREDENTIAL_ENCRYPTION_KEY: CRED_KEY,
      ...receiver.env(),
      ...(opts.env || {}),
    },
  });
  servers.add(s);
  return s;
}

/** Stops (SIGTERM, or SIGKILL with kill) and starts the same database on the same port. */
async function restart(s, { kill = false } = {}) {
  if (kill) {
    if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
    await s.exited;
  } else {
    const x = await s.stop();
    assert.equal(x.code, 0, `sockudo exited with ${JSON.stringify(x)} on SIGTERM`);
  }
  // Same env, database and port (as 20-webhooks restarts its servers).
  await s.start(15000);
  return s;
}

after(async () => {
  for (const s of servers) {
    await s.stop();
    s.cleanupFiles();
  }
  await receiver.stop();
});

const apiPath = (s, p, app = s.app) => `/apps/${app.id}${p}`;
const api = (s, method, p, body, o = {}) =>
  signedRequest(s, { method, path: apiPath(s, p, o.app), body, ...o, app: o.app || s.app });

/** Stores an APNs key, an FCM service account and a generated VAPID pair for app. */
async function putCredentials(s, app = s.app) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  receiver.apnsKeys.push(publicKey);
  let r = await api(
    s,
    'PUT',
    '/push/credentials/apns',
    { team_id: 'TEAM123456', key_id: 'KEY1234567', topic: 'com.example.app', p8: privateKey.export({ type: 'pkcs8', format: 'pem' }) },
    { app },
  );
  assert.equal(r.status, 201, r.text);
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  r = await api(
    s,
    'PUT',
    '/push/credentials/fcm',
    {
      service_account: {
        type: 'service_account',
        project_id: 'demo-project',
        private_key_id: 'k1',
        private_key: rsa.export({ type: 'pkcs8', format: 'pem' }),
        client_email: 'push@demo-project.iam.gserviceaccount.com',
        token_uri: 'https://oauth2.googleapis.com/token',
      },
    },
    { app },
  );
  assert.equal(r.status, 201, r.text);
  r = await api(s, 'POST', '/push/credentials/webpush/generate', { subject: 'mailto:ops@example.com' }, { app });
  assert.equal(r.status, 201, r.text);
  receiver.vapidKeys.set(r.json.vapid_public_key, p256PublicKey(Buffer.from(r.json.vapid_public_key, 'base64url')));
}

/**
 * Registers a device through the server API. Returns {id, platform, token}
 * where token is what the fake records it by (APNs/FCM token, web tag).
 */
async function addDevice(s, platform, extra = {}, app = s.app) {
  let body;
  let token;
  if (platform === 'apns') {
    token = crypto.randomBytes(32).toString('hex');
    body = { platform, token };
  } else if (platform === 'fcm') {
    token = `fcm-${crypto.randomBytes(12).toString('hex')}`;
    body = { platform, token };
  } else {
    const sub = receiver.webSubscription();
    token = sub.tag;
    body = { platform, subscription: { endpoint: sub.endpoint, keys: sub.keys } };
  }
  const r = await api(s, 'POST', '/push/devices', { ...body, ...extra }, { app });
  assert.equal(r.status, 201, r.text);
  return { id: r.json.id, platform, token };
}

/** The title a device would show, whatever the provider. */
function titleOf(d) {
  if (d.provider === 'apns') return d.payload.aps?.alert?.title;
  if (d.provider === 'fcm') return d.payload.notification?.title;
  return d.payload.notification?.title;
}

const tagged = (tag) => (d) => titleOf(d) === tag;

/**
 * Polls a publish until it is finished (a final state and finished_at: a
 * partially cancelled publish has its state at once and finished_at once
 * its deliveries in flight are answered); returns its status.
 */
async function finished(s, id, ms = 15000, app = s.app) {
  let last;
  return waitFor(
    async () => {
      const r = await api(s, 'GET', `/push/publishes/${id}`, undefined, { app });
      last = r.text;
      return r.status === 200 && FINISHED.has(r.json.state) && r.json.finished_at ? r.json : null;
    },
    ms,
    `publish ${id} finished`,
  ).catch((e) => {
    e.message += `\n  last status: ${last}`;
    throw e;
  });
}

function assertNoProblems() {
  assert.deepEqual(receiver.problems, [], 'the fake providers refused requests');
}

/** Asserts the deliveries tagged `tag` went to exactly `devices`, once each. */
function assertExactlyOnce(tag, devices) {
  const counts = receiver.countByToken(tagged(tag));
  const want = new Map(devices.map((d) => [d.token, 1]));
  assert.deepEqual(
    Object.fromEntries([...counts].sort()),
    Object.fromEntries([...want].sort()),
    `deliveries of ${tag} per device`,
  );
}

// ---------------------------------------------------------------------------
// The main server: every provider, rate limits on (a second and a third app
// with their own publish limits).

let S; // the main server
const dev = {};
const backend = () => newBackend(S);

before(async () => {
  await receiver.start();
  S = await start({
    name: 'push-publish',
    env: {
      SOCKUDO_DEFAULT_APP_ENABLE_USER_AUTHENTICATION: 'true',
      RATE_LIMITER_ENABLED: 'true',
      RATE_LIMITER_API_MAX_REQUESTS: '0',
      RATE_LIMITER_API_READ_MAX_REQUESTS: '0',
      PUSH_PUBLISH_RPS: '1000',
    },
    apps: [
      { id: 'rps-app', key: 'rps-key', secret: 'rps-secret', flags: ['--push-publishes-per-second', '2'] },
      { id: 'quota-app', key: 'quota-key', secret: 'quota-secret', flags: ['--push-notifications-per-day', '3'] },
    ],
  });
  await putCredentials(S);
  const add = (name, platform, extra) => addDevice(S, platform, extra).then((d) => (dev[name] = d));
  await Promise.all([
    add('u1apns', 'apns', { user_id: 'u1', channels: ['private-room'] }),
    add('u1fcm', 'fcm', { user_id: 'u1' }),
    add('u1web', 'web', { user_id: 'u1', interests: ['news'] }),
    add('u2fcm', 'fcm', { user_id: 'u2', interests: ['news'] }),
    add('u3web', 'web', { user_id: 'u3', channels: ['private-room'] }),
    add('anonApns', 'apns', { interests: ['news', 'sport'], channels: ['private-room'] }),
    add('anonWeb', 'web', { interests: ['sport'] }),
  ]);
});

it('publishes to users, interests and channels reach exactly their devices, once, with the content a device shows', async () => {
  const pusher = backend();
  const cases = [
    ['users', { users: ['u1', 'u2'] }, [dev.u1apns, dev.u1fcm, dev.u1web, dev.u2fcm]],
    ['interests', { interests: ['news'] }, [dev.u1web, dev.u2fcm, dev.anonApns]],
    ['channels', { channels: ['private-room'] }, [dev.u1apns, dev.u3web, dev.anonApns]],
  ];
  const ids = [];
  for (const [kind, recipients, want] of cases) {
    const tag = `t-${kind}-${crypto.randomBytes(4).toString('hex')}`;
    const res = await sdkJson(
      await pusher.post({
        path: `/push/publishes/${kind}`,
        body: {
          ...recipients,
          notification: { title: tag, body: 'Arrives Tuesday', deep_link: 'https://shop.example/o/7', data: { order: 7 } },
          collapse_key: 'order-7',
          ttl: 3600,
        },
      }),
    );
    assert.equal(res.status, 202, res.text);
    assert.match(res.json.publish_id, /^pub_/);
    assert.equal(res.json.publishId, res.json.publish_id);
    assert.equal(res.json.state, 'queued');
    assert.equal(res.json.expected_recipients, want.length, res.text);
    const st = await finished(S, res.json.publish_id);
    assert.equal(st.state, 'succeeded', JSON.stringify(st));
    assert.equal(st.counters.planned, want.length);
    assert.equal(st.counters.sent, want.length);
    assert.deepEqual(st.recipient, { kind, count: Object.values(recipients)[0].length });
    assertExactlyOnce(tag, want);
    ids.push({ tag, id: res.json.publish_id });
  }
  assertNoProblems();

  // What each device received, for the users publish.
  const got = receiver.filter(tagged(ids[0].tag));
  const web = got.find((d) => d.provider === 'web');
  assert.deepEqual(web.payload, {
    notification: { title: ids[0].tag, body: 'Arrives Tuesday', deep_link: 'https://shop.example/o/7' },
    data: { order: 7 },
  });
  assert.ok(Number(web.headers.ttl) > 3500 && Number(web.headers.ttl) <= 3600, web.headers.ttl);
  assert.ok(web.headers.topic, 'collapse_key becomes the Web Push Topic');
  assert.equal(web.headers.vapid_sub, 'mailto:ops@example.com');
  const apns = got.find((d) => d.provider === 'apns');
  assert.deepEqual(apns.payload.aps.alert, { title: ids[0].tag, body: 'Arrives Tuesday' });
  assert.equal(apns.payload.order, 7);
  assert.equal(apns.payload.deep_link, 'https://shop.example/o/7');
  assert.equal(apns.headers['apns-collapse-id'], 'order-7');
  assert.equal(apns.headers['apns-topic'], 'com.example.app');
  const fcm = got.find((d) => d.provider === 'fcm');
  assert.equal(fcm.payload.notification.body, 'Arrives Tuesday');
  assert.equal(fcm.payload.data.order, '7', 'FCM data values are strings');
  assert.equal(fcm.project, 'demo-project');

  const dels = await api(S, 'GET', `/push/publishes/${ids[0].id}/deliveries`);
  assert.equal(dels.status, 200, dels.text);
  assert.deepEqual(
    dels.json.deliveries.map((d) => d.state).sort(),
    ['done', 'done', 'done', 'done'],
    dels.text,
  );
});

it('dry_run answers the recipients and the rendering and sends nothing', async () => {
  const pusher = backend();
  const tag = `t-dry-${crypto.randomBytes(4).toString('hex')}`;
  const res = await sdkJson(
    await pusher.post({
      path: '/push/publishes',
      body: { recipient: { interests: ['sport'] }, notification: { title: tag, body: 'b' }, dry_run: true },
    }),
  );
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.expected_recipients, 2, res.text);
  assert.equal(res.json.rendered.web.payload.notification.title, tag, res.text);
  assert.equal(res.json.rendered.apns.payload.aps.alert.title, tag, res.text);
  assert.equal(res.json.publish_id, undefined, 'a dry run is not stored');

  // A real publish to the same devices afterwards: once it has finished,
  // the dry run would have been sent before it (and it was not).
  const marker = `t-mark-${crypto.randomBytes(4).toString('hex')}`;
  const m = await sdkJson(
    await pusher.post({ path: '/push/publishes/interests', body: { interests: ['sport'], notification: { title: marker } } }),
  );
  await finished(S, m.json.publish_id);
  assertExactlyOnce(marker, [dev.anonApns, dev.anonWeb]);
  assert.equal(receiver.filter(tagged(tag)).length, 0, 'the dry run was sent');
});

it('an Idempotency-Key retry answers the same publish and sends nothing more', async () => {
  const tag = `t-idem-${crypto.randomBytes(4).toString('hex')}`;
  const key = `order-${crypto.randomUUID()}`;
  const body = { users: ['u2'], notification: { title: tag, body: 'once' } };
  const first = await api(S, 'POST', '/push/publishes/users', body, { headers: { 'Idempotency-Key': key } });
  assert.equal(first.status, 202, first.text);
  await finished(S, first.json.publish_id);
  await receiver.deliveries.waitFor(tagged(tag), 5000, `delivery of ${tag}`);

  const again = await api(S, 'POST', '/push/publishes/users', body, { headers: { 'Idempotency-Key': key } });
  assert.equal(again.status, 202, again.text);
  assert.equal(again.json.publish_id, first.json.publish_id);
  // The body's idempotency_key is the same key (the SDK cannot set headers).
  const sdk = await sdkJson(
    await backend().post({ path: '/push/publishes/users', body: { ...body, idempotency_key: key } }),
  );
  assert.equal(sdk.json.publish_id, first.json.publish_id, sdk.text);

  const marker = `t-mark-${crypto.randomBytes(4).toString('hex')}`;
  const m = await api(S, 'POST', '/push/publishes/users', { users: ['u2'], notification: { title: marker } });
  await finished(S, m.json.publish_id);
  await receiver.deliveries.waitFor(tagged(marker), 5000, 'the marker');
  assertExactlyOnce(tag, [dev.u2fcm]);
  const list = await api(S, 'GET', '/push/publishes', undefined, { params: { limit: '1000' } });
  assert.equal(list.json.items.filter((p) => p.publish_id === first.json.publish_id).length, 1);
});

it('limits: 429 with Retry-After over the publishes per second and the daily quota; 413 and 400 for bodies too large', async () => {
  const rps = { id: 'rps-app', key: 'rps-key', secret: 'rps-secret' };
  const body = { interests: ['nobody'], notification: { title: 'x' } };
  const answers = await Promise.all(
    Array.from({ length: 8 }, () => api(S, 'POST', '/push/publishes/interests', body, { app: rps })),
  );
  const refused = answers.filter((r) => r.status === 429);
  assert.ok(refused.length >= 5, `8 publishes at once, limit 2/s: ${answers.map((r) => r.status)}`);
  assert.ok(answers.every((r) => r.status === 202 || r.status === 429), answers.map((r) => r.text).join('\n'));
  for (const r of refused) {
    assert.equal(r.json.error, 'rate_limited', r.text);
    assert.ok(Number(r.headers.get('retry-after')) >= 1, `Retry-After ${r.headers.get('retry-after')}`);
    assert.equal(r.headers.get('ratelimit-limit'), '2');
    assert.equal(r.headers.get('ratelimit-remaining'), '0');
    assert.ok(Number(r.headers.get('ratelimit-reset')) >= 1, `RateLimit-Reset ${r.headers.get('ratelimit-reset')}`);
  }
  const limited = await api(S, 'GET', '/push/publishes', undefined, { app: rps, params: { state: 'rate_limited' } });
  assert.equal(limited.json.items.length, refused.length, limited.text);

  // The daily quota (3 notifications) refuses a publish that does not fit, whole.
  const quota = { id: 'quota-app', key: 'quota-key', secret: 'quota-secret' };
  await addDevice(S, 'fcm', { user_id: 'q1' }, quota);
  await addDevice(S, 'fcm', { user_id: 'q1' }, quota);
  const ok = await api(S, 'POST', '/push/publishes/users', { users: ['q1'], notification: { title: 'q' } }, { app: quota });
  assert.equal(ok.status, 202, ok.text);
  const over = await api(S, 'POST', '/push/publishes/users', { users: ['q1'], notification: { title: 'q' } }, { app: quota });
  assert.equal(over.status, 429, over.text);
  assert.equal(over.json.error, 'rate_limited');
  assert.ok(Number(over.headers.get('retry-after')) >= 1, `Retry-After ${over.headers.get('retry-after')}`);
  const lim = await api(S, 'GET', '/push/limits', undefined, { app: quota });
  assert.equal(lim.json.usage.notifications_today, 2, lim.text);

  // Bodies: over the publish limit (256 KiB) → 413; over the API's 1 MiB → 413.
  const users = Array.from({ length: 1000 }, (_, i) => `user-${i}-${'x'.repeat(300)}`);
  let r = await api(S, 'POST', '/push/publishes/users', { users, notification: { title: 'big' } });
  assert.equal(r.status, 413, r.text);
  assert.equal(r.json.error, 'body_too_large', r.text);
  r = await api(S, 'POST', '/push/publishes/users', { users: ['u1'], notification: { title: 'x', body: 'y'.repeat(1100 * 1024) } });
  assert.equal(r.status, 413, r.text.slice(0, 300));
  // A rendered payload over a provider's size (APNs 4 KiB) → 413 when made.
  r = await api(S, 'POST', '/push/publishes/users', { users: ['u1'], notification: { title: 'x', body: 'y'.repeat(5000) } });
  assert.equal(r.status, 413, r.text);
  // Too many recipients and a bad body → 400.
  r = await api(S, 'POST', '/push/publishes/users', { users: Array.from({ length: 1001 }, (_, i) => `u${i}`), notification: { title: 'x' } });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error, 'invalid_recipient', r.text);
  r = await api(S, 'POST', '/push/publishes/users', '{"users":["u1"],');
  assert.equal(r.status, 400, r.text);
  r = await api(S, 'POST', '/push/publishes/users', { users: ['u1'] });
  assert.equal(r.status, 400, r.text);
});

/** Ids of the app's publishes (creation order). */
async function publishIds(s, params = {}) {
  const r = await api(s, 'GET', '/push/publishes', undefined, { params: { limit: '1000', ...params } });
  assert.equal(r.status, 200, r.text);
  return r.json.items.map((p) => p.publish_id);
}

it('a trigger with push when "offline" notifies only the users without a live connection', async () => {
  const [oaFcm, obWeb, anon, ocApns, odFcm] = await Promise.all([
    addDevice(S, 'fcm', { user_id: 'oa', channels: ['private-chat'] }),
    addDevice(S, 'web', { user_id: 'ob', channels: ['private-chat'] }),
    addDevice(S, 'apns', { channels: ['private-chat'] }),
    addDevice(S, 'apns', { user_id: 'oc', channels: ['presence-lobby'] }),
    addDevice(S, 'fcm', { user_id: 'od', channels: ['presence-lobby'] }),
  ]);
  // oa is signed in with pusher-js (and subscribed); ob is not connected.
  const oa = await connectedClient(S, { userData: { id: 'oa' } });
  await signin(oa);
  await subscribe(oa, 'private-chat');
  // oc is not signed in but is a member of the presence channel triggered.
  const oc = await connectedClient(S, { presence: { user_id: 'oc', user_info: {} } });
  await subscribe(oc, 'presence-lobby');

  const pusher = backend();
  const trigger = async (channel, when, want) => {
    const known = new Set(await publishIds(S));
    const tag = `t-${when}-${crypto.randomBytes(4).toString('hex')}`;
    const client = channel === 'private-chat' ? oa : oc;
    const since = client.log.mark();
    const res = await pusher.post({
      path: '/events',
      body: {
        name: 'message',
        channels: [channel],
        data: JSON.stringify({ text: tag }),
        push: { notification: { title: tag, body: 'Hi' }, when },
      },
    });
    assert.equal(res.status, 200);
    const ev = await nextMessage(client, 'message', { channel, since });
    assert.deepEqual(ev.data, { text: tag });
    const id = await waitFor(async () => (await publishIds(S)).find((x) => !known.has(x)), 5000, 'the trigger publish');
    const st = await finished(S, id);
    assert.equal(st.state, 'succeeded', JSON.stringify(st));
    assertExactlyOnce(tag, want);
  };
  // offline: only ob (the anonymous device has no user to judge); always: all three.
  await trigger('private-chat', 'offline', [obWeb]);
  await trigger('private-chat', 'always', [oaFcm, obWeb, anon]);
  // a presence member counts as connected without a signin.
  await trigger('presence-lobby', 'offline', [odFcm]);
  assert.ok(ocApns.id);
  assertNoProblems();
});

it('cancel before dispatch: DELETE → cancelled, nothing delivered; finished publishes answer 409', async () => {
  const sendAt = Math.ceil(Date.now() / 1000) + 2;
  const tag = `t-cancel-${crypto.randomBytes(4).toString('hex')}`;
  const r = await api(S, 'POST', '/push/publishes/users', { users: ['u2'], notification: { title: tag }, send_at: sendAt });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.state, 'scheduled');
  const id = r.json.publish_id;
  const del = await api(S, 'DELETE', `/push/publishes/${id}`);
  assert.equal(del.status, 200, del.text);
  assert.equal(del.json.state, 'cancelled');
  assert.equal(del.json.cancelled_by, `key:${S.app.key}`);
  assert.equal(del.json.counters.cancelled, 1, del.text);
  const again = await api(S, 'DELETE', `/push/publishes/${id}`);
  assert.equal(again.status, 409, again.text);
  assert.equal(again.json.error, 'already_finished');
  assert.ok(!(await publishIds(S, { state: 'scheduled' })).includes(id));

  // A marker scheduled one second later for the same device: once it has
  // arrived, the cancelled one would have too.
  const marker = `t-mark-${crypto.randomBytes(4).toString('hex')}`;
  const m = await api(S, 'POST', '/push/publishes/users', { users: ['u2'], notification: { title: marker }, send_at: sendAt + 1 });
  assert.equal(m.status, 202, m.text);
  await receiver.deliveries.waitFor(tagged(marker), 8000, 'the marker');
  assert.equal(receiver.filter(tagged(tag)).length, 0, 'the cancelled publish was sent');
  assert.equal((await api(S, 'GET', `/push/publishes/${id}`)).json.state, 'cancelled');
});

it('a provider 503 is retried (Retry-After) and sent once; a Web Push 410 removes the device', async () => {
  const [retry, ...web] = await Promise.all([
    addDevice(S, 'fcm', { interests: ['inv'] }),
    ...Array.from({ length: 9 }, () => addDevice(S, 'web', { interests: ['inv'] })),
  ]);
  const gone = web[0];
  let failedOnce = false;
  receiver.answer = (d) => {
    if (d.token === gone.token) return { status: 410, body: { reason: 'expired' } };
    if (d.token === retry.token && !failedOnce) {
      failedOnce = true;
      return { status: 503, body: { error: { code: 503, status: 'UNAVAILABLE' } }, headers: { 'retry-after': '1' } };
    }
    return null;
  };
  try {
    const tag = `t-retry-${crypto.randomBytes(4).toString('hex')}`;
    const r = await api(S, 'POST', '/push/publishes/interests', { interests: ['inv'], notification: { title: tag } });
    assert.equal(r.status, 202, r.text);
    const st = await finished(S, r.json.publish_id, 20000);
    assert.equal(st.counters.planned, 10, JSON.stringify(st));
    assert.equal(st.counters.sent, 9, JSON.stringify(st));
    assert.equal(st.counters.invalidated, 1, JSON.stringify(st));
    assert.equal(st.counters.retried, 1, JSON.stringify(st));
    assert.equal(st.state, 'partially_succeeded', JSON.stringify(st));
    const attempts = receiver.countByToken(tagged(tag));
    assert.equal(attempts.get(retry.token), 2, 'the FCM device: one 503, then one success');
    assert.equal(attempts.get(gone.token), 1);
    for (const d of web.slice(1)) assert.equal(attempts.get(d.token), 1);
    const [first, second] = receiver.filter((d) => titleOf(d) === tag && d.token === retry.token);
    assert.equal(first.status, 503);
    assert.ok(second.at - first.at >= 1000, `retried after ${second.at - first.at} ms`);
    // A publish smaller than the spike guard's sample (50 answers) has its
    // gone devices judged when it finishes: the removal follows the
    // finished state by a moment, so poll for it.
    await waitFor(
      async () => (await api(S, 'GET', `/push/devices/${gone.id}`)).status === 404,
      5000,
      'the device the provider reported gone to be removed',
    );
  } finally {
    receiver.answer = null;
  }
});

it('a scheduled publish survives a restart and is sent on time; ?state=scheduled lists it', async () => {
  const sendAt = Math.ceil(Date.now() / 1000) + 3;
  const tag = `t-sched-${crypto.randomBytes(4).toString('hex')}`;
  const key = `sched-${crypto.randomUUID()}`;
  const body = { users: ['u3'], notification: { title: tag }, send_at: sendAt, idempotency_key: key };
  const r = await sdkJson(await backend().post({ path: '/push/publishes/users', body }));
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.state, 'scheduled');
  assert.equal(r.json.send_at, sendAt);
  const id = r.json.publish_id;
  assert.ok((await publishIds(S, { state: 'scheduled' })).includes(id));

  S = await restart(S);
  // The idempotency key is in the database too.
  const retry = await api(S, 'POST', '/push/publishes/users', body);
  assert.equal(retry.status, 202, retry.text);
  assert.equal(retry.json.publish_id, id, 'the idempotency key was forgotten by the restart');
  if (Date.now() < sendAt * 1000 - 300) {
    assert.ok((await publishIds(S, { state: 'scheduled' })).includes(id), 'still scheduled after the restart');
  }
  const d = await receiver.deliveries.waitFor(tagged(tag), 10000, `the scheduled ${tag}`);
  const late = d.at - sendAt * 1000;
  console.log(`scheduled publish delivered ${late} ms after send_at (across a restart)`);
  assert.ok(late >= -50 && late < 3000, `delivered ${late} ms after send_at`);
  const st = await finished(S, id);
  assert.equal(st.state, 'succeeded');
  assert.equal(st.send_at, sendAt);
  assertExactlyOnce(tag, [dev.u3web]);
});

/** Runs the CLI; resolves with {code, stdout, stderr} whatever the exit code. */
function cli(args, dbPath) {
  return new Promise((resolve) => {
    execFile(BIN, args, { env: { ...process.env, SOCKUDO_DB_PATH: dbPath }, timeout: 15000 }, (err, stdout, stderr) =>
      resolve({ code: err ? err.code : 0, stdout, stderr }),
    );
  });
}

it('a publish whose expire_at passes while the server is down ends expired and is never sent', async () => {
  const now = Math.ceil(Date.now() / 1000);
  const tag = `t-expire-${crypto.randomBytes(4).toString('hex')}`;
  const r = await api(S, 'POST', '/push/publishes/users', {
    users: ['u3'],
    notification: { title: tag },
    send_at: now + 1,
    expire_at: now + 2,
  });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.state, 'scheduled');
  const x = await S.stop();
  assert.equal(x.code, 0);
  // The wall clock has to pass expire_at while nothing runs.
  await waitFor(() => Date.now() > (now + 2) * 1000 + 100, 5000, 'expire_at to pass with the server stopped');
  S = await restart(S);
  const st = await finished(S, r.json.publish_id);
  assert.equal(st.state, 'expired', JSON.stringify(st));
  assert.equal(st.counters.sent, 0, JSON.stringify(st));
  const marker = `t-mark-${crypto.randomBytes(4).toString('hex')}`;
  const m = await api(S, 'POST', '/push/publishes/users', { users: ['u3'], notification: { title: marker } });
  await finished(S, m.json.publish_id);
  await receiver.deliveries.waitFor(tagged(marker), 5000, 'the marker');
  assert.equal(receiver.filter(tagged(tag)).length, 0, 'the expired publish was sent');
});

it('sockudo audit verify passes; an entry edited in a copy of the database is detected', async () => {
  const trail = await api(S, 'GET', '/push/audit', undefined, { params: { limit: '1000' } });
  assert.equal(trail.status, 200, trail.text);
  const actions = new Set(trail.json.items.map((e) => e.action));
  for (const a of ['credential.put', 'publish.create', 'publish.schedule', 'publish.cancel', 'publish.finish']) {
    assert.ok(actions.has(a), `no ${a} in the trail: ${[...actions]}`);
  }
  // The refusals of the rate-limited app are in its own chain.
  const rps = { id: 'rps-app', key: 'rps-key', secret: 'rps-secret' };
  const refusals = await api(S, 'GET', '/push/audit', undefined, { app: rps, params: { action: 'limit.exceeded' } });
  assert.ok(refusals.json.items.length >= 5, refusals.text);
  assert.equal(refusals.json.items[0].outcome, 'refused', refusals.text);
  const cancel = trail.json.items.find((e) => e.action === 'publish.cancel');
  assert.equal(cancel.actor, `key:${S.app.key}`);
  assert.match(cancel.hash, /^[0-9a-f]{64}$/);
  assert.ok(!trail.text.includes(dev.u1apns.token), 'a device token is in the audit trail');

  const viaApi = await api(S, 'GET', '/push/audit/verify');
  assert.equal(viaApi.status, 200, viaApi.text);
  assert.equal(viaApi.json.ok, true, viaApi.text);

  // Through the running server's admin socket: every app's chain.
  let r = await cli(['audit', 'verify', '--json'], S.dbPath);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const reports = JSON.parse(r.stdout);
  const mine = reports.find((x) => x.app_id === S.app.id);
  assert.equal(mine.ok, true, r.stdout);
  assert.ok(mine.entries >= trail.json.items.length, r.stdout);
  assert.ok(reports.find((x) => x.app_id === 'rps-app')?.ok, r.stdout);

  // Stop the server, copy the file and rewrite who cancelled (same length,
  // in every copy of the entry the file holds).
  const x = await S.stop();
  assert.equal(x.code, 0);
  const copy = path.join(S.tmpDir, 'tampered.db');
  const buf = fs.readFileSync(S.dbPath);
  const from = Buffer.from(`"actor":"key:${S.app.key}"`);
  const to = Buffer.from(`"actor":"key:${S.app.key.slice(0, -1)}X"`);
  let edited = 0;
  for (let at = buf.indexOf(`"hash":"${cancel.hash}"`); at >= 0; at = buf.indexOf(`"hash":"${cancel.hash}"`, at + 1)) {
    const start = buf.lastIndexOf(`{"id":${cancel.id},`, at);
    const a = buf.indexOf(from, start);
    if (start >= 0 && a > start && a < at) {
      to.copy(buf, a);
      edited++;
    }
  }
  assert.ok(edited >= 1, 'the cancel entry was not found in the database file');
  fs.writeFileSync(copy, buf);
  r = await cli(['audit', 'verify', '--app', S.app.id], copy);
  assert.equal(r.code, 1, `verify of the tampered copy: ${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(`chain broken at entry ${cancel.id}`), r.stderr);
  r = await cli(['audit', 'verify', '--app', S.app.id, '--json'], copy);
  assert.equal(JSON.parse(r.stdout)[0].first_bad_id, cancel.id, r.stdout);
  // The original, with no server running, still verifies.
  r = await cli(['audit', 'verify', '--app', S.app.id], S.dbPath);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
});

/** Registers n devices of platform with extra, `conc` requests at a time. */
async function addDevices(s, n, platform, extra, conc = 32) {
  const out = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      out.push(await addDevice(s, platform, extra));
    }
  };
  await Promise.all(Array.from({ length: Math.min(conc, n) }, worker));
  return out;
}

/** A server with four deliveries in flight and one attempt each, started once. */
let small;
async function smallServer() {
  if (!small) {
    small = await start({ name: 'push-small', env: { PUSH_MAX_IN_FLIGHT: '4', PUSH_MAX_ATTEMPTS: '1' } });
    await putCredentials(small);
  }
  return small;
}

it('cancel during dispatch: 409 already_dispatching; ?partial=true drops what is not sent yet', async () => {
  // Four deliveries at a time, held unanswered by the fake FCM: the rest of
  // the publish waits in the queue.
  const C = await smallServer();
  const devs = await addDevices(C, 40, 'fcm', { interests: ['cx'] }, 8);
  const held = new Set(devs.map((d) => d.token));
  receiver.hold = (d) => held.has(d.token);
  try {
    const tag = `t-partial-${crypto.randomBytes(4).toString('hex')}`;
    const r = await api(C, 'POST', '/push/publishes/interests', { interests: ['cx'], notification: { title: tag } });
    assert.equal(r.status, 202, r.text);
    const id = r.json.publish_id;
    await waitFor(() => receiver.held.length >= 4, 5000, 'four held deliveries');
    assert.equal((await api(C, 'GET', `/push/publishes/${id}`)).json.state, 'dispatching');

    const refused = await api(C, 'DELETE', `/push/publishes/${id}`);
    assert.equal(refused.status, 409, refused.text);
    assert.equal(refused.json.error, 'already_dispatching');
    const partial = await api(C, 'DELETE', `/push/publishes/${id}`, undefined, { params: { partial: 'true' } });
    assert.equal(partial.status, 200, partial.text);
    assert.equal(partial.json.state, 'partially_cancelled', partial.text);
    const inFlight = receiver.filter(tagged(tag)).length;
    assert.equal(inFlight, 4, 'deliveries in flight when cancelled');
    assert.equal(partial.json.counters.cancelled, 40 - inFlight, partial.text);

    receiver.hold = null;
    receiver.release();
    const st = await finished(C, id);
    assert.equal(st.state, 'partially_cancelled', JSON.stringify(st));
    assert.equal(st.counters.sent, inFlight, JSON.stringify(st));
    assert.equal(receiver.filter(tagged(tag)).length, inFlight, 'deliveries after the partial cancel');
    const dels = await api(C, 'GET', `/push/publishes/${id}/deliveries`);
    assert.equal(dels.json.deliveries.length, inFlight, dels.text);
  } finally {
    receiver.hold = null;
    receiver.release();
  }
});

it('a delivery out of attempts becomes a dead letter; replaying it sends it', async () => {
  const C = await smallServer();
  const d = await addDevice(C, 'web', { user_id: 'dl' });
  receiver.answer = (x) => (x.token === d.token ? { status: 503, body: {} } : null);
  try {
    const tag = `t-dead-${crypto.randomBytes(4).toString('hex')}`;
    const r = await api(C, 'POST', '/push/publishes/users', { users: ['dl'], notification: { title: tag } });
    const st = await finished(C, r.json.publish_id);
    assert.equal(st.state, 'failed', JSON.stringify(st));
    assert.equal(st.counters.failed, 1, JSON.stringify(st));
    const dead = await api(C, 'GET', '/push/dead_letters');
    const mine = dead.json.dead_letters.filter((x) => x.publish_id === r.json.publish_id);
    assert.equal(mine.length, 1, dead.text);
    assert.equal(mine[0].device_id, d.id);
    receiver.answer = null;
    const rep = await api(C, 'POST', '/push/dead_letters/replay', { ids: [mine[0].dead_id] });
    assert.equal(rep.status, 200, rep.text);
    assert.deepEqual(rep.json, { replayed: 1 });
    await receiver.deliveries.waitFor((x) => tagged(tag)(x) && !x.status, 5000, 'the replayed delivery');
    assert.deepEqual(
      receiver.filter(tagged(tag)).map((x) => x.status || 201),
      [503, 201],
      'one refused attempt (PUSH_MAX_ATTEMPTS=1), then the replay',
    );
  } finally {
    receiver.answer = null;
  }
});

/** CPU seconds (user + system) pid has used, or null once it is gone. */
function cpuSeconds(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return null;
  }
}

/** VmRSS of pid in KiB, or null once it is gone. */
function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

it('SIGKILL during a 10,000-device fan-out: after a restart every device has it, duplicates within PUSH_MAX_IN_FLIGHT', { timeout: 170000 }, async (t) => {
  const N = 10000;
  const IN_FLIGHT = 256; // the README's default PUSH_MAX_IN_FLIGHT
  const KILL_AT = 3000;
  let F = await start({ name: 'push-fanout', env: {}, startTimeoutMs: 15000 });
  await putCredentials(F);
  let t0 = Date.now();
  const devs = await addDevices(F, N, 'apns', { interests: ['fanout'] }, 32);
  const regMs = Date.now() - t0;
  const tokens = new Set(devs.map((d) => d.token));
  assert.equal(tokens.size, N);

  // RSS of whichever process is running, every 50 ms.
  const rss = { idle: rssKiB(F.proc.pid), peak1: 0, peak2: 0 };
  let phase = 1;
  const sampler = setInterval(() => {
    const v = rssKiB(F.proc.pid);
    if (v !== null) rss[`peak${phase}`] = Math.max(rss[`peak${phase}`], v);
  }, 50);

  const tag = `t-fanout-${crypto.randomBytes(4).toString('hex')}`;
  let count = 0;
  let first = 0;
  let killedAt = 0;
  let killCount = 0;
  const proc1 = F.proc;
  let cpu0 = 0;
  let cpuKill = 0;
  let nodeCpu0;
  let nodeCpuKill;
  receiver.onDelivery = (d) => {
    if (titleOf(d) !== tag) return;
    count++;
    if (!first) {
      first = d.at;
      cpu0 = cpuSeconds(proc1.pid);
      nodeCpu0 = process.cpuUsage();
    }
    if (count === KILL_AT && !killedAt) {
      cpuKill = cpuSeconds(proc1.pid);
      nodeCpuKill = process.cpuUsage(nodeCpu0);
      killedAt = Date.now();
      killCount = count;
      proc1.kill('SIGKILL');
    }
  };
  try {
    const r = await api(F, 'POST', '/push/publishes/interests', { interests: ['fanout'], notification: { title: tag, body: 'fan-out' } });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.json.expected_recipients, N, r.text);
    const id = r.json.publish_id;
    const exit = await Promise.race([F.exited, new Promise((res) => setTimeout(() => res(null), 60000).unref())]);
    assert.ok(exit && exit.signal === 'SIGKILL', `the server was not killed during the fan-out (${count} deliveries)`);
    const atKill = count; // includes requests that arrived while the kill landed

    phase = 2;
    t0 = Date.now();
    F = await restart(F, { kill: true });
    const restartMs = Date.now() - t0;
    await waitFor(
      () => receiver.countByToken(tagged(tag)).size === N,
      90000,
      'every device to have the notification',
    );
    const st = await finished(F, id, 30000);
    const last = Math.max(...receiver.filter(tagged(tag)).map((d) => d.at));
    clearInterval(sampler);

    const per = receiver.countByToken(tagged(tag));
    const lost = [...tokens].filter((tk) => !per.has(tk)).length;
    const total = [...per.values()].reduce((a, b) => a + b, 0);
    const dupDevices = [...per.values()].filter((c) => c > 1).length;
    const duplicates = total - per.size;
    const strays = [...per.keys()].filter((tk) => !tokens.has(tk)).length;
    const rate1 = Math.round(killCount / ((killedAt - first) / 1000));
    const after = receiver.filter(tagged(tag)).slice(atKill);
    const secondFirst = Math.min(...after.map((d) => d.at));
    const rate2 = Math.round(after.length / ((last - secondFirst) / 1000 || 1));
    const figures = [
      `registration: ${N} devices through the signed API in ${regMs} ms (${Math.round(N / (regMs / 1000))}/s, 32 at a time)`,
      `before the kill: ${killCount} deliveries in ${killedAt - first} ms = ${rate1} deliveries/s to the fake APNs`,
      `received by the fake by the time the process was gone: ${atKill} (${receiver.cut || 0} more cut off mid-request, not deliveries)`,
      `restart (SIGKILL → /up 200): ${restartMs} ms; after it: ${after.length} deliveries in ${last - secondFirst} ms = ${rate2} deliveries/s`,
      `result: ${per.size}/${N} devices reached, ${lost} lost, ${duplicates} duplicate deliveries on ${dupDevices} devices (bound: PUSH_MAX_IN_FLIGHT = ${IN_FLIGHT}), state ${st.state}`,
      `CPU while sending (first delivery → kill): sockudo ${Math.round((100 * (cpuKill - cpu0)) / ((killedAt - first) / 1000))}% of a core, ` +
        `this node process (fakes + test) ${Math.round((nodeCpuKill.user + nodeCpuKill.system) / 10 / (killedAt - first))}% of a core`,
      `server VmRSS: ${Math.round(rss.idle / 1024)} MiB idle with ${N} devices, peak ${Math.round(rss.peak1 / 1024)} MiB during the fan-out, peak ${Math.round(rss.peak2 / 1024)} MiB after the restart`,
    ];
    for (const f of figures) {
      t.diagnostic(f);
      console.log(`fan-out: ${f}`);
    }
    assert.equal(lost, 0, 'devices that never got the notification');
    assert.equal(strays, 0);
    assert.ok(duplicates <= IN_FLIGHT, `${duplicates} duplicates, more than the in-flight window ${IN_FLIGHT}`);
    assert.equal(st.state, 'succeeded', JSON.stringify(st));
    assert.equal(st.counters.sent, N, JSON.stringify(st.counters));
    assertNoProblems();
  } finally {
    clearInterval(sampler);
    receiver.onDelivery = null;
  }
});
