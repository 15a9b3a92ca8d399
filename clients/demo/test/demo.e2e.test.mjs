// SPDX-License-Identifier: Apache-2.0
// The demo page in a real browser (Debian's Chromium driven by
// playwright-core) against the demo httpd, as a person would use it.
// Screenshots go to clients/artifacts/.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { TOP, sleep, startServer } from '../../test-support/server.mjs';

const PORT = Number(process.env.UPM_E2E_PORT || 8662);
const REDIS_PORT = Number(process.env.UPM_E2E_REDIS_PORT || 8665);
const ARTIFACTS = join(TOP, 'clients/artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
let server;
let browser;
let profile;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), 'upm-chromium-'));
  // A fresh profile per run; Debian's Chromium, never a downloaded browser.
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function openDemo() {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(`${server.base}/`);
  await page.waitForSelector('#status[data-status="open"]', { timeout: 15000 });
  return { page, problems };
}

// The log as the person sees it: one entry per message, in arrival order.
const logEntries = (page) => page.$$eval('#log li[data-type]', (lis) => lis.map((li) => ({
  type: li.dataset.type, id: li.dataset.id, key: li.dataset.key, text: li.textContent,
})));

function assertIdsIncrease(entries) {
  const ids = entries.map((e) => e.id).filter(Boolean);
  assert.equal(new Set(ids).size, ids.length, 'no message twice');
  for (let i = 1; i < ids.length; i++) {
    const [a, b] = [ids[i - 1], ids[i]].map((x) => x.split('-').map(BigInt));
    assert.ok(a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]), `ids in order: ${ids[i - 1]} then ${ids[i]}`);
  }
}

function assertUploadEvents(upload) {
  assert.equal(upload[0], 'upload_started');
  assert.equal(upload.at(-1), 'upload_completed');
  assert.ok(upload.filter((t) => t === 'upload_progress').length >= 2,
    `several progress steps for a 3 MiB upload at 2 MB/s: ${upload.join(' ')}`);
  assert.deepEqual(upload.filter((t) => t !== 'upload_progress'), ['upload_started', 'upload_completed']);
}

