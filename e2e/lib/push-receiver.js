'use strict';
// Loopback fakes of the three push providers, for the publish pipeline
// (README "Push publishes"; the server reaches them through the operator
// settings PUSH_APNS_ENDPOINT, PUSH_FCM_ENDPOINT, PUSH_FCM_TOKEN_URL and, for
// Web Push, subscription endpoints on 127.0.0.1 with
// PUSH_ALLOW_LOCAL_WEB_PUSH_ENDPOINTS=true):
//
//  - APNs: HTTP/2 cleartext (h2c, prior knowledge: PUSH_APNS_ENDPOINT=http://…),
//    POST /3/device/{token}; the provider token (ES256 JWT) is verified
//    with the .p8's public key.
//  - FCM: HTTP/1.1, POST /v1/projects/{project}/messages:send with a bearer
//    token handed out by the fake OAuth2 endpoint POST /token.
//  - Web Push: HTTP/1.1, POST /wp/{tag}; the VAPID JWT (RFC 8292, ES256) is
//    verified against the app's public key and the RFC 8291 aes128gcm body
//    is decrypted with the subscription's private key (node:crypto ECDH +
//    HKDF), so a test sees the notification the service worker would.
//
// Every accepted request is one delivery in `deliveries` (an EventLog of
// {provider, token, payload, headers, at}); a request that fails a check is
// kept in `problems` and answered 400. `hold` lets a test keep requests
// unanswered until it releases them.

const http = require('node:http');
const http2 = require('node:http2');
const crypto = require('node:crypto');
const { EventLog, deferred } = require('./wait');

const b64u = (buf) => Buffer.from(buf).toString('base64url');

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

/** Verifies a compact ES256 JWT with publicKey (a KeyObject); returns {header, claims} or throws. */
function verifyES256(jwt, publicKey) {
  const parts = String(jwt).split('.');
  if (parts.length !== 3) throw new Error('not a compact JWT');
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
  if (header.alg !== 'ES256') throw new Error(`alg ${header.alg}`);
  const sig = Buffer.from(parts[2], 'base64url');
  if (sig.length !== 64) throw new Error(`ES256 signature of ${sig.length} bytes`);
  const ok = crypto.verify(
    'sha256',
    Buffer.from(`${parts[0]}.${parts[1]}`),
    { key: publicKey, dsaEncoding: 'ieee-p1363' },
    sig,
  );
  if (!ok) throw new Error('bad JWT signature');
  return { header, claims: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) };
}

/** A P-256 public key (65-byte uncompressed point) as a KeyObject. */
function p256PublicKey(raw) {
  const pt = Buffer.from(raw);
  if (pt.length !== 65 || pt[0] !== 4) throw new Error('not an uncompressed P-256 point');
  return crypto.createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: b64u(pt.subarray(1, 33)), y: b64u(pt.subarray(33)) },
    format: 'jwk',
  });
}

/**
 * A browser push subscription's user agent side: its ECDH key pair and
 * auth secret, and the RFC 8291 decryption of an aes128gcm body.
 */
class WebUA {
  constructor() {
    this.ecdh = crypto.createECDH('prime256v1');
    this.ecdh.generateKeys();
    this.auth = crypto.randomBytes(16);
  }
  get keys() {
    return { p256dh: b64u(this.ecdh.getPublicKey()), auth: b64u(this.auth) };
  }
  /** Decrypts an RFC 8188 aes128gcm body (one record) per RFC 8291 §3.4. */
  decrypt(body) {
    if (body.length < 21) throw new Error('aes128gcm body too short');
    const salt = body.subarray(0, 16);
    const rs = body.readUInt32BE(16);
    const idlen = body[20];
    if (idlen !== 65) throw new Error(`keyid of ${idlen} bytes, want the 65-byte as_public`);
    const asPublic = body.subarray(21, 21 + idlen);
    const ct = body.subarray(21 + idlen);
    if (ct.length > rs) throw new Error(`one record of ${ct.length} bytes exceeds rs ${rs}`);
    const secret = this.ecdh.computeSecret(asPublic);
    const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), this.ecdh.getPublicKey(), asPublic]);
    const ikm = Buffer.from(crypto.hkdfSync('sha256', secret, this.auth, keyInfo, 32));
    const cek = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
    const nonce = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
    const d = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
    d.setAuthTag(ct.subarray(ct.length - 16));
    const padded = Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]);
    let end = padded.length - 1;
    while (end >= 0 && padded[end] === 0) end--;
    if (end < 0 || padded[end] !== 2) throw new Error('no last-record delimiter (0x02)');
    return padded.subarray(0, end);
  }
}

