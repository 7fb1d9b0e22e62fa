'use strict';
// pusher-js clients and `pusher` (server SDK) backends pointed at a test server.
// Channel/user auth is signed locally with the SDK in custom handlers, so no
// HTTP auth endpoint is needed.

const Pusher = require('pusher-js');
const PusherServer = require('pusher');
const { EventLog, waitFor, withTimeout } = require('./wait');
const { track } = require('./registry');
const { MASTER_KEY_B64 } = require('./server');

/** A server SDK instance for app (default: the server's default app). */
function newBackend(server, { app = server.app, secret, encrypted = true, ...rest } = {}) {
  return new PusherServer({
    appId: app.id,
    key: app.key,
    secret: secret ?? app.secret,
    host: '127.0.0.1',
    port: String(server.port),
    useTLS: false,
    ...(encrypted ? { encryptionMasterKeyBase64: MASTER_KEY_B64 } : {}),
    ...rest,
  });
}

/**
 * A pusher-js client. Options:
 *  app            app to connect to (default server.app); `key` overrides just the key
 *  presence       {user_id, user_info} used as channel_data for presence- channels
 *                 (or a function (channelName, socketId) → that object, or null to send none)
 *  userData       {id, user_info?, watchlist?} used for signin
 *  authSecret     secret used to sign channel auth (default: the app secret); a
 *                 wrong one yields an invalid signature
 *  userAuthSecret same for signin
 *  pusherOptions  merged into the pusher-js options
 * The client records every received message in client.log (EventLog of
 * {event, channel, data, user_id}) and every error in client.errors.
 */
function newClient(server, opts = {}) {
  const app = opts.app || server.app;
  const key = opts.key || app.key;
  const signer = newBackend(server, { app, secret: opts.authSecret });
  const userSigner = newBackend(server, { app, secret: opts.userAuthSecret });
  const client = new Pusher(key, {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: server.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      customHandler: (params, cb) => {
        try {
          const { socketId, channelName } = params;
          let data;
          if (channelName.startsWith('presence-')) {
            const p = typeof opts.presence === 'function' ? opts.presence(channelName, socketId) : opts.presence;
            if (p !== null && p !== undefined) data = p;
          }
          cb(null, signer.authorizeChannel(socketId, channelName, data));
        } catch (e) {
          cb(e, null);
        }
      },
    },
    userAuthentication: {
      customHandler: (params, cb) => {
        try {
          if (!opts.userData) throw new Error('test client has no userData');
          cb(null, userSigner.authenticateUser(params.socketId, opts.userData));
        } catch (e) {
          cb(e, null);
        }
      },
    },
    ...(opts.pusherOptions || {}),
  });
  client.log = new EventLog((m) => JSON.stringify(m));
  client.errors = [];
  client.states = [];
  client.connection.bind('message', (m) => client.log.push(m));
  client.connection.bind('error', (e) => client.errors.push(e));
  client.connection.bind('state_change', (s) => client.states.push(s.current));
  // pusher-js's bundled faye-websocket arms a 30 s timer whenever it closes a
  // socket, even one the server already closed; that timer would keep the test
  // process alive after the last test. Remember the sockets so that cleanup
  // can drop their timers.
  client.fayeSockets = [];
  client.connection.bind('connected', () => {
    const sock = client.connection.connection?.transport?.socket;
    if (sock) client.fayeSockets.push(sock);
  });
  client.terminate = () => {
    try {
      client.disconnect();
    } catch {}
    for (const sock of client.fayeSockets) clearTimeout(sock._closeTimer);
  };
  track(client);
  return client;
}

/** Waits until client.connection.state === state. */
function waitState(client, state, ms = 5000) {
  if (client.connection.state === state) return Promise.resolve();
  return withTimeout(
    new Promise((resolve) => {
      const h = (s) => {
        if (s.current === state) {
          client.connection.unbind('state_change', h);
          resolve();
        }
      };
      client.connection.bind('state_change', h);
    }),
    ms,
    `pusher-js state '${state}' (now '${client.connection.state}', seen: ${client.states.join(' → ')})`,
  );
}

/** newClient + wait for 'connected'. */
async function connectedClient(server, opts = {}) {
  const client = newClient(server, opts);
  await waitState(client, 'connected');
  return client;
}

/**
 * Subscribes and resolves with the channel once pusher:subscription_succeeded
 * fires; rejects with the subscription_error payload otherwise.
 */
function subscribe(client, name, ms = 5000) {
  const channel = client.subscribe(name);
  return withTimeout(
    new Promise((resolve, reject) => {
      const ok = (data) => {
        off();
        channel.succeededWith = data;
        resolve(channel);
      };
      const bad = (err) => {
        off();
        const e = new Error(`subscription to ${name} failed: ${JSON.stringify(err)}`);
        e.data = err;
        reject(e);
      };
      const off = () => {
        channel.unbind('pusher:subscription_succeeded', ok);
        channel.unbind('pusher:subscription_error', bad);
      };
      channel.bind('pusher:subscription_succeeded', ok);
      channel.bind('pusher:subscription_error', bad);
    }),
    ms,
    `subscription_succeeded on ${name}`,
  );
}

/** Subscribes expecting failure; resolves with the pusher:subscription_error data. */
async function subscribeExpectError(client, name, ms = 5000) {
  const channel = client.subscribe(name);
  const got = await withTimeout(
    new Promise((resolve) => {
      channel.bind('pusher:subscription_error', (d) => resolve({ error: d }));
      channel.bind('pusher:subscription_succeeded', () => resolve({ ok: true }));
    }),
    ms,
    `pusher:subscription_error on ${name}`,
  );
  if (got.ok) throw new Error(`subscription to ${name} succeeded but should have been refused`);
  return got.error;
}

/** Waits for the next message on client.log matching (event, channel) after `since`. */
function nextMessage(client, event, { channel, since = 0, ms = 5000, where } = {}) {
  return client.log.waitFor(
    (m) => m.event === event && (channel === undefined || m.channel === channel) && (!where || where(m)),
    ms,
    `message '${event}'${channel ? ' on ' + channel : ''}`,
    { since },
  );
}

/** Signs in and resolves with the signin_success data. */
async function signin(client, ms = 5000) {
  const since = client.log.mark();
  client.signin();
  return nextMessage(client, 'pusher:signin_success', { since, ms });
}

module.exports = {
  Pusher,
  PusherServer,
  newBackend,
  newClient,
  connectedClient,
  waitState,
  subscribe,
  subscribeExpectError,
  nextMessage,
  signin,
  waitFor,
};
