// SPDX-License-Identifier: Apache-2.0
// mod_upload_progress client: live upload and job progress over WebSocket,
// Server-Sent Events or long polling, with reconnection, resume from the
// last event id, an in-band `reset` signal and dead-connection detection.
//
// Zero dependencies; an ES module for browsers and Node 20+.  Node has no
// EventSource or WebSocket of its own: pass implementations in
// (`connect({..., WebSocket, EventSource})`); `fetch` is built in.
//
//   import { connect } from './upload-progress.mjs';
//   const conn = connect({
//     url: { websocket: '/ws/upload-progress',
//            sse: '/api/upload/sessions/notifications/stream',
//            poll: '/api/upload/poll' },
//     token: () => getAccessToken(),
//   });
//   conn.on('upload_progress', (m) => bar(m.photoId).value = m.progress);
//   conn.on('reset', () => reloadStateFromApi());
//   conn.on('status', (s) => badge.textContent = s);

export const VERSION = '0.1.0';

const SCOPES = ['jobId', 'sessionId', 'projectId', 'fileId', 'photoId'];

// Message types the server emits out of the box; EventSource delivers a
// named event only to a listener registered for that name.
export const KNOWN_TYPES = [
  'upload_started', 'upload_progress', 'upload_completed', 'upload_failed',
  'job_progress', 'job_completed', 'job_complete', 'job_failed',
  'PHOTO_UPLOADED', 'PHOTO_FAILED', 'SESSION_COMPLETED',
  'session_created', 'file_registered', 'part_uploaded', 'file_completed',
  'session_finalized', 'progress', 'reset', 'token_expired', 'disconnect', 'message',
];

const DEFAULTS = {
  transport: 'auto',
  backoff: { base: 1000, cap: 30000 },
  // Silence after which a connection is taken for dead.  The server sends a
  // heartbeat every UploadProgressHeartbeat seconds (default 15) on a quiet
  // stream: keep this at two to three times that.
  heartbeatTimeout: 45000,
  // WebSocket: how often the client pings (browsers hide the server's pings).
  pingInterval: 15000,
  // How long a transport may take to open before the next one is tried.
  openTimeout: 10000,
  // Long-poll: seconds the server may hold a request (it caps this at 30).
  pollWait: 25,
  maxEvents: 0,
};

/* ---------------------------------------------------------------- ids --- */

// Ids are "<a>-<b>" (epoch-seq, or a Redis stream id ms-seq).  Returns
// [a, b] as BigInts, or null for anything else.
export function parseId(id) {
  if (typeof id !== 'string') return null;
  const m = /^(\d{1,20})-(\d{1,20})$/.exec(id);
  return m ? [BigInt(m[1]), BigInt(m[2])] : null;
}

// -1, 0, 1; null when either id is not comparable.
export function compareIds(x, y) {
  const a = parseId(x);
  const b = parseId(y);
  if (!a || !b) return null;
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  if (a[1] !== b[1]) return a[1] < b[1] ? -1 : 1;
  return 0;
}

/* --------------------------------------------------------- SSE parser --- */

// An incremental text/event-stream parser (WHATWG HTML, 9.2.6): feed it
// decoded text in chunks of any size; it calls onEvent({id, event, data})
// for each dispatched event, onRetry(ms) and onComment(text).
export class SSEParser {
  constructor({ onEvent, onRetry, onComment, onId } = {}) {
    this.onEvent = onEvent || (() => {});
    this.onId = onId || (() => {});
    this.sawId = false;
    this.onRetry = onRetry || (() => {});
    this.onComment = onComment || (() => {});
    this.buf = '';
    this.pendingCR = false;
    this.data = [];
    this.event = '';
    this.id = undefined;
    this.sawData = false;
  }

