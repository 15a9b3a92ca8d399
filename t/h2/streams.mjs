// SPDX-License-Identifier: Apache-2.0
// One HTTP/2 connection (h2c, or h2 over TLS; "conns" of them, the streams
// spread over them): N Server-Sent Events streams of N users (every other
// one a long poll with "poll"), then plain GETs on the same connection, then one
// message per user published over HTTP/1.1, which must reach every stream
// that was answered 200.  Prints one JSON line of what happened.
//   node streams.mjs '{"url":"http://127.0.0.1:P","sse":"/sse","get":"/x",
//                      "publish":"http://127.0.0.1:P/publish",
//                      "users":[...],"tokens":[...],"poll":"/poll"?,"conns":1?}'
import http from 'node:http';
import http2 from 'node:http2';

const a = JSON.parse(process.argv[2]);
const now = () => Number(process.hrtime.bigint() / 1000000n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const out = { n: a.users.length, statuses: {}, refused: [], gets: [], delivered: 0, answered: 0 };
const sessions = [];
for (let k = 0; k < (a.conns || 1); k++) {
  const session = http2.connect(a.url, { rejectUnauthorized: false });
  session.on('error', () => {});
  await new Promise((res, rej) => {
    session.once('connect', res);
    session.once('error', rej);
  });
  await new Promise((r) => (session.remoteSettings ? r() : session.once('remoteSettings', r)));
  out.alpn = session.alpnProtocol;
  out.maxConcurrentStreams = session.remoteSettings.maxConcurrentStreams;
  sessions.push(session);
}

const streams = a.users.map((user, i) => {
  const st = { user, status: 0, body: '', got: false };
  const path = (a.poll && i % 2 === 1) ? `${a.poll}?wait=20` : a.sse;
  st.kind = path === a.sse ? 'sse' : 'poll';
  const req = sessions[i % sessions.length].request({ ':path': path, authorization: `Bearer ${a.tokens[i]}` });
  req.setEncoding('utf8');
  req.on('response', (h) => {
    st.status = h[':status'];
    st.type = h['content-type'];
  });
  req.on('data', (d) => {
    st.body += d;
    if (st.body.includes(`"probe":"${user}"`)) st.got = true;
  });
  req.on('error', () => {});
  st.req = req;
  return st;
});

// Every stream answered, or 3 s.
for (const t0 = now(); now() - t0 < 3000 && streams.some((s) => !s.status);) await sleep(20);

// Plain requests on the same connection: each must be answered while the
// streams stay open.
for (const session of sessions) {
  for (let g = 0; g < (a.gets || 3); g++) {
    const t0 = now();
    const res = await new Promise((resolve) => {
      let req;
      try {
        req = session.request({ ':path': a.get });
      } catch {
        resolve({ status: -2, ms: -1 });   /* the connection is gone */
        return;
      }
      const timer = setTimeout(() => { req.close(); resolve({ status: 0, ms: -1 }); }, a.getTimeout || 5000);
      req.on('response', (h) => { clearTimeout(timer); resolve({ status: h[':status'], ms: now() - t0 }); req.close(); });
      req.on('error', () => { clearTimeout(timer); resolve({ status: -1, ms: -1 }); });
      req.end();
    });
    out.gets.push(res);
  }
}

// A client that cancels streams (a tab closed) gives their places back:
// "reopen" streams cancelled, then as many opened again on the connection.
if (a.reopen) {
  const open = streams.filter((s) => s.status === 200).slice(0, a.reopen);
  for (const s of open) s.req.close(http2.constants.NGHTTP2_CANCEL);
  await sleep(a.reopenAfter || 2500);
  out.reopened = {};
  await Promise.all(open.map((s) => new Promise((resolve) => {
    const req = sessions[0].request({ ':path': a.sse, authorization: `Bearer ${a.tokens[streams.indexOf(s)]}` });
    const timer = setTimeout(() => resolve(0), 5000);
    req.on('response', (h) => {
      clearTimeout(timer);
      out.reopened[h[':status']] = (out.reopened[h[':status']] || 0) + 1;
      resolve();
    });
    req.on('error', () => resolve());
    s.req = req;
    s.body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => {
      s.body += d;
      if (s.body.includes(`"probe":"${s.user}"`)) s.got = true;
    });
  })));
}

// One message per user, over HTTP/1.1 on connections of their own.
const publish = (user) => new Promise((resolve) => {
  const body = JSON.stringify({ type: 'h2_probe', userId: user, probe: user });
  const req = http.request(a.publish, { method: 'POST', headers: {
    'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
    res.resume();
    res.on('end', () => resolve(res.statusCode));
  });
  req.on('error', () => resolve(0));
  req.end(body);
});
// Long polls answer only when their message comes: every stream not refused.
const pub = streams.filter((s) => s.status === 200 || s.status === 0);
out.published = (await Promise.all(pub.map((s) => publish(s.user)))).filter((c) => c === 202).length;
for (const t0 = now(); now() - t0 < 5000 && pub.some((s) => !s.got && (s.status === 200 || s.kind === 'poll'));) await sleep(20);

for (const s of streams) {
  const k = `${s.kind} ${s.status}`;
  out.statuses[k] = (out.statuses[k] || 0) + 1;
  if (s.status === 200) out.answered++;
  if (s.status === 200 && s.got) out.delivered++;
  if (s.status && s.status !== 200 && out.refused.length < 3) out.refused.push({ status: s.status, body: s.body });
}
console.log(JSON.stringify(out));
for (const s of streams) s.req.close();
for (const session of sessions) session.close();
setTimeout(() => process.exit(0), 200).unref();
