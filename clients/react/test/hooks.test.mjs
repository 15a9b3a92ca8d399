// SPDX-License-Identifier: Apache-2.0
// The React hooks against a real httpd: what a component sees, and that
// unmounting unsubscribes and closes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createElement } from 'react';
import TestRenderer from 'react-test-renderer';
import WebSocket from 'ws';
import { UploadProgressProvider, sharedConnectionCount, useUploadProgress, useWebSocket } from '../index.mjs';
import { sleep, startServer } from '../../test-support/server.mjs';

// Updates arrive from the network, outside act(): let React schedule them.
globalThis.IS_REACT_ACT_ENVIRONMENT = false;
const PORT = Number(process.env.UPM_REACT_PORT || 8661);
let server;
let n = 0;
const uniq = (p) => `${p}-${process.pid}-${++n}`;

before(async () => {
  server = await startServer({
    port: PORT,
    name: `upm-react-${PORT}`,
    extraConf: [fileURLToPath(new URL('../../js/test/server.conf.in', import.meta.url))],
  });
});
after(async () => {
  await server?.stop();
});

async function until(pred, ms = 10000, what = 'condition') {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Renders hook(props) in a component; `seen.current` is the latest result.
function renderHook(hook, props, provider) {
  const seen = { current: null };
  function Probe(p) {
    seen.current = hook(p);
    return null;
  }
  const el = (p) => createElement(UploadProgressProvider, provider, createElement(Probe, p));
  let root;
  TestRenderer.act(() => {
    root = TestRenderer.create(el(props));
  });
  return {
    seen,
    rerender: (p) => TestRenderer.act(() => root.update(el(p))),
    unmount: () => TestRenderer.act(() => root.unmount()),
  };
}

describe('useUploadProgress', () => {
  test('a job\'s messages, its progress and status; closed on unmount', async () => {
    const me = uniq('u');
    const provider = { url: `${server.base}/t/sse`, transport: 'sse', token: server.token(me) };
    const h = renderHook(useUploadProgress, { jobId: 'job-1' }, provider);
    await until(() => h.seen.current.status === 'open', 10000, 'open');
    const conn = h.seen.current.connection;
    assert.ok(conn, 'the connection is exposed');
    await server.publish([
      { event: 'UploadJobProgressed', userId: me, jobId: 'job-2', progressPercent: 90 },
      { event: 'UploadJobProgressed', userId: me, jobId: 'job-1', progressPercent: 40 },
    ]);
    await until(() => h.seen.current.progress === 40, 10000, 'progress 40');
    await server.publish([{ event: 'UploadJobCompleted', userId: me, jobId: 'job-1' }]);
    await until(() => h.seen.current.progress === 100, 10000, 'progress 100');
    const { events, lastEvent } = h.seen.current;
    assert.deepEqual(events.map((e) => [e.type, e.jobId]), [['job_progress', 'job-1'], ['job_completed', 'job-1']]);
    assert.equal(lastEvent.type, 'job_completed');
    h.unmount();
    assert.equal(conn.status, 'closed');
  });

  test('a new jobId means a new connection narrowed to it', async () => {
    const me = uniq('u');
    const provider = { url: `${server.base}/t/sse`, transport: 'sse', token: server.token(me) };
    const h = renderHook(useUploadProgress, { jobId: 'a' }, provider);
    await until(() => h.seen.current.status === 'open');
    const first = h.seen.current.connection;
    h.rerender({ jobId: 'b' });
    await until(() => h.seen.current.connection && h.seen.current.connection !== first
      && h.seen.current.status === 'open');
    assert.equal(first.status, 'closed');
    await server.publish([
      { event: 'UploadJobProgressed', userId: me, jobId: 'a', progressPercent: 10 },
      { event: 'UploadJobProgressed', userId: me, jobId: 'b', progressPercent: 20 },
    ]);
    await until(() => h.seen.current.progress === 20);
    await sleep(200);
    assert.deepEqual(h.seen.current.events.map((e) => e.jobId), ['b']);
    h.unmount();
  });
});

const wsVariants = [
  { name: 'over SSE (client-side subscriptions)', provider: (tok) => ({ url: `${server.base}/t/sse`, transport: 'sse', token: tok }) },
  { name: 'over WebSocket', provider: (tok) => ({ url: `${server.base}/t/ws`, WebSocket, token: tok }) },
];
for (const v of wsVariants) {
  describe(`useWebSocket ${v.name}`, () => {
    test('components share one connection, each sees its project, unmount unsubscribes, the last closes', async () => {
      const me = uniq('u');
      const provider = v.provider(server.token(me));
      const before = sharedConnectionCount();
      const a = renderHook((p) => useWebSocket(p.projectId), { projectId: 'p1' }, provider);
      const b = renderHook((p) => useWebSocket(p.projectId), { projectId: 'p2' }, provider);
      await until(() => a.seen.current.status === 'open' && b.seen.current.status === 'open', 10000, 'both open');
      const conn = a.seen.current.connection;
      assert.equal(b.seen.current.connection, conn, 'one shared connection');
      assert.equal(sharedConnectionCount(), before + 1);
      const unsubscribed = [];
      conn.on('unsubscribed', (m) => unsubscribed.push(m.projectId));
      await sleep(200); // the subscribe messages reach the server
      await server.publish([
        { event: 'UploadJobProgressed', userId: me, projectId: 'p1', jobId: 'j1', progressPercent: 1, k: 1 },
        { event: 'UploadJobProgressed', userId: me, projectId: 'p2', jobId: 'j2', progressPercent: 2, k: 2 },
        { event: 'UploadJobProgressed', userId: me, projectId: 'p3', jobId: 'j3', progressPercent: 3, k: 3 },
      ]);
      await until(() => a.seen.current.events.length >= 1 && b.seen.current.events.length >= 1, 10000, 'first events');
      await sleep(200);
      assert.deepEqual(a.seen.current.events.map((e) => e.k), [1]);
      assert.deepEqual(b.seen.current.events.map((e) => e.k), [2]);

      a.unmount();
      if (v.provider('').WebSocket) {
        await until(() => unsubscribed.includes('p1'), 5000, 'the server to confirm the unsubscribe');
      }
      assert.equal(conn.status, 'open', 'still used by the other component');
      const seenByOther = [];
      conn.on('message', (m) => seenByOther.push(m.k));
      await server.publish([
        { event: 'UploadJobProgressed', userId: me, projectId: 'p1', jobId: 'j1', progressPercent: 5, k: 4 },
        { event: 'UploadJobProgressed', userId: me, projectId: 'p2', jobId: 'j2', progressPercent: 6, k: 5 },
      ]);
      await until(() => b.seen.current.events.length >= 2, 10000, 'second event');
      await sleep(200);
      assert.deepEqual(b.seen.current.events.map((e) => e.k), [2, 5]);
      assert.deepEqual(seenByOther, [5], 'after the unsubscribe the connection no longer carries p1');
      b.unmount();
      assert.equal(conn.status, 'closed');
      assert.equal(sharedConnectionCount(), before);
    });
  });
}