  feed(text) {
    let s = text;
    if (this.pendingCR) {
      // "\r\n" split across chunks: the "\r" already ended the line.
      if (s.startsWith('\n')) s = s.slice(1);
      this.pendingCR = false;
    }
    this.buf += s;
    let start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(this.buf.slice(start, i));
      if (c === 13) {
        if (i + 1 === this.buf.length) {
          this.pendingCR = true;
        } else if (this.buf.charCodeAt(i + 1) === 10) {
          i++;
        }
      }
      start = i + 1;
    }
    this.buf = this.buf.slice(start);
  }

  line(l) {
    if (l === '') {
      this.dispatch();
      return;
    }
    if (l[0] === ':') {
      this.onComment(l.slice(1).trimStart());
      return;
    }
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case 'data': this.data.push(value); this.sawData = true; break;
      case 'event': this.event = value; break;
      case 'id': if (!value.includes('\0')) { this.id = value; this.sawId = true; } break;
      case 'retry': if (/^\d+$/.test(value)) this.onRetry(Number(value)); break;
      default: break;
    }
  }

  dispatch() {
    if (this.sawData) {
      this.onEvent({ id: this.id, event: this.event || 'message', data: this.data.join('\n') });
    } else if (this.sawId) {
      // An id alone moves the last event id without an event: the module
      // sends one when a stream starts, so that a client dropped before
      // its first message still resumes from the right place.
      this.onId(this.id);
    }
    this.sawId = false;
    this.data = [];
    this.event = '';
    this.sawData = false;
  }
}

/* ------------------------------------------------------------ helpers --- */

// The reconnect delay for attempt n (0-based): exponential from base,
// capped, with "equal jitter" so that a restarted server does not see all
// its clients come back in the same millisecond.
export function backoffDelay(n, { base = 1000, cap = 30000 } = {}, random = Math.random) {
  const d = Math.min(cap, base * 2 ** Math.min(n, 30));
  return Math.round(d / 2 + random() * (d / 2));
}

function baseHref() {
  const loc = globalThis.location;
  return loc && loc.href ? loc.href : 'http://localhost/';
}

function buildUrl(u, params, wsScheme) {
  const url = new URL(u, baseHref());
  if (wsScheme) {
    if (url.protocol === 'http:') url.protocol = 'ws:';
    else if (url.protocol === 'https:') url.protocol = 'wss:';
  }
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  }
  return url.toString();
}