// The demo as scripts/demo.sh runs it: on the embedded default, and fed
// from a local redis-server (scripts/demo.sh --redis); the page must work
// the same.
for (const mode of ['embedded', 'redis']) {
  const suffix = mode === 'redis' ? '-redis' : '';
  describe(`demo (${mode})`, () => {
  before(async () => {
    server = await startServer({
      port: PORT, name: `upm-e2e-${PORT}`, redisPort: mode === 'redis' ? REDIS_PORT : 0,
    });
  });
  after(async () => {
    await server?.stop();
  });

  test('the page connects and shows its status and transport', async () => {
    const { page, problems } = await openDemo();
    const transport = await page.textContent('#transport');
    assert.match(transport, /via websocket/);
    assert.equal(await page.textContent('#user'), 'demo-user');
    assert.deepEqual(problems, []);
    await page.close();
  });

  // The upload bar moves only on the module's upload_* events (native
  // tracking, UploadProgressTrack on the demo's /upload).
  test('uploading a file: both bars reach 100% and the log shows the events in order', async () => {
    const { page, problems } = await openDemo();
    const dir = mkdtempSync(join(tmpdir(), 'upm-upload-'));
    const file = join(dir, 'holiday.jpg');
    writeFileSync(file, randomBytes(3 * 1024 * 1024));
    try {
      await page.setInputFiles('#files', file);
      await page.check('#slow');
      await page.click('#upload-button');
      const row = page.locator('#file-rows tr').first();
      await row.waitFor({ timeout: 5000 });
      const photoId = await row.getAttribute('data-photo-id');
      try {
        await page.waitForSelector(`tr[data-photo-id="${photoId}"] .bar.upload[aria-valuenow="100"]`, { timeout: 30000 });
        await page.waitForSelector(`tr[data-photo-id="${photoId}"] .bar.job[aria-valuenow="100"]`, { timeout: 30000 });
      } finally {
        await page.screenshot({ path: join(ARTIFACTS, `demo-upload${suffix}.png`), fullPage: true });
      }

      const entries = await logEntries(page);
      assertIdsIncrease(entries);
      const upload = entries.filter((e) => e.key === photoId && e.type.startsWith('upload_')).map((e) => e.type);
      assertUploadEvents(upload);
      const jobKey = `job-${photoId}`;
      const job = entries.filter((e) => e.key === photoId && e.type.startsWith('job_'));
      assert.deepEqual(job.map((e) => e.type), ['job_progress', 'job_progress', 'job_progress', 'job_progress',
        'job_progress', 'job_completed']);
      assert.ok(job.every((e) => e.text.includes(jobKey)));
      // The job starts after the upload completed.
      const firstJob = entries.findIndex((e) => e.type.startsWith('job_') && e.key === photoId);
      const done = entries.findIndex((e) => e.type === 'upload_completed' && e.key === photoId);
      assert.ok(done >= 0 && done < firstJob, 'upload_completed comes before the job');
      assert.deepEqual(problems, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await page.close();
    }
  });

  test('the server drops the connection: the page reconnects and misses nothing', async () => {
    const { page, problems } = await openDemo();
    const key = `ph-resume-${Date.now()}`;
    const ev = (n) => ({ event: 'PhotoUploadProgressed', userId: 'demo-user', photoId: key, bytesUploaded: n * 100, totalBytes: 1000, n });
    await server.publish([ev(1), ev(2)]);
    await page.waitForFunction((k) => document.querySelectorAll(`#log li[data-key="${k}"]`).length >= 2, key, { timeout: 10000 });

    // A graceful restart closes every stream; publish while the page is away.
    const restarted = server.graceful();
    await page.waitForSelector('#status:not([data-status="open"])', { timeout: 10000 });
    for (let i = 0; ; i++) {
      try {
        await server.publish([ev(3), ev(4), ev(5)]);
        break;
      } catch (e) {
        if (i > 20) throw e;
        await sleep(100);
      }
    }
    await restarted;
    await page.waitForSelector('#status[data-status="open"]', { timeout: 20000 });
    await page.waitForFunction((k) => document.querySelectorAll(`#log li[data-key="${k}"]`).length >= 5, key, { timeout: 20000 });
    await server.publish([ev(6)]);
    await page.waitForFunction((k) => document.querySelectorAll(`#log li[data-key="${k}"]`).length >= 6, key, { timeout: 10000 });
    await sleep(300);
    await page.screenshot({ path: join(ARTIFACTS, `demo-resume${suffix}.png`), fullPage: true });

    const entries = await logEntries(page);
    assertIdsIncrease(entries);
    const ns = entries.filter((e) => e.key === key).map((e) => Number(/n=(\d+)/.exec(e.text)[1]));
    assert.deepEqual(ns, [1, 2, 3, 4, 5, 6], 'every message once, in order, across the drop');
    const bar = await page.getAttribute(`tr[data-photo-id="${key}"] .bar.upload`, 'aria-valuenow');
    assert.equal(bar, '60');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('the publisher form publishes to the signed-in user, not to others', async () => {
    const { page, problems } = await openDemo();
    await page.selectOption('#sample', 'other');
    await page.click('#publish-button');
    await page.waitForFunction(() => /^202 /.test(document.querySelector('#publish-result').textContent));
    await page.selectOption('#sample', 'session');
    await page.click('#publish-button');
    await page.waitForSelector('#log li[data-type="session_created"]', { timeout: 10000 });
    const entries = await logEntries(page);
    assert.deepEqual(entries.map((e) => e.type), ['session_created'], 'another user\'s event is not shown');
    assert.deepEqual(problems, []);
    await page.close();
  });
  });
}