class PushReceiver {
  constructor() {
    /** Every accepted request: {provider, token, payload, headers, at, raw}. */
    this.deliveries = new EventLog((d) => `${d.provider} …${String(d.token).slice(-8)} ${JSON.stringify(d.payload)}`);
    /** Checks that failed, as strings. */
    this.problems = [];
    /** Tokens the FCM fake handed out. */
    this.fcmTokens = new Set();
    this.apnsKeys = []; // public KeyObjects of the .p8 keys the tests stored
    this.vapidKeys = new Map(); // vapid_public_key (base64url) → KeyObject
    this.webUAs = new Map(); // endpoint path tag → WebUA
    this.hold = null; // (delivery) → true to keep the request unanswered until release()
    this.onDelivery = null; // (delivery) → called as each delivery is recorded
    // (delivery) → {status, body?, headers?} to answer a request with
    // instead of success (the delivery keeps it as .status), or null.
    this.answer = null;
    this.held = [];
    this.apnsJWTs = new Set(); // verified provider tokens (APNs reuses one for up to an hour)
    this.vapidJWTs = new Map(); // verified VAPID header → claims
  }

  get apnsUrl() {
    return `http://127.0.0.1:${this.apnsPort}`;
  }
  get fcmUrl() {
    return `http://127.0.0.1:${this.httpPort}`;
  }
  get tokenUrl() {
    return `http://127.0.0.1:${this.httpPort}/token`;
  }

  /** The operator settings that point a server at these fakes. */
  env() {
    return {
      PUSH_APNS_ENDPOINT: this.apnsUrl,
      PUSH_FCM_ENDPOINT: this.fcmUrl,
      PUSH_FCM_TOKEN_URL: this.tokenUrl,
      PUSH_ALLOW_LOCAL_WEB_PUSH_ENDPOINTS: 'true',
    };
  }

  /** A new Web Push subscription at this fake, with its user agent keys. */
  webSubscription(tag = crypto.randomBytes(12).toString('hex')) {
    const ua = new WebUA();
    this.webUAs.set(tag, ua);
    return { endpoint: `${this.fcmUrl}/wp/${tag}`, keys: ua.keys, tag };
  }

  async start() {
    this.h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
    this.h2.on('stream', (stream, headers) => this._apns(stream, headers));
    this.h2.on('session', (s) => s.on('error', () => {}));
    this.apnsPort = await listen(this.h2);
    this.http = http.createServer((req, res) => this._http(req, res));
    this.http.keepAliveTimeout = 60000;
    this.httpPort = await listen(this.http);
  }

  stop() {
    this.release();
    const closes = [];
    for (const s of [this.h2, this.http]) {
      if (!s) continue;
      closes.push(new Promise((r) => s.close(() => r())));
      if (s.closeAllConnections) s.closeAllConnections();
    }
    // h2 sessions stay open until their idle timeout; close them.
    for (const sess of this._sessions || []) sess.destroy();
    return Promise.all(closes);
  }

  /** Answers every held request (the normal success answer). */
  release() {
    const held = this.held;
    this.held = [];
    for (const h of held) h.resolve();
  }

  /** Deliveries matching pred. */
  filter(pred) {
    return this.deliveries.filter(pred);
  }

