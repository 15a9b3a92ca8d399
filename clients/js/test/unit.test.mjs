// SPDX-License-Identifier: Apache-2.0
// The client's pure parts: the SSE parser, id ordering and the backoff.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SSEParser, backoffDelay, compareIds, parseId } from '../upload-progress.mjs';

function parseAll(chunks) {
  const events = [];
  const retries = [];
  const comments = [];
  const p = new SSEParser({
    onEvent: (e) => events.push(e),
    onRetry: (ms) => retries.push(ms),
    onComment: (c) => comments.push(c),
  });
  for (const c of chunks) p.feed(c);
  return { events, retries, comments };
}

const STREAM = 'retry: 3000\n\nid: 17-1\nevent: upload_progress\ndata: {"a":1}\n\n'
  + ': heartbeat\n\nid: 17-2\nevent: reset\ndata: {"type":"reset"}\n\n';

test('SSE parser: events, ids, retry and comments of a module stream', () => {
  const { events, retries, comments } = parseAll([STREAM]);
  assert.deepEqual(events, [
    { id: '17-1', event: 'upload_progress', data: '{"a":1}' },
    { id: '17-2', event: 'reset', data: '{"type":"reset"}' },
  ]);
  assert.deepEqual(retries, [3000]);
  assert.deepEqual(comments, ['heartbeat']);
});

test('SSE parser: the same events whatever the chunking, with CRLF split across chunks', () => {
  const crlf = STREAM.replace(/\n/g, '\r\n');
  const whole = parseAll([crlf]).events;
  for (let size = 1; size <= 7; size++) {
    const chunks = [];
    for (let i = 0; i < crlf.length; i += size) chunks.push(crlf.slice(i, i + size));
    assert.deepEqual(parseAll(chunks).events, whole, `chunks of ${size}`);
  }
  assert.equal(whole.length, 2);
  const cr = parseAll([STREAM.replace(/\n/g, '\r')]).events;
  assert.deepEqual(cr, whole);
});

test('SSE parser: multi-line data, no space after the colon, unterminated event dropped', () => {
  const { events } = parseAll(['data:line1\ndata: line2\nevent:x\n\ndata: half']);
  assert.deepEqual(events, [{ id: undefined, event: 'x', data: 'line1\nline2' }]);
  const keep = parseAll(['id: 5-5\ndata: a\n\ndata: b\n\n']).events;
  assert.equal(keep[1].id, '5-5', 'the last id stays until changed');
  assert.deepEqual(parseAll(['retry: soon\n\n']).retries, []);
});

test('ids compare as (epoch, sequence) numbers, not as strings', () => {
  assert.equal(compareIds('1795303935706-9', '1795303935706-10'), -1);
  assert.equal(compareIds('1795303935706-10', '1795303935706-10'), 0);
  assert.equal(compareIds('1795303935707-1', '1795303935706-99'), 1);
  assert.equal(compareIds('x', '1-1'), null);
  assert.deepEqual(parseId('18446744073709551615-1'), [18446744073709551615n, 1n]);
  assert.equal(parseId('1-2-3'), null);
});

test('backoff: 1 s base doubling to a 30 s cap, jittered within [d/2, d]', () => {
  const lo = (n) => backoffDelay(n, undefined, () => 0);
  const hi = (n) => backoffDelay(n, undefined, () => 1);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 40].map(hi), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.deepEqual([0, 1, 5].map(lo), [500, 1000, 15000]);
  const seen = new Set();
  for (let i = 0; i < 50; i++) seen.add(backoffDelay(3));
  assert.ok(seen.size > 10, 'jitter spreads the delays');
  for (const d of seen) assert.ok(d >= 4000 && d <= 8000);
});

test('SSE parser: an id with no data reports the position without an event', () => {
  const ids = [];
  const events = [];
  const p = new SSEParser({ onEvent: (e) => events.push(e), onId: (id) => ids.push(id) });
  p.feed('retry: 3000\n\nid: 9-41\n\n: heartbeat\n\n');
  assert.deepEqual(ids, ['9-41']);
  assert.deepEqual(events, []);
});
