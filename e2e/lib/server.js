'use strict';
// Starts and stops the real sockudo binary for a test file.

const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const E2E_DIR = path.resolve(__dirname, '..');
const BIN = path.resolve(E2E_DIR, process.env.SOCKUDO_BIN || '../bin/sockudo');

const DEFAULT_APP = { id: 'app-id', key: 'app-key', secret: 'app-secret' };
const MASTER_KEY_B64 = 'nxzvbGF+f8FGhk/jOaZvgMle1tqxzF/VfUZLBLhhaH0=';

/** Servers started by this test file, so a failing test can print their logs. */
const known = new Set();

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function checkBinary() {
  if (!fs.existsSync(BIN)) {
    throw new Error(
      `sockudo binary not found at ${BIN}; build it with ` +
        '`cd /path/to/repo && go build -o bin/sockudo .` or set SOCKUDO_BIN',
    );
  }
}

/**
 * Runs the sockudo CLI (e.g. ['apps','create',...]) against dbPath and resolves
 * with {code, stdout, stderr}. Rejects if it exits non-zero.
 */
function runCli(args, { dbPath, env = {} } = {}) {
  checkBinary();
  return new Promise((resolve, reject) => {
    execFile(
      BIN,
      args,
      { env: { ...process.env, ...env, SOCKUDO_DB_PATH: dbPath }, timeout: 15000 },
      (err, stdout, stderr) => {
        if (err) {
          err.message +=
            `\nsockudo ${args.join(' ')} failed (exit ${err.code})\nstdout:\n${stdout}\nstderr:\n${stderr}`;
          reject(err);
        } else resolve({ code: 0, stdout, stderr });
      },
    );
  });
}

class SockudoServer {
  constructor({ name, env, tmpDir, dbPath, port }) {
    this.name = name;
    this.env = env;
    this.tmpDir = tmpDir;
    this.dbPath = dbPath;
    this.port = port;
    this.host = '127.0.0.1';
    // With SSL_ENABLED the same port serves https and wss.
    const secure = env.SSL_ENABLED === 'true';
    this.httpUrl = `${secure ? 'https' : 'http'}://127.0.0.1:${port}`;
    this.wsUrl = `${secure ? 'wss' : 'ws'}://127.0.0.1:${port}`;
    this.app = {
      id: env.SOCKUDO_DEFAULT_APP_ID || DEFAULT_APP.id,
      key: env.SOCKUDO_DEFAULT_APP_KEY || DEFAULT_APP.key,
      secret: env.SOCKUDO_DEFAULT_APP_SECRET || DEFAULT_APP.secret,
    };
    this.lines = [];
    this.proc = null;
    this.exited = null; // promise of {code, signal}
  }

  _capture(stream, tag) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this._line(tag, buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    stream.on('end', () => buf && this._line(tag, buf));
  }

  _line(tag, line) {
    this.lines.push(`[${tag}] ${line}`);
    if (this.lines.length > 3000) this.lines.splice(0, 1000);
    if (process.env.E2E_VERBOSE) process.stderr.write(`[${this.name} ${tag}] ${line}\n`);
  }

  logsTail(n = 40) {
    return this.lines.slice(-n).join('\n');
  }

  async start(timeoutMs = 10000) {
    checkBinary();
    this.proc = spawn(BIN, [], {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this._capture(this.proc.stdout, 'out');
    this._capture(this.proc.stderr, 'err');
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exitedAt = Date.now();
        this._line('e2e', `process exited: code=${code} signal=${signal}`);
        resolve({ code, signal });
      });
    });
    known.add(this);
    let exitedEarly = null;
    this.exited.then((x) => (exitedEarly = x));
    const deadline = Date.now() + timeoutMs;
    let lastErr = 'no response';
    while (Date.now() < deadline) {
      if (exitedEarly) {
        throw new Error(
          `sockudo (${this.name}) exited during startup with ${JSON.stringify(exitedEarly)}\n` +
            this.logsTail(60),
        );
      }
      try {
        const res = await fetch(`${this.httpUrl}/up`, { signal: AbortSignal.timeout(1000) });
        await res.text();
        if (res.status === 200) return this;
        lastErr = `GET /up → ${res.status}`;
      } catch (e) {
        lastErr = e.cause?.code || e.message;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.stop();
    throw new Error(
      `sockudo (${this.name}) not ready on ${this.httpUrl}/up within ${timeoutMs} ms (${lastErr})\n` +
        this.logsTail(60),
    );
  }

  /** SIGTERM, wait for exit (SIGKILL after killAfterMs). Resolves with {code, signal}. */
  async stop(killAfterMs = 5000) {
    if (!this.proc) return null;
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
    this.proc.kill('SIGTERM');
    let timer;
    const killed = new Promise((resolve) => {
      timer = setTimeout(() => {
        this._line('e2e', `did not exit within ${killAfterMs} ms of SIGTERM; sending SIGKILL`);
        this.proc.kill('SIGKILL');
        resolve();
      }, killAfterMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }

  cleanupFiles() {
    try {
      fs.rmSync(this.tmpDir, { recursive: true, force: true });
    } catch {}
  }
}

/**
 * Creates a tmp dir + db, optionally creates extra apps with the CLI, starts
 * the server and waits for /up.
 *
 * opts.env: extra environment (SOCKUDO_DEFAULT_APP_*, ACTIVITY_TIMEOUT, ...)
 * opts.apps: [{id, key, secret, flags: ['--enable-client-messages', ...]}]
 */
async function startServer(opts = {}) {
  const name = opts.name || 'sockudo';
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockudo-e2e-'));
  const dbPath = path.join(tmpDir, 'sockudo.db');
  const port = await freePort();
  const env = {
    PORT: String(port),
    HOST: '127.0.0.1',
    SOCKUDO_DB_PATH: dbPath,
    LOG_LEVEL: 'debug',
    // Suites open many sockets from 127.0.0.1 and run several servers at
    // once: limits and the metrics port are turned on by the tests of them.
    RATE_LIMITER_ENABLED: 'false',
    METRICS_ENABLED: 'false',
    SOCKUDO_DEFAULT_APP_ID: DEFAULT_APP.id,
    SOCKUDO_DEFAULT_APP_KEY: DEFAULT_APP.key,
    SOCKUDO_DEFAULT_APP_SECRET: DEFAULT_APP.secret,
    ...(opts.env || {}),
  };
  const server = new SockudoServer({ name, env, tmpDir, dbPath, port });
  for (const app of opts.apps || []) {
    const args = ['apps', 'create', '--id', app.id, '--key', app.key, '--secret', app.secret];
    args.push(...(app.flags || []));
    const out = await runCli(args, { dbPath });
    server._line('cli', `sockudo ${args.join(' ')}: ${out.stdout.trim()} ${out.stderr.trim()}`);
  }
  await server.start(opts.startTimeoutMs);
  return server;
}

/** Log tails of the servers that are running or stopped in the last 10 s. */
function runningServersLogs(n = 40) {
  const recent = Date.now() - 10000;
  return [...known]
    .filter((s) => !s.exitedAt || s.exitedAt > recent)
    .map((s) => `--- ${s.name} (${s.httpUrl}) last ${n} log lines ---\n${s.logsTail(n)}`)
    .join('\n');
}

module.exports = {
  startServer,
  runCli,
  freePort,
  runningServersLogs,
  SockudoServer,
  BIN,
  DEFAULT_APP,
  MASTER_KEY_B64,
};
