'use strict';
// Redis mode: several real sockudo processes sharing one Redis, each with
// its own database (the same default app from the environment), and a
// private redis-server for tests that stop Redis.

const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const net = require('node:net');
const { startServer, freePort } = require('./server');

/** The machine's Redis (scripts/test.sh starts one). */
const SHARED_REDIS = 'redis://127.0.0.1:6379/0';

/** A key prefix no other test uses. */
function newPrefix() {
  return `sockudo-e2e-${crypto.randomBytes(5).toString('hex')}`;
}

/** Polls GET /up until Redis shows healthy (subscribed to the bus). */
async function waitHealthy(server, ms = 10000) {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${server.httpUrl}/up`, { signal: AbortSignal.timeout(1000) });
      last = await res.text();
      if (res.status === 200 && !last.includes('degraded')) return last;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${server.name} not healthy within ${ms} ms: ${last}`);
}

/**
 * Starts n nodes of one cluster. opts.env is shared by every node;
 * opts.redisUrl defaults to the machine's Redis; opts.prefix to a new one.
 * Heartbeats are fast so dead-node cleanup fits in a test.
 */
async function startCluster(n, opts = {}) {
  const prefix = opts.prefix || newPrefix();
  const env = {
    ADAPTER_DRIVER: 'redis',
    REDIS_URL: opts.redisUrl || SHARED_REDIS,
    DATABASE_REDIS_KEY_PREFIX: prefix,
    CLUSTER_HEALTH_HEARTBEAT_INTERVAL: '200',
    CLUSTER_HEALTH_NODE_TIMEOUT: '1000',
    ...(opts.env || {}),
  };
  const nodes = [];
  for (let i = 1; i <= n; i++) {
    nodes.push(await startServer({ name: `${opts.name || 'node'}-${i}`, env }));
  }
  await Promise.all(nodes.map((s) => waitHealthy(s)));
  return { nodes, prefix, env };
}

/** A private redis-server on a free loopback port that a test may stop. */
class OwnRedis {
  constructor(port) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}/0`;
    this.proc = null;
  }

  static async create() {
    return new OwnRedis(await freePort());
  }

  async start() {
    this.proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      if (await ping(this.port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`redis-server on ${this.port} did not start`);
  }

  async stop() {
    if (!this.proc) return;
    const p = this.proc;
    this.proc = null;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }
}

/** Whether something answers PING on 127.0.0.1:port. */
function ping(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(500);
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** Keys of prefix in the machine's Redis (redis-cli), for cleanup checks. */
function redisKeys(prefix, port = 6379) {
  return execFileSync('redis-cli', ['-p', String(port), '--scan', '--pattern', `${prefix}:*`], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
}

module.exports = { startCluster, waitHealthy, OwnRedis, newPrefix, redisKeys, SHARED_REDIS };
