// SPDX-License-Identifier: Apache-2.0
// The demo page: real uploads tracked by the module, a simulated processing
// job published after each one, the connection's status and an event log.
import { connect } from './client/upload-progress.mjs';

const $ = (id) => document.getElementById(id);
const cfg = await (await fetch('demo-config.json', { cache: 'no-store' })).json();
const params = new URLSearchParams(location.search);

$('user').textContent = cfg.userId;
let conn = null;
const rows = new Map(); // photoId -> { row, upload, job }

/* ------------------------------------------------------------ connection */

function open(transport) {
  // A change of transport resumes where the previous connection stopped.
  const lastEventId = conn ? conn.lastEventId : undefined;
  if (conn) conn.close();
  conn = connect({ url: cfg.urls, token: cfg.token, transport, lastEventId });
  window.demo.conn = conn;
  const show = (s) => {
    $('status').textContent = s;
    $('status').dataset.status = s;
    $('transport').textContent = conn.transport && s === 'open' ? `via ${conn.transport}` : '';
  };
  show(conn.status);
  conn.on('status', (s) => {
    show(s);
    if (s !== 'open') logLine('info', s === 'reconnecting' ? 'connection lost: reconnecting' : s);
  });
  conn.on('open', (o) => logLine('info', `connected via ${o.transport}${conn.lastEventId ? `, resuming after ${conn.lastEventId}` : ''}`));
  conn.on('open', () => show(conn.status));
  conn.on('message', onMessage);
  conn.on('error', (e) => {
    if (e.fatal) logLine('error', e.message || 'connection refused');
  });
}

function onMessage(m) {
  logMessage(m);
  $('last-id').textContent = conn.lastEventId || 'none';
  if (m.type === 'reset') {
    // A real app re-reads its state from its API here: messages were missed.
    for (const r of rows.values()) r.row.classList.add('stale');
    return;
  }
  const r = m.photoId ? rowFor(m.photoId) : m.jobId ? rowForJob(m.jobId) : null;
  if (!r) return;
  if (m.type.startsWith('upload_')) r.seenUpload = true;
  switch (m.type) {
    case 'upload_started': setBar(r.upload, 0, 'uploading'); break;
    case 'upload_progress': setBar(r.upload, m.progress ?? 0, 'uploading'); break;
    case 'upload_completed': setBar(r.upload, 100, 'uploaded'); break;
    case 'upload_failed': setBar(r.upload, r.upload.value, `failed: ${m.reason || 'error'}`, true); break;
    case 'job_progress': setBar(r.job, m.progressPercent ?? m.progress ?? 0, m.step || 'processing'); break;
    case 'job_completed': setBar(r.job, 100, 'done'); break;
    default: break;
  }
}

/* ------------------------------------------------------------------ rows */

function bar() {
  const el = document.createElement('div');
  el.className = 'bar';
  el.setAttribute('role', 'progressbar');
  el.setAttribute('aria-valuemin', '0');
  el.setAttribute('aria-valuemax', '100');
  el.setAttribute('aria-valuenow', '0');
  el.innerHTML = '<div class="fill"></div><span class="label">waiting</span>';
  el.value = 0;
  return el;
}

function setBar(el, pct, label, failed = false) {
  const v = Math.max(0, Math.min(100, Number(pct) || 0));
  el.value = v;
  el.setAttribute('aria-valuenow', String(v));
  el.querySelector('.fill').style.width = `${v}%`;
  el.querySelector('.label').textContent = `${v.toFixed(v % 1 ? 1 : 0)}% ${label}`;
  el.classList.toggle('failed', failed);
  el.classList.toggle('done', v >= 100 && !failed);
}

function rowFor(photoId, name) {
  let r = rows.get(photoId);
  if (r) return r;
  const row = document.createElement('tr');
  row.dataset.photoId = photoId;
  const n = document.createElement('td');
  n.className = 'name';
  n.textContent = name || photoId;
  const u = document.createElement('td');
  const j = document.createElement('td');
  r = { row, upload: bar(), job: bar(), jobId: `job-${photoId}` };
  r.upload.classList.add('upload');
  r.job.classList.add('job');
  u.append(r.upload);
  j.append(r.job);
  row.append(n, u, j);
  $('file-rows').append(row);
  rows.set(photoId, r);
  return r;
}

function rowForJob(jobId) {
  for (const r of rows.values()) if (r.jobId === jobId) return r;
  return null;
}

/* --------------------------------------------------------------- uploads */

const rnd = () => Math.random().toString(36).slice(2, 10);
const session = `s-${rnd()}`;

