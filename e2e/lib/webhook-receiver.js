'use strict';
// A webhook receiver on 127.0.0.1 that checks every request the way backends
// do: with the npm `pusher` SDK's webhook().isValid() (spec §5.3), plus the
// exact header names on the wire and the exact Content-Type (§5.1, §7.16).

const http = require('node:http');
const PusherServer = require('pusher');
const { EventLog } = require('./wait');

class WebhookReceiver {
  /** app: {id, key, secret} whose secret signs the webhooks. */
  constructor(app) {
    this.app = app;
    this.sdk = new PusherServer({ appId: app.id, key: app.key, secret: app.secret });
    /** Every request: {rawHeaders, headers, rawBody, valid, body, events}. */
    this.requests = [];
    /** Every event of every request, with its request's validity. */
    this.events = new EventLog((e) => JSON.stringify(e));
    this.status = 200;
    this.server = null;
    this.port = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Listens on 127.0.0.1:port (0 = any free port) and resolves with the port. */
  start(port = 0) {
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const rawBody = Buffer.concat(chunks).toString('utf8');
        const hook = this.sdk.webhook({ headers: req.headers, rawBody });
        const r = {
          method: req.method,
          url: req.url,
          rawHeaders: req.rawHeaders,
          headers: req.headers,
          rawBody,
          valid: hook.isValid(),
          body: null,
          events: [],
        };
        try {
          r.body = JSON.parse(rawBody);
          r.events = hook.isValid() ? hook.getEvents() : r.body.events || [];
        } catch {}
        this.requests.push(r);
        for (const e of r.events) this.events.push({ ...e, _valid: r.valid });
        res.writeHead(this.status, { 'content-type': 'text/plain' });
        res.end('ok');
      });
    });
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.port = this.server.address().port;
        resolve(this.port);
      });
    });
  }

  stop() {
    if (!this.server) return Promise.resolve();
    const s = this.server;
    this.server = null;
    return new Promise((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  /** Header names exactly as sent on the wire. */
  static rawHeaderNames(r) {
    return r.rawHeaders.filter((_, i) => i % 2 === 0);
  }

  /** Events named name (optionally on channel) received so far. */
  named(name, channel) {
    return this.events.filter((e) => e.name === name && (channel === undefined || e.channel === channel));
  }

  /** Waits for an event matching pred. */
  waitEvent(pred, ms = 10000, label = 'webhook event') {
    return this.events.waitFor(pred, ms, label);
  }
}

module.exports = { WebhookReceiver };
