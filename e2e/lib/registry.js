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
}

module.exports = { track, untrack, closeAll };