function upload(file, slow) {
  const photoId = `ph-${rnd()}`;
  const r = rowFor(photoId, `${file.name} (${(file.size / 1024).toFixed(0)} KiB)`);
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', cfg.uploadUrl + (slow ? '?slow=1' : ''));
    xhr.setRequestHeader('Authorization', `Bearer ${cfg.token}`);
    xhr.setRequestHeader('X-Progress-ID', photoId);
    xhr.setRequestHeader('X-Session-ID', session);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.onload = () => {
      if (xhr.status === 200) {
        r.row.dataset.uploaded = 'true';
        setTimeout(() => {
          // Say so rather than draw progress the module did not report.
          if (!r.seenUpload) r.upload.querySelector('.label').textContent = 'sent; this server does not track uploads';
        }, 1500);
        runJob(photoId, r.jobId);
      } else {
        setBar(r.upload, r.upload.value, `HTTP ${xhr.status}`, true);
      }
      resolve();
    };
    xhr.onerror = () => {
      setBar(r.upload, r.upload.value, 'network error', true);
      resolve();
    };
    xhr.send(file);
  });
}

async function publish(events) {
  const res = await fetch(cfg.publishUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(events),
  });
  return { status: res.status, body: await res.text() };
}

// What an application's worker would do after storing the file: publish
// its processing progress.  Here the page plays the worker.
async function runJob(photoId, jobId) {
  const steps = ['queued', 'thumbnails', 'metadata', 'indexing', 'publishing'];
  for (let i = 0; i < steps.length; i++) {
    await publish({
      event: 'UploadJobProgressed', userId: cfg.userId, jobId, photoId,
      step: steps[i], progressPercent: i * 20,
    });
    await new Promise((ok) => setTimeout(ok, 250));
  }
  await publish({ event: 'UploadJobCompleted', userId: cfg.userId, jobId, photoId, result: { ok: true } });
}

$('upload-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const files = [...$('files').files];
  if (!files.length) return;
  $('upload-button').disabled = true;
  for (const f of files) await upload(f, $('slow').checked);
  $('upload-button').disabled = false;
  $('files').value = '';
});

/* ------------------------------------------------------------- publisher */

const samples = {
  progress: () => ({ event: 'PhotoUploadProgressed', userId: cfg.userId, photoId: 'ph-by-hand', bytesUploaded: 455, totalBytes: 1000 }),
  completed: () => ({ event: 'PhotoUploadCompleted', userId: cfg.userId, photoId: 'ph-by-hand', bytesUploaded: 1000, totalBytes: 1000 }),
  job: () => ({ event: 'UploadJobProgressed', userId: cfg.userId, jobId: 'job-ph-by-hand', photoId: 'ph-by-hand', progressPercent: 60, step: 'thumbnails' }),
  session: () => ({ type: 'session_created', userId: cfg.userId, sessionId: session, totalCount: 3 }),
  other: () => ({ event: 'PhotoUploadProgressed', userId: 'someone-else', photoId: 'ph-x', bytesUploaded: 1, totalBytes: 2 }),
};
const fill = () => { $('event-json').value = JSON.stringify(samples[$('sample').value](), null, 2); };
$('sample').addEventListener('change', fill);
fill();
$('publish-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  let body;
  try {
    body = JSON.parse($('event-json').value);
  } catch (e) {
    $('publish-result').textContent = `not JSON: ${e.message}`;
    return;
  }
  const r = await publish(body);
  $('publish-result').textContent = `${r.status} ${r.body.trim()}`;
});

/* ------------------------------------------------------------------- log */

function logLine(kind, text, m) {
  const li = document.createElement('li');
  li.className = kind;
  if (m) {
    li.dataset.type = m.type;
    if (m.id) li.dataset.id = m.id;
    const key = m.photoId || m.jobId || m.sessionId || m.fileId || '';
    if (key) li.dataset.key = key;
  }
  const t = document.createElement('time');
  t.textContent = new Date().toLocaleTimeString();
  const s = document.createElement('span');
  s.textContent = text;
  li.append(t, s);
  $('log').append(li);
  li.scrollIntoView({ block: 'nearest' });
}

function logMessage(m) {
  const parts = [m.type];
  for (const k of ['photoId', 'jobId', 'sessionId']) if (m[k]) parts.push(`${k}=${m[k]}`);
  if (m.progress != null && typeof m.progress !== 'object') parts.push(`${m.progress}%`);
  if (m.progressPercent != null) parts.push(`${m.progressPercent}%`);
  if (m.step) parts.push(m.step);
  if (m.reason) parts.push(`reason=${m.reason}`);
  if (m.n != null) parts.push(`n=${m.n}`);
  logLine(m.type === 'reset' ? 'reset' : 'msg', `${parts.join(' ')}  ·  ${m.id || ''}`, m);
}

$('clear-log').addEventListener('click', () => { $('log').textContent = ''; });
$('drop').addEventListener('click', () => {
  logLine('info', 'connection dropped by hand: reconnecting and resuming');
  conn.reconnect();
});
$('transport-choice').addEventListener('change', (e) => open(e.target.value));

window.demo = { conn: null, config: cfg, publish };
const initial = params.get('transport') || 'auto';
$('transport-choice').value = initial;
open(initial);
