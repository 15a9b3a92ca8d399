// SPDX-License-Identifier: Apache-2.0
// React hooks for mod_upload_progress, on top of the dependency-free
// client (mod-upload-progress-client, ../js).  React is a peer dependency; no JSX,
// so no build step is needed.
//
//   <UploadProgressProvider url={{ websocket: '/ws/upload-progress', sse: '/api/upload/sessions/notifications/stream' }}
//                           token={getAccessToken}>
//     <App />
//   </UploadProgressProvider>
//
//   const { status, progress, lastEvent } = useUploadProgress({ jobId });
//   const { status, events } = useWebSocket(projectId);
import { createContext, createElement, useContext, useEffect, useRef, useState } from 'react';
import { connect } from 'mod-upload-progress-client';

const Ctx = createContext(null);

// Gives the hooks below their url, token and connect() options.
export function UploadProgressProvider({ children, ...options }) {
  return createElement(Ctx.Provider, { value: options }, children);
}

function useOptions(own) {
  const ctx = useContext(Ctx) || {};
  const merged = { ...ctx, ...own };
  if (!merged.url) {
    throw new Error('mod_upload_progress hooks need a url: pass it or use <UploadProgressProvider url=...>');
  }
  return merged;
}

// A stable key for the connection's identity: a new key means a new
// connection.  Functions (token getters) count by identity.
const fnIds = new WeakMap();
let nextFnId = 0;
function keyOf(v) {
  if (typeof v === 'function') {
    if (!fnIds.has(v)) fnIds.set(v, `fn${++nextFnId}`);
    return fnIds.get(v);
  }
  if (v && typeof v === 'object' && !(v instanceof URL)) {
    return `{${Object.keys(v).sort().map((k) => `${k}:${keyOf(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

const JOB_PROGRESS = new Set(['job_progress', 'progress', 'upload_progress']);
const JOB_DONE = new Set(['job_completed', 'job_complete', 'upload_completed', 'SESSION_COMPLETED', 'session_finalized']);

function percentOf(m, prev) {
  if (JOB_DONE.has(m.type)) return 100;
  if (!JOB_PROGRESS.has(m.type)) return prev;
  const p = typeof m.progressPercent === 'number' ? m.progressPercent
    : typeof m.progress === 'number' ? m.progress : null;
  return p === null ? prev : p;
}

function useFeed(maxEvents) {
  const [state, setState] = useState({ status: 'connecting', lastEvent: null, events: [], progress: null, lastEventId: null });
  const push = (m, lastEventId) => setState((s) => {
    const events = s.events.length >= maxEvents ? [...s.events.slice(s.events.length - maxEvents + 1), m] : [...s.events, m];
    return { ...s, lastEvent: m, events, progress: percentOf(m, s.progress), lastEventId };
  });
  const setStatus = (status) => setState((s) => (s.status === status ? s : { ...s, status }));
  return [state, push, setStatus, setState];
}

/**
 * Live messages of one job (or session / project), on a connection of its
 * own that is closed when the component unmounts or the scope changes.
 * Returns { status, lastEvent, events, progress, lastEventId, reset }:
 * progress is the latest percentage (100 once completed); reset counts the
 * `reset` signals, for an effect that re-reads state from the API.
 */
export function useUploadProgress({ jobId, sessionId, projectId, maxEvents = 100, ...own } = {}) {
  const opts = useOptions(own);
  const [state, push, setStatus, setState] = useFeed(maxEvents);
  const [resets, setResets] = useState(0);
  const connRef = useRef(null);
  const optsRef = useRef(opts);
  optsRef.current = opts;
  const key = keyOf({ ...opts, jobId, sessionId, projectId });

  useEffect(() => {
    const o = optsRef.current;
    const conn = connect({ ...o, jobId, sessionId, projectId });
    connRef.current = conn;
    setState((s) => ({ ...s, status: conn.status, events: [], lastEvent: null, progress: null }));
    const offs = [
      conn.on('status', setStatus),
      conn.on('message', (m) => push(m, conn.lastEventId)),
      conn.on('reset', () => setResets((n) => n + 1)),
    ];
    return () => {
      offs.forEach((off) => off());
      conn.close();
      connRef.current = null;
    };
  }, [key]); // eslint-disable-line react-hooks/exhaustive-deps

  return { ...state, reset: resets, connection: connRef.current };
}

/* ------------------------------------------------ shared WebSocket ------ */

// One connection per (url, token, transport) for every component that
// watches a project: each subscribes on mount and unsubscribes on unmount;
// the last one out closes the connection.
const shared = new Map();

export function acquireShared(opts, narrowed) {
  const key = keyOf({ ...opts, narrowed });
  let entry = shared.get(key);
  if (!entry) {
    entry = { conn: connect(opts), users: 0, key, counts: new Map() };
    shared.set(key, entry);
  }
  entry.users++;
  return entry;
}

export function releaseShared(entry) {
  if (--entry.users === 0) {
    shared.delete(entry.key);
    entry.conn.close();
  }
}

/** How many shared connections are open (for tests and diagnostics). */
export function sharedConnectionCount() {
  return shared.size;
}

/**
 * Live messages of one project over a WebSocket shared by every component
 * that calls this hook with the same url and token.  Subscribes to the
 * project on mount, unsubscribes on unmount (or when projectId changes).
 * projectId null or undefined: every message of the signed-in user (on a
 * connection of its own kind, so that project subscriptions do not narrow
 * it).  Returns { status, lastEvent, events, lastEventId, connection }.
 */
export function useWebSocket(projectId, { maxEvents = 100, ...own } = {}) {
  // WebSocket first; 'auto' falls back to SSE or polling where a proxy
  // blocks it (subscriptions then filter on the client).
  const opts = useOptions(own);
  if (!opts.transport) opts.transport = 'auto';
  const [state, push, setStatus, setState] = useFeed(maxEvents);
  const [conn, setConn] = useState(null);
  const optsRef = useRef(opts);
  optsRef.current = opts;
  const key = keyOf(opts);

  useEffect(() => {
    const narrowed = projectId != null && projectId !== '';
    const entry = acquireShared(optsRef.current, narrowed);
    const c = entry.conn;
    setConn(c);
    setState((s) => ({ ...s, status: c.status, events: [], lastEvent: null }));
    let unsubscribe = null;
    if (narrowed) {
      // Several components may watch the same project: the last one
      // out unsubscribes.
      const n = entry.counts.get(projectId) || 0;
      entry.counts.set(projectId, n + 1);
      if (n === 0) c.subscribe({ projectId });
      unsubscribe = () => {
        const left = entry.counts.get(projectId) - 1;
        if (left === 0) {
          entry.counts.delete(projectId);
          c.unsubscribe({ projectId });
        } else {
          entry.counts.set(projectId, left);
        }
      };
    }
    const offs = [
      c.on('status', setStatus),
      c.on('message', (m) => {
        if (!narrowed || m.type === 'reset' || String(m.projectId) === String(projectId)) {
          push(m, c.lastEventId);
        }
      }),
    ];
    return () => {
      offs.forEach((off) => off());
      if (unsubscribe) unsubscribe();
      releaseShared(entry);
    };
  }, [projectId, key]); // eslint-disable-line react-hooks/exhaustive-deps

  return { ...state, connection: conn };
}
