'use strict';
// The operator console (/console) in a real browser: playwright-core driving
// Debian's chromium (`--headless --no-sandbox`). Log in with the token, watch
// a pusher-js client connect and subscribe, trigger an event from the form and
// see the client get it, see a webhook failure (a receiver answering 500) and
// replay its dead letter, log out; the wrong token is refused. A screenshot is
// saved in e2e/artifacts/console.png.

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { before, after } = require('node:test');
const { chromium } = require('playwright-core');

const { it } = require('../lib/harness');
const { startServer, DEFAULT_APP } = require('../lib/server');
const { connectedClient, subscribe, newBackend } = require('../lib/clients');
const { WebhookReceiver } = require('../lib/webhook-receiver');
const { startCluster } = require('../lib/cluster');

const TOKEN = 'console-e2e-operator-token-0123456789';
const ARTIFACTS = path.resolve(__dirname, '..', 'artifacts');

let server;
let receiver;
let browser;

function chromiumPath() {
  return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim();
}

before(async () => {
  receiver = new WebhookReceiver(DEFAULT_APP);
  receiver.status = 500;
  await receiver.start();
  server = await startServer({
    env: {
      CONSOLE_ENABLED: 'true',
      CONSOLE_TOKEN: TOKEN,
      // The console's login is rate-limited even with the shared limiters off.
      SOCKUDO_DEFAULT_APP_WEBHOOKS: JSON.stringify([
        { url: `${receiver.url}/hook?token=receiver-secret-token`, event_types: ['channel_occupied'] },
      ]),
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      WEBHOOK_BATCHING_DURATION: '10',
      // One attempt: the 500 turns into a dead letter at once.
      WEBHOOK_RETRY_MAX_ATTEMPTS: '1',
    },
  });
  browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--headless', '--no-sandbox'] });
});

after(async () => {
  if (browser) await browser.close();
  if (receiver) await receiver.stop();
  if (server) {
    await server.stop();
    server.cleanupFiles();
  }
});

async function login(page, token) {
  await page.goto(`${server.httpUrl}/console`);
  await page.locator('#login').waitFor({ state: 'visible', timeout: 5000 });
  await page.fill('#token', token);
  await page.click('#login-btn');
}

it('refuses the wrong token', async () => {
  const page = await browser.newPage();
  try {
    await login(page, 'not-the-token-0123456789');
    await page.locator('#login-error', { hasText: 'Invalid credentials' }).waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#main').isVisible(), false);
    const api = await page.evaluate(async () => (await fetch('/console/api/session')).status);
    assert.equal(api, 401);
  } finally {
    await page.close();
  }
});

