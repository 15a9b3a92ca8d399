// SPDX-License-Identifier: Apache-2.0
// Starts a real httpd with the module just built, for the client and
// browser tests: the demo configuration (scripts/demo-conf.sh) on a given
// port, plus test locations.  Every wait is bounded.
import { execFile, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const TOP = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const HTTPD = '/usr/sbin/apache2';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const b64u = (s) => Buffer.from(s).toString('base64url');

export function makeToken(secret, sub, { ttl = 3600, extra = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64u(JSON.stringify({ sub, iat: now, exp: now + ttl, ...extra }));
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

async function answers(url, ms) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(ms) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

function pidOf(root) {
  try {
    return Number(readFileSync(join(root, 'logs/httpd.pid'), 'utf8').trim());
  } catch {
    return 0;
  }
}

function alive(pid) {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// Children of httpd's parent process, from /proc.
export function childPids(pid) {
  const out = [];
  for (const d of execFileSync('ls', ['/proc']).toString().split('\n')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

// redisPort: also start a redis-server there and feed the module from it
// (the demo's -DUPM_REDIS), as scripts/demo.sh --redis does.
export async function startServer({ port, extraConf = [], name = `upm-clients-${port}`, redisPort = 0 } = {}) {
  const root = join(tmpdir(), name);
  rmSync(join(root, 'logs'), { recursive: true, force: true });
  await run(join(TOP, 'scripts/demo-conf.sh'), [root, String(port), ...extraConf],
    { env: { ...process.env, REDIS_PORT: String(redisPort || 6390) } });
  const conf = join(root, 'conf/httpd.conf');
  const defines = redisPort ? ['-DUPM_REDIS'] : [];
  const old = pidOf(root);
  if (alive(old)) {
    await run(HTTPD, ['-f', conf, '-k', 'stop']).catch(() => {});
    for (let i = 0; i < 50 && alive(old); i++) await sleep(100);
  }
  const redisPid = join(root, 'redis.pid');
  if (redisPort) {
    await run('redis-server', ['--bind', '127.0.0.1', '--port', String(redisPort), '--save', '',
      '--appendonly', 'no', '--daemonize', 'yes', '--pidfile', redisPid,
      '--logfile', join(root, 'logs/redis.log')]);
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      ok = await run('redis-cli', ['-p', String(redisPort), 'ping']).then((r) => r.stdout.trim() === 'PONG', () => false);
      if (!ok) await sleep(100);
    }
    if (!ok) throw new Error(`redis-server on ${redisPort} did not answer`);
  }
  const stopRedis = async () => {
    let pid = 0;
    try { pid = Number(readFileSync(redisPid, 'utf8').trim()); } catch { return; }
    if (!alive(pid)) return;
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
  };
  const base = `http://127.0.0.1:${port}`;
  try {
    await run(HTTPD, [...defines, '-f', conf, '-k', 'start']);
    let up = false;
    for (let i = 0; i < 50 && !up; i++) {
      up = await answers(`${base}/demo-config.json`, 1000);
      if (!up) await sleep(100);
    }
    if (!up) throw new Error(`httpd on ${port} did not answer: see ${root}/logs/error_log`);
  } catch (e) {
    await stopRedis();
    throw e;
  }
  const secret = readFileSync(join(root, 'secret'), 'utf8').split('\n')[0];

  const server = {
    root,
    base,
    port,
    wsBase: base.replace(/^http/, 'ws'),
    token: (sub, opts) => makeToken(secret, sub, opts),
    // POST to the publish endpoint; resolves with the 202 body.
    async publish(events, path = '/publish') {
      const res = await fetch(base + path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(events),
        signal: AbortSignal.timeout(5000),
      });
      const body = await res.json();
      if (res.status !== 202) throw new Error(`publish: ${res.status} ${JSON.stringify(body)}`);
      return body;
    },
    pid: () => pidOf(root),
    // apachectl graceful: the children close their streams (SSE with a
    // retry:, WebSocket with 1001); the replay ring and its ids survive.
    async graceful() {
      const before = childPids(pidOf(root));
      await run(HTTPD, [...defines, '-f', conf, '-k', 'graceful']);
      // Wait until new children serve requests.
      for (let i = 0; i < 100; i++) {
        const now = childPids(pidOf(root));
        if (now.some((p) => !before.includes(p)) && await answers(`${base}/demo-config.json`, 500)) return;
        await sleep(100);
      }
      throw new Error('graceful restart did not complete in 10 s');
    },
    // Freezes or thaws every httpd process (a connection that goes silent).
    signalAll(sig) {
      const p = pidOf(root);
      for (const c of childPids(p)) {
        try { process.kill(c, sig); } catch { /* gone */ }
      }
      process.kill(p, sig);
    },
    errorLog: () => readFileSync(join(root, 'logs/error_log'), 'utf8'),
    async stop() {
      const p = pidOf(root);
      if (alive(p)) {
        try {
          server.signalAll('SIGCONT');
        } catch { /* not stopped */ }
        await run(HTTPD, [...defines, '-f', conf, '-k', 'stop']).catch(() => {});
        for (let i = 0; i < 100 && alive(p); i++) await sleep(100);
        if (alive(p)) process.kill(p, 'SIGKILL');
      }
      await stopRedis();
    },
  };
  return server;
}

// Collects a connection's messages; waitFor(pred) resolves when pred holds.
export function collector(conn, type = 'message') {
  const got = [];
  const waiters = [];
  conn.on(type, (m) => {
    got.push(m);
    for (const w of [...waiters]) {
      if (w.pred(got)) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(got);
      }
    }
  });
  got.waitFor = (pred, ms = 10000, what = 'messages') => new Promise((resolve, reject) => {
    if (pred(got)) {
      resolve(got);
      return;
    }
    const w = { pred, resolve };
    w.timer = setTimeout(() => {
      waiters.splice(waiters.indexOf(w), 1);
      reject(new Error(`timed out after ${ms} ms waiting for ${what}; got ${JSON.stringify(got.map((m) => [m.type, m.id, m.n]))}`));
    }, ms);
    waiters.push(w);
  });
  return got;
}

export function waitStatus(conn, status, ms = 10000) {
  return new Promise((resolve, reject) => {
    if (conn.status === status) {
      resolve();
      return;
    }
    const timer = setTimeout(() => {
      off();
      reject(new Error(`status ${status} not reached in ${ms} ms (is ${conn.status})`));
    }, ms);
    const off = conn.on('status', (s) => {
      if (s === status) {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  });
}