class Fatal extends Error {
  constructor(message, { status, code } = {}) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// A refusal that names its reason ({"error": code} in the body).
async function refusal(res, what) {
  const ct = res.headers.get('content-type') || '';
  const why = `${res.status} ${ct.split(';')[0] || 'no content type'}`;
  let code;
  if (ct.startsWith('application/json')) {
    try { code = (await res.json())?.error; } catch { /* not JSON after all */ }
  } else {
    try { await res.body?.cancel(); } catch { /* ignore */ }
  }
  if (res.status === 401 || res.status === 403) return new Fatal(`${what} refused: ${why}`, { status: res.status, code });
  const err = new Error(`${what} unavailable: ${why}${code ? ` (${code})` : ''}`);
  err.status = res.status;
  err.code = code;
  return err;
}

// The server's word that this HTTP/2 connection cannot carry one more
// stream (each would hold one of the few workers mod_http2 gives a
// connection): WebSocket, which browsers open as an HTTP/1.1 connection
// of its own, can.
const H2_BUSY = 'http2_streams_busy';

/* --------------------------------------------------------- transports --- */
// Each transport is a function (conn, handlers) -> { close(), send?() }.
// handlers: opened(), frame(), message(obj, sseId), retry(ms), failed(err),
// expired().  A transport calls failed() or expired() at most once, and
// nothing after close().

function openWebSocket(conn, h) {
  const WS = conn.opts.WebSocket || globalThis.WebSocket;
  if (!WS) throw new Fatal('no WebSocket implementation: pass connect({WebSocket})');
  const params = { ...conn.scope };
  if (conn.lastEventId) params.lastEventId = conn.lastEventId;
  const tok = conn.currentToken;
  if (tok) params[conn.opts.tokenParam || 'token'] = tok;
  const ws = new WS(buildUrl(conn.url('websocket'), params, true));
  let ended = false;
  let pinger = null;
  const end = () => {
    ended = true;
    if (pinger) clearInterval(pinger);
    pinger = null;
  };
  const send = (obj) => {
    if (!ended && ws.readyState === 1) ws.send(JSON.stringify(obj));
  };
  ws.onopen = () => {
    if (ended) return;
    h.frame();
    pinger = setInterval(() => send({ type: 'ping' }), conn.opts.pingInterval);
    if (pinger.unref) pinger.unref();
  };
  ws.onmessage = (ev) => {
    if (ended) return;
    h.frame();
    let msg;
    try {
      msg = JSON.parse(typeof ev.data === 'string' ? ev.data : String(ev.data));
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'connected':
        if (typeof msg.lastEventId === 'string') h.position(msg.lastEventId);
        h.opened({ clientId: msg.clientId });
        for (const s of conn.subscriptions.values()) send({ type: 'subscribe', ...s });
        return;
      case 'pong':
        return;
      case 'subscribed':
      case 'unsubscribed':
        conn.emit(msg.type, msg);
        return;
      case 'error':
        conn.emit('error', { transport: 'websocket', code: msg.code, message: msg.message });
        return;
      default:
        h.message(msg);
    }
  };
  ws.onerror = () => {};
  ws.onclose = (ev) => {
    if (ended) return;
    end();
    if (ev.code === 4001) h.expired();
    else h.failed(new Error(`WebSocket closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`));
  };
  return {
    send,
    close() {
      if (ended) return;
      end();
      try { ws.close(1000); } catch { /* already closing */ }
    },
  };
}

function sseUseFetch(conn) {
  if (conn.opts.sse === 'eventsource') return false;
  if (conn.opts.sse === 'fetch') return true;
  const f = conn.fetchImpl;
  // The fetch reader sees heartbeats and can send the Authorization header.
  return typeof f === 'function' && typeof globalThis.ReadableStream === 'function'
    && typeof globalThis.TextDecoder === 'function';
}

function openSSEFetch(conn, h) {
  const ctl = new AbortController();
  let ended = false;
  const headers = { Accept: 'text/event-stream', 'Cache-Control': 'no-cache' };
  const params = { ...conn.scope };
  const tok = conn.currentToken;
  if (tok && conn.opts.tokenParam) params[conn.opts.tokenParam] = tok;
  else if (tok) headers.Authorization = `Bearer ${tok}`;
  if (conn.lastEventId) headers['Last-Event-ID'] = conn.lastEventId;
  const fail = (err) => {
    if (ended) return;
    ended = true;
    ctl.abort();
    h.failed(err);
  };
  (async () => {
    let res;
    try {
      res = await conn.fetchImpl(buildUrl(conn.url('sse'), params, false), {
        headers, signal: ctl.signal, cache: 'no-store', credentials: conn.opts.credentials,
      });
    } catch (e) {
      fail(e);
      return;
    }
    if (ended) return;
    const ct = res.headers.get('content-type') || '';
    if (!res.ok || !ct.startsWith('text/event-stream')) {
      const err = await refusal(res, 'SSE');
      fail(err);
      return;
    }
    h.opened({});
    const parser = new SSEParser({
      onEvent: (e) => {
        if (ended) return;
        let msg;
        try { msg = JSON.parse(e.data); } catch { return; }
        if (!msg || typeof msg !== 'object') return;
        if (!msg.type) msg.type = e.event;
        if (msg.type === 'token_expired') {
          ended = true;
          ctl.abort();
          h.expired();
          return;
        }
        h.message(msg, e.id);
      },
      onRetry: (ms) => h.retry(ms),
      onId: (id) => { if (!ended) h.position(id); },
    });
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (ended) return;
        if (done) break;
        h.frame();
        parser.feed(dec.decode(value, { stream: true }));
      }
      fail(new Error('SSE stream ended'));
    } catch (e) {
      fail(e);
    }
  })();
  return {
    close() {
      if (ended) return;
      ended = true;
      ctl.abort();
    },
  };
}