  /** Map token → number of deliveries among those matching pred. */
  countByToken(pred = () => true) {
    const m = new Map();
    for (const d of this.deliveries.items) if (pred(d)) m.set(d.token, (m.get(d.token) || 0) + 1);
    return m;
  }

  _problem(msg) {
    this.problems.push(msg);
  }

  /** Records d; resolves with the override answer ({status, body, headers}) or null for success. */
  async _accept(d) {
    const a = this.answer ? this.answer(d) : null;
    if (a) d.status = a.status;
    this.deliveries.push(d);
    if (this.onDelivery) this.onDelivery(d);
    if (this.hold && this.hold(d)) {
      const w = deferred();
      this.held.push(w);
      await w.promise;
    }
    return a;
  }

  _apns(stream, headers) {
    (this._sessions ||= new Set()).add(stream.session);
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('error', () => {});
    stream.on('end', async () => {
      const reply = (status, body, extra = {}) => {
        if (stream.closed || stream.destroyed) return;
        try {
          stream.respond({ ':status': status, 'content-type': 'application/json', ...extra });
          stream.end(body ? JSON.stringify(body) : undefined);
        } catch {}
      };
      // A request cut off by the sender's death (the SIGKILL test) is not
      // a delivery: nothing reached the device.
      const len = Buffer.concat(chunks).length;
      if (stream.aborted || (headers['content-length'] !== undefined && Number(headers['content-length']) !== len)) {
        this.cut = (this.cut || 0) + 1;
        return;
      }
      const path = headers[':path'] || '';
      const m = /^\/3\/device\/([0-9a-fA-F]+)$/.exec(path);
      if (headers[':method'] !== 'POST' || !m) {
        this._problem(`apns: ${headers[':method']} ${path}`);
        return reply(400, { reason: 'BadPath' });
      }
      const auth = headers.authorization || '';
      const jwt = auth.replace(/^bearer /, '');
      if (!this.apnsJWTs.has(jwt)) {
        try {
          let v;
          for (const k of this.apnsKeys) {
            try {
              v = verifyES256(jwt, k);
              break;
            } catch (e) {
              if (k === this.apnsKeys[this.apnsKeys.length - 1]) throw e;
            }
          }
          if (!v) throw new Error('no APNs key set');
          const { header, claims } = v;
          if (!header.kid || !claims.iss || !claims.iat) throw new Error('missing kid, iss or iat');
          this.apnsJWTs.add(jwt);
        } catch (e) {
          this._problem(`apns: provider token: ${e.message}`);
          return reply(403, { reason: 'InvalidProviderToken' });
        }
      }
      let payload;
      try {
        payload = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        this._problem('apns: payload is not JSON');
        return reply(400, { reason: 'PayloadEmpty' });
      }
      const h = {};
      for (const k of ['apns-topic', 'apns-push-type', 'apns-priority', 'apns-expiration', 'apns-collapse-id']) {
        if (headers[k] !== undefined) h[k] = headers[k];
      }
      if (!h['apns-topic']) {
        this._problem('apns: no apns-topic');
        return reply(400, { reason: 'MissingTopic' });
      }
      const a = await this._accept({ provider: 'apns', token: m[1], payload, headers: h, at: Date.now() });
      if (a) return reply(a.status, a.body, a.headers);
      reply(200, null, { 'apns-id': crypto.randomUUID() });
    });
  }

