'use strict';
// Waiting helpers. Nothing in the suite sleeps to wait for an event: it waits
// on a promise with a deadline, and the deadline error says what was awaited.

const DEFAULT_TIMEOUT = 5000;

class TimeoutError extends Error {}

/** Resolve/reject with promise, or reject after ms with a message naming label. */
function withTimeout(promise, ms = DEFAULT_TIMEOUT, label = 'operation') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new TimeoutError(`timed out after ${ms} ms waiting for ${label}`)),
      ms,
    );
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

/**
 * waitFor(emitter, event, ms?, label?) waits for one emission (EventEmitter
 * `once`/`on`, or pusher-js `bind`/`unbind`) and resolves with its first arg.
 * waitFor(predicate, ms?, label?) polls an async-or-sync predicate until it
 * returns a truthy value (every 20 ms) and resolves with that value.
 */
function waitFor(a, b, c, d) {
  if (typeof a === 'function') {
    const predicate = a;
    const ms = b ?? DEFAULT_TIMEOUT;
    const label = c ?? 'condition';
    return withTimeout(
      (async () => {
        for (;;) {
          const v = await predicate();
          if (v) return v;
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
      ms,
      label,
    );
  }
  const emitter = a;
  const event = b;
  const ms = c ?? DEFAULT_TIMEOUT;
  const label = d ?? `event '${event}'`;
  let off = () => {};
  const p = new Promise((resolve) => {
    const handler = (...args) => {
      off();
      resolve(args[0]);
    };
    if (typeof emitter.bind === 'function' && typeof emitter.unbind === 'function') {
      emitter.bind(event, handler);
      off = () => emitter.unbind(event, handler);
    } else {
      emitter.on(event, handler);
      off = () => emitter.off(event, handler);
    }
  });
  return withTimeout(p, ms, label).finally(off);
}

/**
 * An append-only log of received items (frames, events) that can be awaited:
 * log.waitFor(pred, ms, label, {since}) resolves with the first item at index
 * >= since matching pred, whether it already arrived or arrives later.
 */
class EventLog {
  constructor(describe = (x) => JSON.stringify(x)) {
    this.items = [];
    this.waiters = [];
    this.describe = describe;
  }
  push(item) {
    this.items.push(item);
    const idx = this.items.length - 1;
    for (const w of [...this.waiters]) {
      if (idx >= w.since && w.pred(item)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(item);
      }
    }
  }
  /** Index to pass as `since` so that only later items match. */
  mark() {
    return this.items.length;
  }
  find(pred, since = 0) {
    for (let i = since; i < this.items.length; i++) if (pred(this.items[i])) return this.items[i];
    return undefined;
  }
  filter(pred, since = 0) {
    return this.items.slice(since).filter(pred);
  }
  waitFor(pred, ms = DEFAULT_TIMEOUT, label = 'matching item', { since = 0 } = {}) {
    const found = this.find(pred, since);
    if (found !== undefined) return Promise.resolve(found);
    let waiter;
    const p = new Promise((resolve) => {
      waiter = { pred, since, resolve };
      this.waiters.push(waiter);
    });
    return withTimeout(p, ms, label).catch((e) => {
      const i = this.waiters.indexOf(waiter);
      if (i >= 0) this.waiters.splice(i, 1);
      const seen = this.items.slice(-15).map(this.describe).join('\n    ');
      e.message += `\n  last items received (${this.items.length} total):\n    ${seen || '(none)'}`;
      throw e;
    });
  }
}

function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

module.exports = { waitFor, withTimeout, EventLog, deferred, TimeoutError, DEFAULT_TIMEOUT };