function openSSEEventSource(conn, h) {
  const ES = conn.opts.EventSource || globalThis.EventSource;
  if (!ES) throw new Fatal('no EventSource implementation: pass connect({EventSource})');
  const params = { ...conn.scope };
  const tok = conn.currentToken;
  if (tok) params[conn.opts.tokenParam || 'token'] = tok;
  if (conn.lastEventId) params.lastEventId = conn.lastEventId;
  const es = new ES(buildUrl(conn.url('sse'), params, false),
    { withCredentials: conn.opts.credentials === 'include' });
  let ended = false;
  let wasOpen = false;
  const listened = new Set();
  const onNamed = (ev) => {
    if (ended) return;
    h.frame();
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (!msg || typeof msg !== 'object') return;
    if (!msg.type) msg.type = ev.type;
    if (msg.type === 'token_expired') {
      ended = true;
      es.close();
      h.expired();
      return;
    }
    h.message(msg, ev.lastEventId);
  };
  const listen = (type) => {
    if (listened.has(type) || ended) return;
    listened.add(type);
    es.addEventListener(type, onNamed);
  };
  KNOWN_TYPES.forEach(listen);
  (conn.opts.eventTypes || []).forEach(listen);
  conn.listenedTypes().forEach(listen);
  const unhook = conn.onNewType(listen);
  es.onopen = () => {
    if (ended) return;
    h.frame();
    if (!wasOpen) {
      wasOpen = true;
      h.opened({});
    } else {
      // EventSource reconnected by itself, sending Last-Event-ID.
      conn.setStatus('open');
    }
  };
  es.onerror = (ev) => {
    if (ended) return;
    if (es.readyState === 2 /* CLOSED: a refusal EventSource will not retry */) {
      ended = true;
      unhook();
      // Browsers hide the status; some implementations report it.
      const status = ev && typeof ev.code === 'number' ? ev.code : undefined;
      h.failed(status === 401 || status === 403
        ? new Fatal(`EventSource refused: ${status}`, { status })
        : new Error(`EventSource closed${status ? ` (${status})` : ''}`));
    } else if (wasOpen) {
      // Native reconnection, resuming with Last-Event-ID.
      conn.setStatus('reconnecting');
    }
  };
  return {
    close() {
      if (ended) return;
      ended = true;
      unhook();
      es.close();
    },
    // A dead-connection timeout: EventSource cannot be told to reconnect,
    // so the client replaces it.
    native: true,
  };
}

function openPoll(conn, h) {
  let ended = false;
  let ctl = null;
  let timer = null;
  let first = true;
  const waitS = Math.max(0, Math.min(30, conn.opts.pollWait | 0));
  const fail = (err) => {
    if (ended) return;
    ended = true;
    if (ctl) ctl.abort();
    h.failed(err);
  };
  const once = async () => {
    if (ended) return;
    ctl = new AbortController();
    const abortTimer = setTimeout(() => ctl.abort(), (waitS + 15) * 1000);
    // The first request answers at once (what was missed, or just the
    // stream position): that is the transport opening.  Then long polls.
    const params = { ...conn.scope, wait: first ? 0 : waitS };
    if (conn.lastEventId) params.since = conn.lastEventId;
    const headers = { Accept: 'application/json' };
    const tok = conn.currentToken;
    if (tok && conn.opts.tokenParam) params[conn.opts.tokenParam] = tok;
    else if (tok) headers.Authorization = `Bearer ${tok}`;
    const t0 = Date.now();
    let res;
    let body;
    try {
      res = await conn.fetchImpl(buildUrl(conn.url('poll'), params, false), {
        headers, signal: ctl.signal, cache: 'no-store', credentials: conn.opts.credentials,
      });
      if (ended) return;
      const ct = res.headers.get('content-type') || '';
      if (!res.ok || !ct.startsWith('application/json')) throw await refusal(res, 'poll');
      body = await res.json();
      if (!body || !Array.isArray(body.events)) throw new Error('poll: not an events response');
    } catch (e) {
      clearTimeout(abortTimer);
      fail(e);
      return;
    }
    clearTimeout(abortTimer);
    if (ended) return;
    h.frame();
    if (first) {
      first = false;
      h.opened({});
    }
    for (const msg of body.events) {
      if (ended) return;
      if (msg && typeof msg === 'object') {
        if (msg.type === 'token_expired') {
          ended = true;
          h.expired();
          return;
        }
        h.message(msg);
      }
    }
    // The server's cursor: it has looked at everything up to here, other
    // users' messages included, so the next poll starts after it.
    if (typeof body.lastEventId === 'string') h.position(body.lastEventId);
    // A server that answers an empty poll at once (no long-poll) is asked
    // again after a second, not in a tight loop.
    const quick = params.wait > 0 && !body.more && body.events.length === 0 && Date.now() - t0 < 500;
    timer = setTimeout(once, body.more ? 0 : quick ? 1000 : 0);
  };
  once();
  return {
    close() {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      if (ctl) ctl.abort();
    },
  };
}

