'use strict';
// A small, independent implementation of Pusher REST request signing (spec
// §4.2) for raw HTTP requests the SDK cannot make (stale timestamps, wrong
// body_md5, php-style escaped queries, the `channel` field, ...).

const crypto = require('node:crypto');

const hmac = (secret, s) => crypto.createHmac('sha256', secret).update(s).digest('hex');
const md5 = (s) => crypto.createHash('md5').update(s, 'utf8').digest('hex');

/**
 * signedRequest(server, {
 *   method='GET', path (e.g. '/apps/app-id/channels'), params={} (extra query),
 *   body (object or string; objects are JSON-encoded), app=server.app,
 *   key, secret, timestamp, bodyMd5 (override), escape=false (php style),
 *   signatureOverride, mutateQuery (qs → qs, applied after signing),
 *   headers (extra request headers, e.g. Idempotency-Key)
 * }) → {status, text, json, headers}
 */
async function signedRequest(server, o) {
  const method = (o.method || 'GET').toUpperCase();
  const app = o.app || server.app;
  const key = o.key ?? app.key;
  const secret = o.secret ?? app.secret;
  const body = o.body === undefined ? '' : typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
  const params = {
    auth_key: key,
    auth_timestamp: String(o.timestamp ?? Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
    ...(o.params || {}),
  };
  if (body !== '') params.body_md5 = o.bodyMd5 ?? md5(body);
  const keys = Object.keys(params).sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1));
  const toSign = keys.map((k) => `${k.toLowerCase()}=${params[k]}`).join('&');
  const signature = o.signatureOverride ?? hmac(secret, `${method}\n${o.path}\n${toSign}`);
  const enc = o.escape ? encodeURIComponent : (s) => String(s);
  const qs = keys.map((k) => `${k}=${enc(params[k])}`).join('&') + `&auth_signature=${signature}`;
  const url = `${server.httpUrl}${o.path}?${o.mutateQuery ? o.mutateQuery(qs) : qs}`;
  const res = await fetch(url, {
    method,
    body: body === '' ? undefined : body,
    headers: { ...(body === '' ? {} : { 'content-type': 'application/json' }), ...(o.headers || {}) },
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, text, json, headers: res.headers, url };
}

/** An unsigned request (e.g. /up). */
async function plainRequest(server, path, init = {}) {
  const res = await fetch(`${server.httpUrl}${path}`, init);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, text, json };
}

/**
 * Runs an SDK call expected to fail; resolves with {status, body, json}.
 * Throws if the call succeeded.
 */
async function sdkError(promiseOrFn) {
  let res;
  try {
    res = await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
  } catch (e) {
    if (e.status === undefined) throw e; // not an HTTP error (SDK-side validation, network)
    let json;
    try {
      json = JSON.parse(e.body);
    } catch {}
    return { status: e.status, body: e.body, json };
  }
  const text = await res.text();
  throw new Error(`expected the request to fail, got HTTP ${res.status}: ${text}`);
}

/** Reads an SDK success response: asserts the body is JSON and returns {status, text, json}. */
async function sdkJson(res) {
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`HTTP ${res.status} body is not JSON: ${JSON.stringify(text)}`);
  }
  return { status: res.status, text, json };
}

module.exports = { signedRequest, plainRequest, sdkError, sdkJson, hmac, md5 };
