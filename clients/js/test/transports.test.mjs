// SPDX-License-Identifier: Apache-2.0
// The client against a real httpd with the module: every transport the
// module offers, delivery, isolation, resume after the server drops the
// connection, reset, dead connections and token expiry.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import { connect } from '../upload-progress.mjs';
import { messageSchema, validate } from '../../test-support/schema.mjs';
import { collector, sleep, startServer, waitStatus } from '../../test-support/server.mjs';

const PORT = Number(process.env.UPM_TEST_PORT || 8660);
let server;
let seq = 0;
const uniq = (p) => `${p}-${process.pid}-${++seq}`;

before(async () => {
  server = await startServer({
    port: PORT,
    extraConf: [fileURLToPath(new URL('./server.conf.in', import.meta.url))],
  });
});
after(async () => {
  await server?.stop();
});

const VARIANTS = [
  { name: 'sse (fetch reader)', transport: 'sse', path: '/t/sse', dead: true },
  {
    name: 'sse (EventSource)', transport: 'sse', path: '/t/sse',
    opts: { sse: 'eventsource', EventSource },
  },
  {
    name: 'websocket', transport: 'websocket', path: '/t/ws', dead: true,
    opts: { WebSocket },
  },
  { name: 'poll', transport: 'poll', path: '/t/poll', opts: { pollWait: 5 } },
];

function open(v, user, extra = {}) {
  return connect({
    url: server.base + v.path,
    transport: v.transport,
    token: server.token(user),
    openTimeout: 3000,
    ...v.opts,
    ...extra,
  });
}

const progress = (user, n, more = {}) => ({
  event: 'PhotoUploadProgressed', userId: user, photoId: `ph-${n}`,
  bytesUploaded: n * 10, totalBytes: 1000, n, ...more,
});

// Publishes, retrying while a restarting server refuses connections.
async function publish(events) {
  for (let i = 0; ; i++) {
    try {
      return await server.publish(events);
    } catch (e) {
      if (i >= 20) throw e;
      await sleep(100);
    }
  }
}

function assertInOrder(msgs, ns) {
  assert.deepEqual(msgs.map((m) => m.n), ns, 'every message once, in order');
  const ids = msgs.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, 'no duplicate ids');
}