const OPENERS = {
  websocket: openWebSocket,
  sse: (conn, h) => (sseUseFetch(conn) ? openSSEFetch(conn, h) : openSSEEventSource(conn, h)),
  poll: openPoll,
};

/* --------------------------------------------------------- connection --- */

class Connection {
  constructor(opts) {
    this.opts = { ...DEFAULTS, ...opts, backoff: { ...DEFAULTS.backoff, ...(opts.backoff || {}) } };
    if (!opts.url) throw new TypeError('connect: url is required');
    const order = this.opts.transport === 'auto'
      ? ['websocket', 'sse', 'poll'] : [this.opts.transport];
    for (const t of order) {
      if (!OPENERS[t]) throw new TypeError(`connect: unknown transport ${t}`);
    }
    // Only transports that have a URL and, for WebSocket, an implementation.
    this.order = order.filter((t) => this.opts.transport !== 'auto' || (this.hasUrl(t)
      && (t !== 'websocket' || this.opts.WebSocket || globalThis.WebSocket)));
    if (!this.order.length) throw new TypeError('connect: no usable transport for this url');
    this.fetchImpl = opts.fetch === undefined ? globalThis.fetch?.bind(globalThis) : opts.fetch;
    this.scope = {};
    for (const k of SCOPES) if (opts[k] != null && opts[k] !== '') this.scope[k] = String(opts[k]);
    this.subscriptions = new Map();
    this.listeners = new Map();
    this.typeHooks = new Set();
    this.status = 'connecting';
    this.transport = null;
    this.lastEventId = opts.lastEventId || null;
    this.current = null;
    this.index = 0;
    this.failures = 0;
    this.serverRetry = 0;
    this.reconnectTimer = null;
    this.deadTimer = null;
    this.openTimer = null;
    this.currentToken = null;
    this.closed = false;
    this.h2Hopped = false;
    this.generation = 0;
    this.onOnline = () => {
      if (this.status === 'reconnecting' && this.reconnectTimer) {
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = null;
        this.attempt();
      }
    };
    if (typeof globalThis.addEventListener === 'function') {
      globalThis.addEventListener('online', this.onOnline);
    }
    // Listeners registered right after connect() see the first status.
    queueMicrotask(() => this.attempt());
  }

  canWebSocket() {
    return this.hasUrl('websocket') && Boolean(this.opts.WebSocket || globalThis.WebSocket);
  }

  hasUrl(t) {
    const u = this.opts.url;
    return typeof u === 'string' || u instanceof URL || Boolean(u && u[t]);
  }

  url(t) {
    const u = this.opts.url;
    return typeof u === 'string' || u instanceof URL ? String(u) : u[t];
  }

  /* ------------------------------------------------------------ events */

  on(type, fn) {
    if (!this.listeners.has(type)) {
      this.listeners.set(type, new Set());
      for (const hook of this.typeHooks) hook(type);
    }
    this.listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    const set = this.listeners.get(type);
    if (set) set.delete(fn);
  }

