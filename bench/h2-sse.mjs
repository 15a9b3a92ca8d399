// SPDX-License-Identifier: Apache-2.0
// What an SSE stream over HTTP/2 costs the server: opens STREAMS streams
// (users h2b-0..) spread over CONNS h2c connections, prints how many were
// answered 200 / refused, holds them for HOLD seconds (sample the child's
// threads and memory meanwhile, see bench/h2-sse.sh), then closes.
//   node bench/h2-sse.mjs URL SECRET_FILE STREAMS CONNS HOLD
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';

const [url, secretFile, streams = '30', conns = '30', hold = '5'] = process.argv.slice(2);
const secret = readFileSync(secretFile, 'utf8').trim();
const b64u = (s) => Buffer.from(s).toString('base64url');
const token = (sub) => {
  const now = Math.floor(Date.now() / 1000);
  const hp = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify({ sub, iat: now, exp: now + 600 }))}`;
  return `${hp}.${createHmac('sha256', secret).update(hp).digest('base64url')}`;
};
const sessions = [];
for (let i = 0; i < Number(conns); i++) {
  const s = http2.connect(url, { rejectUnauthorized: false });
  s.on('error', () => {});
  sessions.push(s);
}
const statuses = {};
await Promise.all(Array.from({ length: Number(streams) }, (_, i) => new Promise((resolve) => {
  const req = sessions[i % sessions.length].request({ ':path': '/sse', authorization: `Bearer ${token(`h2b-${i}`)}` });
  const timer = setTimeout(() => { statuses.none = (statuses.none || 0) + 1; resolve(); }, 5000);
  req.on('response', (h) => { clearTimeout(timer); statuses[h[':status']] = (statuses[h[':status']] || 0) + 1; resolve(); });
  req.on('data', () => {});
  req.on('error', () => resolve());
})));
console.log(JSON.stringify({ streams: Number(streams), conns: Number(conns), statuses }));
await new Promise((r) => setTimeout(r, Number(hold) * 1000));
for (const s of sessions) s.destroy();
process.exit(0);
