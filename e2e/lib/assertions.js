'use strict';
// Shared protocol assertions.

const assert = require('node:assert/strict');
const { RawSocket, appUrl } = require('./raw');

/** Asserts a frame is pusher:error with an object data {code?, message: string}. */
function assertErrorFrame(frame, code) {
  assert.equal(frame.event, 'pusher:error', `expected pusher:error, got ${frame.text}`);
  const data = frame.json.data;
  assert.ok(
    data !== null && typeof data === 'object' && !Array.isArray(data),
    `pusher:error data must be an object, got ${JSON.stringify(data)} in ${frame.text}`,
  );
  assert.equal(typeof data.message, 'string', `pusher:error data.message must be a string: ${frame.text}`);
  assert.ok(data.message.length > 0, `pusher:error message must not be empty: ${frame.text}`);
  if (code !== undefined) assert.equal(data.code, code, `pusher:error code: ${frame.text}`);
  return data;
}

/**
 * Opens a raw socket that the server must upgrade and then refuse: a
 * pusher:error with `code` (data an object) followed by a close with the same
 * code. Returns {frame, close}.
 */
async function expectRefusal(server, code, { url, key, query, origin, path } = {}) {
  const target = url || (path ? `${server.wsUrl}${path}` : appUrl(server, key, query));
  const sock = new RawSocket(target, { origin });
  await sock.opened().catch((e) => {
    throw new Error(`${target}: ${e.message}`);
  });
  const frame = await sock.waitFrame(() => true, 5000);
  assertErrorFrame(frame, code);
  const close = await sock.closed(5000);
  assert.equal(close.code, code, `close code for ${target} (first frame ${frame.text})`);
  const establishedAfter = sock.frames.find((f) => f.event === 'pusher:connection_established');
  assert.equal(establishedAfter, undefined, 'a refused socket must not receive connection_established');
  return { frame, close };
}

module.exports = { assertErrorFrame, expectRefusal };