  emit(type, value) {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(value);
      } catch (e) {
        // A listener's bug must not stop the stream.
        if (type !== 'error') queueMicrotask(() => this.emit('error', { listener: e }));
      }
    }
  }

  listenedTypes() {
    return [...this.listeners.keys()];
  }

  onNewType(fn) {
    this.typeHooks.add(fn);
    return () => this.typeHooks.delete(fn);
  }

  setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    this.emit('status', s);
  }

  /* ----------------------------------------------------- subscriptions */

  // Narrows the connection to one project, job, session, file or photo
  // (several subscriptions add up).  Over WebSocket the server filters;
  // over SSE and polling the client does, on the user's own stream.
  // Returns a function that unsubscribes.
  subscribe(target) {
    const key = this.targetKey(target);
    const [field, id] = key.split('\u0000');
    const s = { [field]: id };
    if (!this.subscriptions.has(key)) {
      this.subscriptions.set(key, s);
      if (this.current && this.current.send && this.status === 'open') {
        this.current.send({ type: 'subscribe', ...s });
      }
    }
    return () => this.unsubscribe(target);
  }

  unsubscribe(target) {
    const key = this.targetKey(target);
    const s = this.subscriptions.get(key);
    if (!s) return;
    this.subscriptions.delete(key);
    if (this.current && this.current.send && this.status === 'open') {
      this.current.send({ type: 'unsubscribe', ...s });
    }
  }

  targetKey(target) {
    const fields = Object.keys(target || {}).filter((k) => SCOPES.includes(k) && target[k] != null);
    if (fields.length !== 1) {
      throw new TypeError('subscribe: give exactly one of ' + SCOPES.join(', '));
    }
    return `${fields[0]}\u0000${target[fields[0]]}`;
  }

  wanted(msg) {
    for (const [k, v] of Object.entries(this.scope)) {
      if (msg[k] !== undefined && String(msg[k]) !== v) return false;
    }
    if (this.subscriptions.size === 0) return true;
    for (const s of this.subscriptions.values()) {
      const [k, v] = Object.entries(s)[0];
      if (msg[k] !== undefined && String(msg[k]) === v) return true;
    }
    return false;
  }

  /* ---------------------------------------------------------- messages */

  handleMessage(msg, sseId) {
    const id = typeof msg.id === 'string' ? msg.id : sseId;
    if (msg.type === 'reset') {
      if (id) this.lastEventId = id;
      this.emit('reset', msg);
      this.emit('message', msg);
      return;
    }
    if (id && this.lastEventId && compareIds(id, this.lastEventId) === 0) return;
    if (id && this.lastEventId && compareIds(id, this.lastEventId) === -1) return;
    if (id) this.lastEventId = id;
    if (msg.type === 'disconnect') {
      // The application ended this user's connections (a revoked token):
      // stay closed rather than reconnect.
      this.emit('message', msg);
      this.emit('disconnect', msg);
      this.close();
      return;
    }
    if (!this.wanted(msg)) return;
    this.emit('message', msg);
    if (msg.type && msg.type !== 'message') this.emit(msg.type, msg);
  }

  /* -------------------------------------------------------- life cycle */

  async attempt() {
    if (this.closed) return;
    this.reconnectTimer = null;
    const gen = ++this.generation;
    const name = this.order[this.index % this.order.length];
    let tok = this.opts.token;
    if (typeof tok === 'function') {
      try {
        tok = await tok();
      } catch (e) {
        if (gen !== this.generation || this.closed) return;
        this.emit('error', { transport: name, message: `token: ${e && e.message}` });
        this.scheduleReconnect();
        return;
      }
    }
    if (gen !== this.generation || this.closed) return;
    this.currentToken = tok || null;
    let opened = false;
    const self = this;
    const handlers = {
      opened(info) {
        if (gen !== self.generation) return;
        opened = true;
        self.h2Hopped = false;
        clearTimeout(self.openTimer);
        self.failures = 0;
        self.serverRetry = 0;
        self.transport = name;
        self.armDead();
        self.setStatus('open');
        self.emit('open', { transport: name, ...info });
      },
      frame() {
        if (gen === self.generation) self.armDead();
      },
      message(msg, sseId) {
        if (gen === self.generation) self.handleMessage(msg, sseId);
      },
      retry(ms) {
        if (gen === self.generation) self.serverRetry = ms;
      },
      // The server's stream position, with no message.
      position(id) {
        if (gen !== self.generation || !id) return;
        if (!self.lastEventId || compareIds(id, self.lastEventId) === 1) self.lastEventId = id;
      },
      expired() {
        if (gen !== self.generation) return;
        self.drop();
        self.emit('token_expired', { transport: name });
        if (typeof self.opts.token === 'function') {
          self.failures = 0;
          self.setStatus('reconnecting');
          self.attempt();
        } else {
          self.emit('error', { transport: name, message: 'token expired', fatal: true });
          self.close();
        }
      },
      failed(err) {
        if (gen !== self.generation) return;
        self.drop();
        const fatal = err instanceof Fatal;
        self.emit('error', { transport: name, message: err && err.message, status: err && err.status, code: err && err.code, fatal });
        if (err && err.code === H2_BUSY && name !== 'websocket' && !self.h2Hopped && self.canWebSocket()) {
          // Once per outage: a WebSocket that then fails goes the usual way.
          self.h2Hopped = true;
          if (!self.order.includes('websocket')) self.order.unshift('websocket');
          self.index = self.order.indexOf('websocket');
          self.attempt();
          return;
        }
        if (!opened && self.order.length > 1 && (self.index + 1) % self.order.length !== 0
            && !(fatal && err.status && name !== 'websocket')) {
          // Not this one: try the next transport at once.
          self.index++;
          self.attempt();
          return;
        }
        if (fatal && err.status && typeof self.opts.token !== 'function') {
          // The same token would be refused again: give up.
          self.close();
          return;
        }
        if (!opened) self.index = self.order.indexOf(self.transport) >= 0
          ? self.order.indexOf(self.transport) : 0;
        self.scheduleReconnect();
      },
    };
    try {
      this.current = OPENERS[name](this, handlers);
    } catch (e) {
      handlers.failed(e);
      return;
    }
    clearTimeout(this.openTimer);
    this.openTimer = setTimeout(() => {
      if (gen === this.generation && !opened) handlers.failed(new Error(`${name}: no answer in ${this.opts.openTimeout} ms`));
    }, this.opts.openTimeout);
  }

  armDead() {
    clearTimeout(this.deadTimer);
    const ms = this.opts.heartbeatTimeout;
    // EventSource hides the heartbeat comments: a quiet stream would look dead.
    if (!ms || this.closed || (this.current && this.current.native)) return;
    const gen = this.generation;
    this.deadTimer = setTimeout(() => {
      if (gen !== this.generation || this.closed || !this.current) return;
      this.emit('error', { transport: this.transport, message: `no data for ${ms} ms: connection dead` });
      this.drop();
      this.scheduleReconnect();
    }, ms);
  }

  drop() {
    this.generation++;
    clearTimeout(this.deadTimer);
    clearTimeout(this.openTimer);
    if (this.current) {
      const c = this.current;
      this.current = null;
      try { c.close(); } catch { /* ignore */ }
    }
  }

  scheduleReconnect() {
    if (this.closed) return;
    this.setStatus('reconnecting');
    let delay = backoffDelay(this.failures, this.opts.backoff);
    // A server that is restarting asks for a little patience (SSE retry:).
    if (this.serverRetry) delay = Math.max(delay, Math.min(this.serverRetry, this.opts.backoff.cap));
    this.serverRetry = 0;
    this.failures++;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.attempt(), delay);
    this.emit('reconnecting', { delay, attempt: this.failures });
  }

  // Drops the current connection and connects again, resuming from
  // lastEventId (e.g. after the app noticed the network came back).
  reconnect() {
    if (this.closed) return;
    this.drop();
    clearTimeout(this.reconnectTimer);
    this.failures = 0;
    this.setStatus('reconnecting');
    this.attempt();
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.drop();
    if (typeof globalThis.removeEventListener === 'function') {
      globalThis.removeEventListener('online', this.onOnline);
    }
    this.setStatus('closed');
  }
}

// Opens a connection; see the top of this file and docs/events.md.
export function connect(options) {
  const c = new Connection(options || {});
  return {
    on: (type, fn) => c.on(type, fn),
    off: (type, fn) => c.off(type, fn),
    subscribe: (target) => c.subscribe(target),
    unsubscribe: (target) => c.unsubscribe(target),
    reconnect: () => c.reconnect(),
    close: () => c.close(),
    get status() { return c.status; },
    get lastEventId() { return c.lastEventId; },
    get transport() { return c.transport; },
  };
}

export default connect;
