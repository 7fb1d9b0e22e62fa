'use strict';
// A raw WebSocket client (npm `ws`) for exact-frame checks: first frame,
// encodings, close codes, binary frames, bad JSON.

const WebSocket = require('ws');
const { EventLog, withTimeout, deferred } = require('./wait');
const { track } = require('./registry');

const SOCKET_ID_RE = /^\d+\.\d+$/;

class RawSocket {
  /**
   * url: full ws URL. opts.origin: Origin header. opts.headers: extra headers.
   */
  constructor(url, opts = {}) {
    this.url = url;
    this.frames = new EventLog((f) => (f.binary ? `<binary ${f.raw.length} bytes>` : f.text));
    this.openP = deferred();
    this.closeP = deferred();
    this.closeInfo = null;
    this.ws = new WebSocket(url, {
      origin: opts.origin,
      headers: opts.headers,
      handshakeTimeout: 5000,
      maxPayload: 16 * 1024 * 1024,
    });
    this.ws.on('open', () => this.openP.resolve());
    this.ws.on('unexpected-response', (req, res) => {
      const err = new Error(
        `WebSocket upgrade to ${url} refused with HTTP ${res.statusCode} (the server must upgrade, then refuse with a close code)`,
      );
      err.httpStatus = res.statusCode;
      this.openP.reject(err);
      this.closeP.resolve({ code: null, reason: '', httpStatus: res.statusCode });
      res.resume();
      req.destroy();
    });
    this.ws.on('error', (e) => {
      this.openP.reject(e);
      this.lastError = e;
    });
    this.ws.on('message', (data, isBinary) => {
      const text = isBinary ? null : data.toString('utf8');
      let json;
      if (text !== null) {
        try {
          json = JSON.parse(text);
        } catch {}
      }
      this.frames.push({ text, raw: data, binary: isBinary, json, event: json?.event, channel: json?.channel });
    });
    this.ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString('utf8') };
      this.closeP.resolve(this.closeInfo);
      this.openP.reject(new Error(`closed before open: ${code}`));
    });
    this.openP.promise.catch(() => {});
    track(this);
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  opened(ms = 5000) {
    return withTimeout(this.openP.promise, ms, `WebSocket open ${this.url}`);
  }

  /** Resolves with {code, reason} when the socket closes. */
  closed(ms = 5000) {
    return withTimeout(this.closeP.promise, ms, `close of ${this.url}`);
  }

  /** Next frame (from index since) whose event equals `event` or that matches a predicate. */
  waitFrame(eventOrPred, ms = 5000, { since = 0, channel } = {}) {
    const pred =
      typeof eventOrPred === 'function'
        ? eventOrPred
        : (f) => f.event === eventOrPred && (channel === undefined || f.channel === channel);
    const label =
      typeof eventOrPred === 'function' ? 'matching frame' : `frame '${eventOrPred}'${channel ? ' on ' + channel : ''}`;
    return this.frames.waitFor(pred, ms, label, { since });
  }

  mark() {
    return this.frames.mark();
  }

  send(obj) {
    this.ws.send(JSON.stringify(obj));
  }

  sendText(text) {
    this.ws.send(text, { binary: false });
  }

  sendBinary(buf) {
    this.ws.send(buf, { binary: true });
  }

  /** pusher:ping → resolves with the pong frame (received after the ping). */
  async ping(ms = 5000) {
    const since = this.mark();
    this.send({ event: 'pusher:ping', data: {} });
    return this.waitFrame('pusher:pong', ms, { since });
  }

  close() {
    try {
      this.ws.close();
    } catch {}
  }

  terminate() {
    try {
      this.ws.terminate();
    } catch {}
  }
}

function appUrl(server, key = server.app.key, query = '?protocol=7&client=js&version=8.6.0&flash=false') {
  return `${server.wsUrl}/app/${key}${query}`;
}

/** Opens a raw socket to the app and waits for the first frame. */
async function rawConnect(server, opts = {}) {
  const sock = new RawSocket(opts.url || appUrl(server, opts.key, opts.query), opts);
  await sock.opened();
  const first = await sock.waitFrame(() => true, 5000);
  sock.first = first;
  if (first.event === 'pusher:connection_established' && typeof first.json.data === 'string') {
    try {
      const d = JSON.parse(first.json.data);
      sock.socketId = d.socket_id;
      sock.activityTimeout = d.activity_timeout;
    } catch {}
  }
  return sock;
}

/** rawConnect and assert the connection was established. */
async function rawConnected(server, opts = {}) {
  const sock = await rawConnect(server, opts);
  if (sock.first.event !== 'pusher:connection_established' || !SOCKET_ID_RE.test(sock.socketId || '')) {
    throw new Error(`expected pusher:connection_established, first frame was ${sock.first.text}`);
  }
  return sock;
}

/** Subscribe on a raw socket and wait for subscription_succeeded (or an error). */
async function rawSubscribe(sock, channel, extra = {}, ms = 5000) {
  const since = sock.mark();
  sock.send({ event: 'pusher:subscribe', data: { auth: '', channel, ...extra } });
  const f = await sock.waitFrame(
    (f) =>
      (f.channel === channel &&
        (f.event === 'pusher_internal:subscription_succeeded' || f.event === 'pusher:subscription_error')) ||
      f.event === 'pusher:error',
    ms,
    { since },
  );
  if (f.event !== 'pusher_internal:subscription_succeeded') {
    throw new Error(`subscribe to ${channel} failed: ${f.text}`);
  }
  return f;
}

module.exports = { RawSocket, rawConnect, rawConnected, rawSubscribe, appUrl, SOCKET_ID_RE };