  _http(req, res) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const reply = (status, obj, extra = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...extra });
        res.end(obj === undefined ? '' : JSON.stringify(obj));
      };
      try {
        if (req.method === 'POST' && req.url === '/token') {
          const form = new URLSearchParams(body.toString('utf8'));
          if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer' || !form.get('assertion')) {
            this._problem('fcm token: not a JWT bearer grant');
            return reply(400, { error: 'invalid_grant' });
          }
          const tok = `fake-${crypto.randomBytes(8).toString('hex')}`;
          this.fcmTokens.add(tok);
          return reply(200, { access_token: tok, expires_in: 3600, token_type: 'Bearer' });
        }
        let m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(req.url);
        if (req.method === 'POST' && m) {
          const tok = (req.headers.authorization || '').replace(/^Bearer /, '');
          if (!this.fcmTokens.has(tok)) {
            this._problem('fcm: unknown access token');
            return reply(401, { error: { code: 401, status: 'UNAUTHENTICATED' } });
          }
          const msg = JSON.parse(body.toString('utf8')).message;
          if (!msg || !msg.token) {
            this._problem('fcm: no message.token');
            return reply(400, { error: { code: 400, status: 'INVALID_ARGUMENT' } });
          }
          const { token, ...payload } = msg;
          const a = await this._accept({ provider: 'fcm', token, payload, headers: {}, project: m[1], at: Date.now() });
          if (a) return reply(a.status, a.body, a.headers);
          return reply(200, { name: `projects/${m[1]}/messages/${crypto.randomUUID()}` });
        }
        m = /^\/wp\/([^/?]+)$/.exec(req.url);
        if (req.method === 'POST' && m) return await this._web(req, res, m[1], body, reply);
        this._problem(`http: ${req.method} ${req.url}`);
        reply(404, { error: 'not found' });
      } catch (e) {
        this._problem(`http ${req.url}: ${e.message}`);
        if (!res.headersSent) reply(400, { error: e.message });
      }
    });
  }

  async _web(req, res, tag, body, reply) {
    const ua = this.webUAs.get(tag);
    if (!ua) {
      this._problem(`web: unknown subscription ${tag}`);
      return reply(410, { reason: 'gone' });
    }
    const h = req.headers;
    if (h['content-encoding'] !== 'aes128gcm' || h['content-type'] !== 'application/octet-stream') {
      this._problem(`web: Content-Encoding ${h['content-encoding']}, Content-Type ${h['content-type']}`);
      return reply(400, {});
    }
    if (!/^\d+$/.test(h.ttl || '')) {
      this._problem(`web: TTL ${h.ttl}`);
      return reply(400, {});
    }
    const am = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(h.authorization || '');
    if (!am) {
      this._problem(`web: Authorization is not vapid t=…, k=…`);
      return reply(401, {});
    }
    let claims = this.vapidJWTs.get(h.authorization);
    if (!claims) {
      try {
        const key = this.vapidKeys.get(am[2]);
        if (!key) throw new Error(`k= is not a VAPID key of the app`);
        claims = verifyES256(am[1], key).claims;
        const aud = `http://127.0.0.1:${this.httpPort}`;
        if (claims.aud !== aud) throw new Error(`aud ${claims.aud}, want ${aud}`);
        const now = Date.now() / 1000;
        if (!(claims.exp > now && claims.exp <= now + 24 * 3600 + 60)) throw new Error(`exp ${claims.exp}`);
        if (!/^(mailto:|https:)/.test(claims.sub || '')) throw new Error(`sub ${claims.sub}`);
        this.vapidJWTs.set(h.authorization, claims);
      } catch (e) {
        this._problem(`web: VAPID: ${e.message}`);
        return reply(403, {});
      }
    }
    let payload;
    try {
      payload = JSON.parse(ua.decrypt(body).toString('utf8'));
    } catch (e) {
      this._problem(`web: decrypt: ${e.message}`);
      return reply(400, {});
    }
    const headers = { ttl: h.ttl, urgency: h.urgency, topic: h.topic, vapid_sub: claims.sub, vapid_k: am[2] };
    const a = await this._accept({ provider: 'web', token: tag, payload, headers, at: Date.now() });
    if (a) return reply(a.status, a.body, a.headers);
    reply(201, undefined, { location: `/m/${crypto.randomUUID()}` });
  }
}

module.exports = { PushReceiver, WebUA, verifyES256, p256PublicKey };
