'use strict';
// Test-file glue: server lifecycle hooks, per-test cleanup, and failures that
// carry the tail of the server logs.

const { test, before, after, afterEach } = require('node:test');
const { startServer, runningServersLogs } = require('./server');
const { closeAll } = require('./registry');

let hooksInstalled = false;
function installCleanup() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  afterEach(() => closeAll());
  after(() => closeAll());
}

/**
 * Starts a server before the file's tests and stops it after them. Returns a
 * ref whose .server is set once started.
 */
function useServer(opts = {}) {
  installCleanup();
  const ref = { server: null };
  before(async () => {
    ref.server = await startServer(opts);
  });
  after(async () => {
    closeAll();
    if (ref.server) {
      await ref.server.stop();
      ref.server.cleanupFiles();
    }
  });
  return ref;
}

/** Like node:test `test`, but a failure shows the running servers' log tails. */
function it(name, opts, fn) {
  if (typeof opts === 'function') {
    fn = opts;
    opts = {};
  }
  installCleanup();
  return test(name, { timeout: 30000, ...opts }, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const logs = runningServersLogs(40);
      if (logs && e && typeof e === 'object') {
        try {
          const before = e.message;
          e.message = `${before}\n${logs}`;
          // reporters print the stack, which captured the old message
          if (typeof e.stack === 'string') {
            e.stack = e.stack.includes(before) ? e.stack.replace(before, e.message) : `${e.stack}\n${logs}`;
          }
        } catch {}
      }
      throw e;
    }
  });
}

module.exports = { useServer, it, installCleanup };