it('watches a client, triggers an event, replays a failed webhook, logs out', async () => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e));
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  try {
    await login(page, TOKEN);
    await page.locator('#main').waitFor({ state: 'visible', timeout: 5000 });
    assert.match(await page.textContent('#who'), /operator/);
    assert.equal(await page.locator('#nodes-panel').isVisible(), false, 'no nodes panel in local mode');
    // The session cookie is HttpOnly and SameSite=Strict.
    const [cookie] = await context.cookies();
    assert.equal(cookie.name, 'sockudo_console');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(await page.evaluate(() => document.cookie), '');

    // The event stream is registered before the server answers it.
    await page.locator('#live[data-state="open"]').waitFor({ timeout: 5000 });

    const client = await connectedClient(server);
    const socketId = client.connection.socket_id;
    await subscribe(client, 'console-demo');
    const t0 = Date.now();
    await page.locator('#events li[data-kind="subscribed"]', { hasText: socketId }).waitFor({ timeout: 1000 });
    await page.locator('#events li[data-kind="connected"]', { hasText: socketId }).waitFor({ timeout: 1000 });
    assert.ok(Date.now() - t0 <= 1000, 'subscription shown within a second');
    await page.locator('#channels tr[data-channel="console-demo"]').waitFor({ timeout: 3000 });
    await page.locator('#c-connections', { hasText: '1' }).waitFor({ timeout: 3000 });

    // Trigger from the form; the pusher-js client receives it.
    await page.fill('#t-channel', 'console-demo');
    await page.fill('#t-event', 'console-test');
    await page.fill('#t-data', '{"from":"console"}');
    await page.click('#t-send');
    const got = await client.log.waitFor((m) => m.event === 'console-test' && m.channel === 'console-demo', 5000);
    assert.deepEqual(got.data, { from: 'console' });
    await page.locator('#t-result', { hasText: 'sent' }).waitFor({ timeout: 3000 });
    await page.locator('#events li[data-kind="api_event"]', { hasText: 'console-test' }).waitFor({ timeout: 3000 });

    // The channel_occupied webhook got a 500: a failure in the stream and a
    // dead letter in the list.
    await page.locator('#events li.webhook.bad', { hasText: 'status 500' }).waitFor({ timeout: 10000 });
    const row = page.locator('#dead tbody tr', { hasText: 'status 500' }).first();
    await row.waitFor({ timeout: 10000 });
    const content = await page.content();
    assert.ok(!content.includes('receiver-secret-token'), 'the receiver URL query is redacted');
    assert.ok(!content.includes(DEFAULT_APP.secret) && !content.includes(TOKEN), 'no secret or token on the page');

    // Inspect the channel.
    await page.click('#channels tr[data-channel="console-demo"]');
    await page.locator('#inspector', { hasText: '"subscription_count": 1' }).waitFor({ timeout: 3000 });

    // Pause: new events wait until Resume.
    await page.click('#pause');
    await page.locator('#pause', { hasText: 'Resume' }).waitFor({ timeout: 2000 });
    const backend = newBackend(server);
    await backend.trigger('console-demo', 'while-paused', { n: 1 });
    await client.log.waitFor((m) => m.event === 'while-paused', 5000);
    assert.equal(await page.locator('#events li', { hasText: 'while-paused' }).count(), 0, 'shown while paused');
    await page.click('#pause');
    await page.locator('#events li[data-kind="api_event"]', { hasText: 'while-paused' }).waitFor({ timeout: 3000 });

    // The filters: a prefix that matches nothing hides every line.
    await page.fill('#f-prefix', 'nothing-');
    await page.locator('#events li').first().waitFor({ state: 'detached', timeout: 3000 });
    await page.fill('#f-prefix', '');

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'console.png'), fullPage: true });

    // Replay it once the receiver is healthy: it arrives and is delivered.
    receiver.status = 200;
    const before = receiver.requests.length;
    await row.locator('button.replay').click();
    await page.locator('#replay-result', { hasText: '1 replayed' }).waitFor({ timeout: 5000 });
    await receiver.waitEvent((e) => e.name === 'channel_occupied' && e.channel === 'console-demo' &&
      receiver.requests.length > before, 10000, 'replayed webhook');
    await page.locator('#events li[data-kind="webhook"]:not(.bad)', { hasText: 'delivered' }).waitFor({ timeout: 10000 });
    await page.locator('#dead tbody tr').first().waitFor({ state: 'detached', timeout: 5000 });

    // Log out: back to the login form, and the session is gone.
    await page.click('#logout');
    await page.locator('#login').waitFor({ state: 'visible', timeout: 5000 });
    const status = await page.evaluate(async () => (await fetch('/console/api/session')).status);
    assert.equal(status, 401);
    assert.deepEqual(pageErrors, []);
    // No Content-Security-Policy violations or failed requests but the
    // expected 401 of the session check after logout.
    assert.deepEqual(consoleErrors.filter((m) => !/401/.test(m)), []);
  } finally {
    await context.close();
  }
});

it('shows the cluster\'s nodes in Redis mode', async () => {
  const cluster = await startCluster(2, { name: 'console', env: { CONSOLE_ENABLED: 'true', CONSOLE_TOKEN: TOKEN } });
  const page = await browser.newPage();
  try {
    await page.goto(`${cluster.nodes[0].httpUrl}/console`);
    await page.locator('#login').waitFor({ state: 'visible', timeout: 5000 });
    await page.fill('#token', TOKEN);
    await page.click('#login-btn');
    await page.locator('#nodes-panel').waitFor({ state: 'visible', timeout: 5000 });
    // Both nodes, alive, this one marked; connections are this node's.
    await page.locator('#nodes tbody tr[data-state="alive"]').nth(1).waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#nodes tbody tr').count(), 2);
    assert.equal(await page.locator('#nodes tbody tr.self').count(), 1);
    assert.match(await page.textContent('#nodes-summary'), /2 node\(s\) in Redis/);
    assert.match(await page.locator('#c-connections + span').innerText(), /this node/);
  } finally {
    await page.close();
    for (const n of cluster.nodes) {
      await n.stop();
      n.cleanupFiles();
    }
  }
});
