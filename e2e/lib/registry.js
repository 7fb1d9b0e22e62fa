'use strict';
// Everything a test opens (raw sockets, pusher-js clients) is tracked here so
// that one after() hook can close it all and the test process can exit.

const open = new Set();

function track(thing) {
  open.add(thing);
  return thing;
}

function untrack(thing) {
  open.delete(thing);
}

/** Disconnects every pusher-js client and terminates every raw socket. */
function closeAll() {
  for (const thing of open) {
    try {
      if (typeof thing.terminate === 'function') thing.terminate();
      else if (typeof thing.disconnect === 'function') thing.disconnect();
    } catch {}
  }
  open.clear();
  // A pusher-js client that escaped tracking (created while a test was
  // failing) keeps reconnect timers that hold the test process open:
  // disconnect every instance pusher-js knows, if it was loaded.
  const pusherJs = require.cache[require.resolve('pusher-js')];
  for (const p of pusherJs?.exports?.instances || []) {
    try {
      p.disconnect();
    } catch {}
  }
}

module.exports = { track, untrack, closeAll };
