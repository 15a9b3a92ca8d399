// SPDX-License-Identifier: Apache-2.0
// Ten tabs of one origin over HTTP/2 (h2 over TLS, a certificate made for
// the test) in Debian's Chromium: a browser keeps one HTTP/2 connection per
// origin for all its tabs, and every tab asks for an SSE stream.  mod_http2
// processes only a few streams of a connection at once (here at most 8,
// H2MaxWorkers 8; then four tabs are closed, each cancel halving
// mod_http2's limit for the connection): the server keeps
// the connection's last places free (503 http2_streams_busy) and the
// client moves those tabs to WebSocket, which Chromium opens as HTTP/1.1
// connections of their own.  Every tab must get every message, and the
// pages' other requests (a fetch every 250 ms in each tab) keep answering.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { TOP, sleep, startServer } from '../../test-support/server.mjs';

const PORT = Number(process.env.UPM_E2E_H2_PORT || 8667);
const TLS_PORT = PORT + 1;
const TABS = 10;
const ARTIFACTS = join(TOP, 'clients/artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
let server;
let browser;
let profile;
let certDir;

const TAB_PAGE = `<!doctype html>
<meta charset="utf-8"><title>h2 tab</title>
<pre id="log"></pre>
<script type="module">
import { connect } from '/client/upload-progress.mjs';
const q = new URLSearchParams(location.search);
window.__got = [];
window.__errors = [];
window.__pings = [];
const conn = connect({
  // The endpoints of conf/upload-progress-endpoints.conf and
  // conf/upload-progress-websocket.conf, as shipped.
  url: { sse: '/api/upload/sessions/notifications/stream', websocket: '/ws/upload-progress' },
  transport: 'sse',
  token: q.get('token'), openTimeout: 5000,
});
conn.on('open', (o) => { window.__transport = o.transport; });
conn.on('message', (m) => {
  window.__got.push(m);
  document.getElementById('log').textContent += m.type + ' ' + (m.n ?? '') + '\\n';
});
conn.on('error', (e) => window.__errors.push({ code: e.code, status: e.status, message: e.message }));
window.__conn = conn;
// The page's other requests: one every 250 ms, on the same connection.
(async () => {
  for (;;) {
    const t0 = performance.now();
    try {
      const r = await fetch('/demo-config.json?' + Math.random(), { cache: 'no-store' });
      await r.text();
      window.__pings.push({ ok: r.ok, ms: performance.now() - t0, at: Date.now() });
    } catch {
      window.__pings.push({ ok: false, ms: -1, at: Date.now() });
    }
    await new Promise((r) => setTimeout(r, 250));
  }
})();
</script>
`;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  certDir = mkdtempSync(join(tmpdir(), 'upm-h2-cert-'));
  chmodSync(certDir, 0o755);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')], { stdio: 'ignore' });
  const conf = join(certDir, 'h2.conf.in');
  writeFileSync(conf, `
<IfModule !http2_module>
    LoadModule http2_module @MODDIR@/mod_http2.so
</IfModule>
<IfModule !ssl_module>
    LoadModule socache_shmcb_module @MODDIR@/mod_socache_shmcb.so
    LoadModule ssl_module @MODDIR@/mod_ssl.so
</IfModule>
# A small server's h2 workers: mod_http2 then processes at most 8 streams
# of a connection, however many requests have completed on it (with the
# defaults a busy page raises the limit to min(H2MaxWorkers,
# H2MaxSessionStreams), and the freeze needs that many tabs).
H2MinWorkers 4
H2MaxWorkers 8
Listen 127.0.0.1:${TLS_PORT}
<VirtualHost 127.0.0.1:${TLS_PORT}>
    ServerName localhost
    Protocols h2 http/1.1
    SSLEngine on
    SSLCertificateFile ${certDir}/cert.pem
    SSLCertificateKeyFile ${certDir}/key.pem
</VirtualHost>
`);
  server = await startServer({ port: PORT, name: `upm-e2e-h2-${PORT}`, extraConf: [conf] });
  writeFileSync(join(server.root, 'htdocs/h2tab.html'), TAB_PAGE);
  chmodSync(join(server.root, 'htdocs/h2tab.html'), 0o644);
  profile = mkdtempSync(join(tmpdir(), 'upm-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreHTTPSErrors: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--ignore-certificate-errors', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      // Background tabs keep their timers at full speed.
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows'],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

test(`${TABS} tabs on one origin over HTTP/2: every tab gets its messages, other requests keep answering`, async () => {
  const user = `h2tabs-${process.pid}`;
  const token = server.token(user);
  const base = `https://127.0.0.1:${TLS_PORT}`;
  const pages = [];
  for (let i = 0; i < TABS; i++) {
    const page = await browser.newPage();
    // Each tab has to load at all: with a frozen connection the 7th would not.
    await page.goto(`${base}/h2tab.html?token=${encodeURIComponent(token)}&tab=${i}`,
      { timeout: 10000 });
    pages.push(page);
  }
  const proto = await pages[0].evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  assert.equal(proto, 'h2', 'the pages are served over HTTP/2');
  for (const [i, page] of pages.entries()) {
    await page.waitForFunction(() => window.__transport, null, { timeout: 15000 })
      .catch(() => assert.fail(`tab ${i} never opened`));
  }
  const transports = await Promise.all(pages.map((p) => p.evaluate(() => window.__transport)));
  const errors = await Promise.all(pages.map((p) => p.evaluate(() => window.__errors)));
  const sse = transports.filter((t) => t === 'sse').length;
  assert.ok(sse >= 1, `the first tab's SSE stream is served over h2: ${transports}`);
  assert.equal(sse + transports.filter((t) => t === 'websocket').length, TABS,
    `the others moved to WebSocket: ${transports}`);
  for (const [i, t] of transports.entries()) {
    if (t === 'websocket') {
      assert.ok(errors[i].some((e) => e.code === 'http2_streams_busy' && e.status === 503),
        `tab ${i} moved because of 503 http2_streams_busy: ${JSON.stringify(errors[i])}`);
    }
  }

  // Requests of the pages while every tab holds its stream.
  const since = Date.now();
  await sleep(1500);
  await server.publish([1, 2, 3].map((n) => ({ type: 'h2_tab_probe', userId: user, n })));
  for (const [i, page] of pages.entries()) {
    await page.waitForFunction(() => window.__got.filter((m) => m.type === 'h2_tab_probe').length >= 3,
      null, { timeout: 10000 })
      .catch(async () => assert.fail(`tab ${i} (${transports[i]}) got ${JSON.stringify(await page.evaluate(() => window.__got))}`));
    const got = await page.evaluate(() => window.__got.filter((m) => m.type === 'h2_tab_probe').map((m) => m.n));
    assert.deepEqual(got, [1, 2, 3], `tab ${i}: every message once, in order`);
  }
  for (const [i, page] of pages.entries()) {
    const pings = await page.evaluate((t) => window.__pings.filter((p) => p.at >= t), since);
    assert.ok(pings.length >= 3, `tab ${i}: its other requests kept going (${pings.length} since the tabs opened)`);
    assert.ok(pings.every((p) => p.ok && p.ms < 2000),
      `tab ${i}: every other request answered promptly: ${JSON.stringify(pings.slice(0, 5))}`);
  }
  // A new request on the connection, from the last tab.
  const fresh = await pages.at(-1).evaluate(async () => {
    const t0 = performance.now();
    const r = await fetch('/demo-config.json?fresh', { cache: 'no-store' });
    await r.text();
    return { ok: r.ok, ms: performance.now() - t0 };
  });
  assert.ok(fresh.ok && fresh.ms < 2000, `a new request answers promptly: ${JSON.stringify(fresh)}`);
  await pages[0].screenshot({ path: join(ARTIFACTS, 'h2-tab-0.png') });

  // The user closes four tabs.  Chromium cancels their streams, and
  // mod_http2 halves the connection's limit at each cancel of a running
  // stream (down to 2): the six tabs left must keep working, and new tabs
  // must open.
  for (const page of pages.splice(TABS - 4, 4)) {
    await page.close();
    await sleep(300);
  }
  for (let i = 0; i < 2; i++) {
    const page = await browser.newPage();
    await page.goto(`${base}/h2tab.html?token=${encodeURIComponent(token)}&tab=new${i}`,
      { timeout: 10000 });
    await page.waitForFunction(() => window.__transport, null, { timeout: 15000 });
    pages.push(page);
  }
  const since2 = Date.now();
  await sleep(1500);
  await server.publish([4, 5].map((n) => ({ type: 'h2_tab_probe', userId: user, n })));
  for (const [i, page] of pages.entries()) {
    await page.waitForFunction(() => window.__got.filter((m) => m.type === 'h2_tab_probe' && m.n >= 4).length >= 2,
      null, { timeout: 10000 })
      .catch(async () => assert.fail(`after closing tabs, tab ${i} got ${JSON.stringify(await page.evaluate(() => window.__got.map((m) => m.n)))}`));
    const pings = await page.evaluate((t) => window.__pings.filter((p) => p.at >= t), since2);
    assert.ok(pings.length >= 3 && pings.every((p) => p.ok && p.ms < 2000),
      `after closing tabs, tab ${i}: other requests answered promptly: ${JSON.stringify(pings.slice(0, 5))}`);
  }
  for (const page of pages) await page.close();
});