for (const v of VARIANTS) {
  describe(v.name, () => {
    test('delivers the user\'s own messages, in order, with progress computed', async () => {
      const me = uniq('u');
      const other = uniq('u');
      const conn = open(v, me);
      const got = collector(conn);
      await waitStatus(conn, 'open');
      assert.equal(conn.transport, v.transport);
      await publish([progress(me, 1), progress(other, 2), progress(me, 3), progress(me, 4)]);
      await got.waitFor((g) => g.length >= 3);
      await sleep(300);
      assertInOrder(got, [1, 3, 4]);
      assert.equal(got[0].type, 'upload_progress');
      assert.equal(got[0].progress, 1);
      assert.equal(got[2].photoId, 'ph-4');
      assert.equal(conn.lastEventId, got[2].id);
      conn.close();
      assert.equal(conn.status, 'closed');
    });

    test('a disconnect for the user ends the connection, which stays closed', async () => {
      const me = uniq('u');
      const conn = open(v, me);
      const got = collector(conn);
      let told = null;
      conn.on('disconnect', (m) => { told = m; });
      await waitStatus(conn, 'open');
      await publish([progress(me, 1), { type: 'disconnect', userId: me, reason: 'token_revoked' }]);
      await got.waitFor((g) => g.some((m) => m.type === 'disconnect'));
      assert.equal(told && told.reason, 'token_revoked', 'the disconnect event with its fields');
      assert.equal(conn.status, 'closed', 'the client closed itself');
      await sleep(500);
      await publish([progress(me, 2)]);
      await sleep(500);
      assert.deepEqual(got.map((m) => m.type), ['upload_progress', 'disconnect'], 'nothing after it');
      assert.equal(conn.status, 'closed', 'and did not reconnect');
    });

    test('messages, resets and tracked-upload fields match the schema in docs/events.md', async () => {
      const me = uniq('u');
      const schema = messageSchema();
      const conn = open(v, me, { lastEventId: '1-1' });
      const got = collector(conn);
      await waitStatus(conn, 'open');
      await publish([
        progress(me, 1, { sessionId: 's-1', fileId: 'f.1', jobId: 'j:1', projectId: 'p@1' }),
        { event: 'PhotoUploadFailed', userId: me, photoId: 'ph-9', reason: 'too_large', totalBytes: 0, bytesUploaded: 0 },
        { event: 'UploadJobProgressed', userId: me, jobId: 'j-2', progress: { partsCompleted: 1, partsTotal: 4 }, bytesCompleted: 1, bytesTotal: 4 },
        { type: 'session_created', userId: me, sessionId: 's-2', totalCount: 3, metadata: { a: 1 } },
      ]);
      await got.waitFor((g) => g.length >= 5);
      // An upload through the demo's tracked /upload location.
      const up = await fetch(`${server.base}/upload`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${server.token(me)}`, 'X-Progress-ID': 'up-1' },
        body: Buffer.alloc(300 * 1024, 1),
        signal: AbortSignal.timeout(10000),
      });
      assert.equal(up.status, 200);
      await up.text();
      await got.waitFor((g) => g.some((m) => m.type === 'upload_completed' && m.photoId === 'up-1'));
      assert.equal(got[0].type, 'reset');
      for (const m of got) assert.deepEqual(validate(schema, m), [], JSON.stringify(m));
      assert.equal(got[3].progressPercent, 25);
      // The schema is not vacuous: it refuses what the server must never send.
      assert.notDeepEqual(validate(schema, { ...got[1], id: 'x' }), []);
      assert.notDeepEqual(validate(schema, { ...got[1], progress: 101 }), []);
      assert.notDeepEqual(validate(schema, { type: 'upload_progress' }), []);
      conn.close();
    });

    test('type listeners get their type only; a stream narrowed to a job gets that job only', async () => {
      const me = uniq('u');
      const conn = open(v, me, { jobId: 'job-a' });
      const all = collector(conn);
      const done = collector(conn, 'job_completed');
      await waitStatus(conn, 'open');
      await publish([
        { event: 'UploadJobProgressed', userId: me, jobId: 'job-b', progressPercent: 10, n: 1 },
        { event: 'UploadJobProgressed', userId: me, jobId: 'job-a', progressPercent: 50, n: 2 },
        { event: 'UploadJobCompleted', userId: me, jobId: 'job-b', n: 3 },
        { event: 'UploadJobCompleted', userId: me, jobId: 'job-a', n: 4 },
      ]);
      await done.waitFor((g) => g.length >= 1);
      await sleep(300);
      assertInOrder(all, [2, 4]);
      assert.deepEqual(done.map((m) => [m.type, m.jobId]), [['job_completed', 'job-a']]);
      conn.close();
    });

    test('resumes from a given lastEventId: the missed messages, then live ones', async () => {
      const me = uniq('u');
      const { ids } = await publish([progress(me, 1), progress(me, 2), progress(me, 3)]);
      const conn = open(v, me, { lastEventId: ids[0] });
      const got = collector(conn);
      await waitStatus(conn, 'open');
      await got.waitFor((g) => g.length >= 2);
      await publish([progress(me, 4)]);
      await got.waitFor((g) => g.length >= 3);
      await sleep(300);
      assertInOrder(got, [2, 3, 4]);
      assert.deepEqual(got.slice(0, 2).map((m) => m.id), ids.slice(1));
      conn.close();
    });

    test('after the server drops the connection (graceful restart): no message lost or duplicated', async () => {
      const me = uniq('u');
      const conn = open(v, me);
      const got = collector(conn);
      const statuses = [];
      conn.on('status', (s) => statuses.push(s));
      await waitStatus(conn, 'open');
      await publish([progress(me, 1), progress(me, 2)]);
      await got.waitFor((g) => g.length >= 2);
      const restarted = server.graceful();
      if (v.transport !== 'poll') {
        // Published while the client is away: it must get them on resume.
        await waitStatus(conn, 'reconnecting');
      }
      await publish([progress(me, 3), progress(me, 4), progress(me, 5)]);
      await restarted;
      await got.waitFor((g) => g.length >= 5, 15000);
      await publish([progress(me, 6)]);
      await got.waitFor((g) => g.length >= 6);
      await sleep(300);
      assertInOrder(got, [1, 2, 3, 4, 5, 6]);
      if (v.transport !== 'poll') {
        assert.deepEqual(statuses.slice(-2), ['reconnecting', 'open']);
      }
      assert.equal(conn.status, 'open');
      conn.close();
    });

    // Not with the eventsource package: it ignores an id without data,
    // which WHATWG HTML 9.2.6 says sets the last event id (browsers do).
    if (!v.opts?.EventSource) test('dropped before its first message: what was published meanwhile still arrives', async () => {
      const me = uniq('u');
      const conn = open(v, me);
      const got = collector(conn);
      await waitStatus(conn, 'open');
      const restarted = server.graceful();
      if (v.transport !== 'poll') await waitStatus(conn, 'reconnecting');
      await publish([progress(me, 1), progress(me, 2)]);
      await restarted;
      await got.waitFor((g) => g.length >= 2, 15000);
      await sleep(300);
      assertInOrder(got, [1, 2]);
      conn.close();
    });

    test('an id of another epoch gets a reset, then live messages', async () => {
      const me = uniq('u');
      const conn = open(v, me, { lastEventId: '1-1' });
      const resets = collector(conn, 'reset');
      const got = collector(conn);
      await resets.waitFor((g) => g.length >= 1);
      assert.equal(resets[0].reason, 'epoch');
      assert.equal(conn.lastEventId, resets[0].id, 'resumes from the reset\'s id next time');
      await publish([progress(me, 1)]);
      await got.waitFor((g) => g.some((m) => m.n === 1));
      assert.deepEqual(got.map((m) => m.type), ['reset', 'upload_progress']);
      assert.equal(got[1].id.split('-')[0], resets[0].id.split('-')[0], 'same epoch as the reset');
      conn.close();
    });

    test('an id from the future gets a reset with reason invalid', async () => {
      const me = uniq('u');
      const { ids } = await publish([progress(me, 1)]);
      const future = `${ids[0].split('-')[0]}-999999999999`;
      const conn = open(v, me, { lastEventId: future });
      const resets = collector(conn, 'reset');
      await resets.waitFor((g) => g.length >= 1);
      assert.equal(resets[0].reason, 'invalid');
      conn.close();
    });

    if (v.transport !== 'websocket') test('a refused token closes the connection with a fatal error', async () => {
      const conn = connect({
        url: server.base + v.path, transport: v.transport, token: 'not.a.token', ...v.opts,
      });
      const errors = collector(conn, 'error');
      await waitStatus(conn, 'closed');
      assert.ok(errors.some((e) => e.fatal && e.status === 401), JSON.stringify(errors));
    });

    // Browsers do not expose a refused handshake's status: WebSocket alone
    // cannot tell a 401 from a network failure, so it keeps retrying.
    if (v.transport === 'websocket') test('a refused handshake is reported and retried with backoff', async () => {
      const conn = connect({ url: server.base + v.path, transport: v.transport, token: 'not.a.token', ...v.opts });
      const errors = collector(conn, 'error');
      const delays = [];
      conn.on('reconnecting', (r) => delays.push(r.delay));
      await waitStatus(conn, 'reconnecting');
      assert.ok(errors.length >= 1 && !errors[0].fatal, JSON.stringify(errors));
      assert.ok(delays[0] >= 500 && delays[0] <= 1000, `first delay ${delays[0]}`);
      conn.close();
    });

    // EventSource hides heartbeats; polling has its own request timeout.
    if (v.dead) test('a dead connection (server silent past the heartbeat) is replaced, then resumes', async () => {
      const me = uniq('u');
      const conn = open(v, me, { heartbeatTimeout: 2500 });
      const got = collector(conn);
      const errors = collector(conn, 'error');
      await waitStatus(conn, 'open');
      await sleep(1500); // heartbeats alone keep it open
      assert.equal(conn.status, 'open');
      assert.equal(errors.length, 0, JSON.stringify(errors));
      server.signalAll('SIGSTOP');
      try {
        await errors.waitFor((g) => g.some((e) => /no data/.test(e.message)), 6000, 'a dead-connection error');
        assert.notEqual(conn.status, 'open');
      } finally {
        server.signalAll('SIGCONT');
      }
      await publish([progress(me, 1)]);
      await got.waitFor((g) => g.length >= 1, 15000);
      await waitStatus(conn, 'open');
      assertInOrder(got, [1]);
      conn.close();
    });
  });
}

const expiring = [
  { name: 'sse', transport: 'sse', path: '/t/sse-exp' },
  { name: 'websocket', transport: 'websocket', path: '/t/ws-exp', opts: { WebSocket } },
];
for (const v of expiring) {
  describe(`token expiry over ${v.name}`, () => {
    test('a fixed token: token_expired, then closed', async () => {
      const me = uniq('u');
      const conn = connect({
        url: server.base + v.path, transport: v.transport, token: server.token(me, { ttl: 2 }), ...v.opts,
      });
      const expired = collector(conn, 'token_expired');
      await waitStatus(conn, 'open');
      await expired.waitFor((g) => g.length >= 1, 6000);
      await waitStatus(conn, 'closed');
    });

    test('a token function: a fresh token on reconnect, messages keep flowing', async () => {
      const me = uniq('u');
      let calls = 0;
      const conn = connect({
        url: server.base + v.path,
        transport: v.transport,
        token: async () => server.token(me, { ttl: ++calls === 1 ? 2 : 3600 }),
        ...v.opts,
      });
      const expired = collector(conn, 'token_expired');
      const got = collector(conn);
      await waitStatus(conn, 'open');
      await expired.waitFor((g) => g.length >= 1, 6000);
      await waitStatus(conn, 'open');
      assert.equal(calls, 2);
      await publish([progress(me, 1)]);
      await got.waitFor((g) => g.length >= 1);
      conn.close();
    });
  });
}

describe('auto', () => {
  const urls = () => ({
    websocket: `${server.base}/t/ws`,
    sse: `${server.base}/t/sse`,
    poll: `${server.base}/t/poll`,
  });

  test('takes WebSocket first, and delivers', async () => {
    const me = uniq('u');
    const conn = connect({ url: urls(), token: server.token(me), WebSocket, openTimeout: 3000 });
    const got = collector(conn);
    await waitStatus(conn, 'open');
    assert.equal(conn.transport, 'websocket');
    await publish([progress(me, 1)]);
    await got.waitFor((g) => g.length >= 1);
    conn.close();
  });

  test('falls back to SSE when WebSocket does not answer', async () => {
    const me = uniq('u');
    const conn = connect({
      url: { websocket: `${server.base}/nowhere`, sse: `${server.base}/t/sse`, poll: `${server.base}/t/poll` },
      token: server.token(me),
      WebSocket,
    });
    const got = collector(conn);
    await waitStatus(conn, 'open');
    assert.equal(conn.transport, 'sse');
    await publish([progress(me, 1)]);
    await got.waitFor((g) => g.length >= 1);
    conn.close();
  });

  test('falls back to polling when neither WebSocket nor SSE answers', async () => {
    const me = uniq('u');
    const conn = connect({
      url: { websocket: `${server.base}/nowhere`, sse: `${server.base}/nowhere`, poll: `${server.base}/t/poll` },
      token: server.token(me),
      WebSocket,
      pollWait: 5,
    });
    const got = collector(conn);
    await waitStatus(conn, 'open');
    assert.equal(conn.transport, 'poll');
    await publish([progress(me, 1)]);
    await got.waitFor((g) => g.length >= 1);
    conn.close();
  });

  test('keeps retrying with backoff while nothing answers, and is closed by close()', async () => {
    const conn = connect({
      url: { sse: 'http://127.0.0.1:1/none', poll: 'http://127.0.0.1:1/none' },
      token: 't',
    });
    const delays = [];
    conn.on('reconnecting', (r) => delays.push(r.delay));
    await waitStatus(conn, 'reconnecting');
    assert.ok(delays[0] >= 500 && delays[0] <= 1000, `first delay ${delays[0]}`);
    conn.close();
    assert.equal(conn.status, 'closed');
  });
});

// An SSE stream or long poll that an HTTP/2 connection cannot carry gets
// 503 {"error":"http2_streams_busy"} (docs/deployment.md): the client moves
// to WebSocket at once, even when asked for SSE or polling.
describe('503 http2_streams_busy', () => {
  const busyFetch = (target) => async (url, init) => {
    if (String(url).startsWith(`${server.base}${target}`)) {
      return new Response(JSON.stringify({ error: 'http2_streams_busy', message: 'busy' }),
        { status: 503, headers: { 'Content-Type': 'application/json' } });
    }
    return fetch(url, init);
  };

  for (const [transport, target] of [['sse', '/t/sse'], ['poll', '/t/poll']]) {
    test(`${transport}: moves to WebSocket and delivers`, async () => {
      const me = uniq('u');
      const errors = [];
      const conn = connect({
        url: { websocket: `${server.base}/t/ws`, sse: `${server.base}/t/sse`, poll: `${server.base}/t/poll` },
        transport, token: server.token(me), WebSocket, fetch: busyFetch(target), pollWait: 5,
      });
      conn.on('error', (e) => errors.push(e));
      const got = collector(conn);
      await waitStatus(conn, 'open');
      assert.equal(conn.transport, 'websocket');
      if (transport === 'sse') {
        assert.equal(errors[0]?.code, 'http2_streams_busy', 'the refusal is reported with its code');
        assert.equal(errors[0]?.status, 503);
      }
      await publish([progress(me, 1)]);
      await got.waitFor((g) => g.length >= 1);
      conn.close();
    });
  }

  test('without WebSocket: backs off and tries again, no tight loop', async () => {
    const conn = connect({
      url: { sse: `${server.base}/t/sse` }, transport: 'sse', token: server.token(uniq('u')),
      fetch: busyFetch('/t/sse'),
    });
    const delays = [];
    conn.on('reconnecting', (r) => delays.push(r.delay));
    await waitStatus(conn, 'reconnecting');
    assert.ok(delays[0] >= 500, `first delay ${delays[0]}`);
    conn.close();
  });
});
