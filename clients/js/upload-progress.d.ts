// SPDX-License-Identifier: Apache-2.0
// Types of upload-progress.mjs (see clients/README.md and docs/events.md).

export type Transport = 'websocket' | 'sse' | 'poll';
export type Status = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** A message as docs/events.md describes it; unknown fields pass through. */
export interface Message {
  type: string;
  id?: string;
  timestamp?: string;
  userId?: string;
  photoId?: string;
  fileId?: string;
  jobId?: string;
  sessionId?: string;
  projectId?: string;
  progress?: number | null | { partsCompleted?: number; partsTotal?: number; bytesCompleted?: number; bytesTotal?: number };
  progressPercent?: number;
  bytesUploaded?: number;
  totalBytes?: number | null;
  reason?: string;
  [field: string]: unknown;
}

export interface ConnectionError {
  transport: Transport | null;
  message?: string;
  status?: number;
  fatal?: boolean;
  /** WebSocket: the server's error code; a refusal over HTTP: the body's
   * `error`, e.g. `http2_streams_busy` (the client then moves to
   * WebSocket by itself). */
  code?: string;
}

export type Target = { projectId: string } | { jobId: string } | { sessionId: string }
  | { fileId: string } | { photoId: string };

export interface ConnectOptions {
  url: string | URL | Partial<Record<Transport, string>>;
  token?: string | (() => string | Promise<string>);
  transport?: 'auto' | Transport;
  jobId?: string;
  sessionId?: string;
  projectId?: string;
  fileId?: string;
  photoId?: string;
  lastEventId?: string;
  backoff?: { base?: number; cap?: number };
  heartbeatTimeout?: number;
  pingInterval?: number;
  openTimeout?: number;
  pollWait?: number;
  sse?: 'fetch' | 'eventsource';
  tokenParam?: string;
  credentials?: 'omit' | 'same-origin' | 'include';
  eventTypes?: string[];
  WebSocket?: unknown;
  EventSource?: unknown;
  fetch?: typeof fetch | false;
}

export interface Connection {
  on(type: 'status', fn: (s: Status) => void): () => void;
  on(type: 'error', fn: (e: ConnectionError) => void): () => void;
  on(type: 'open', fn: (o: { transport: Transport; clientId?: string }) => void): () => void;
  on(type: 'reconnecting', fn: (r: { delay: number; attempt: number }) => void): () => void;
  on(type: string, fn: (m: Message) => void): () => void;
  off(type: string, fn: (...args: any[]) => void): void;
  subscribe(target: Target): () => void;
  unsubscribe(target: Target): void;
  reconnect(): void;
  close(): void;
  readonly status: Status;
  readonly lastEventId: string | null;
  readonly transport: Transport | null;
}

export function connect(options: ConnectOptions): Connection;
export default connect;

export const VERSION: string;
export const KNOWN_TYPES: string[];
export function parseId(id: string): [bigint, bigint] | null;
export function compareIds(a: string, b: string): -1 | 0 | 1 | null;
export function backoffDelay(attempt: number, backoff?: { base?: number; cap?: number }, random?: () => number): number;
export class SSEParser {
  constructor(handlers?: {
    onEvent?: (e: { id?: string; event: string; data: string }) => void;
    onRetry?: (ms: number) => void;
    onComment?: (text: string) => void;
    onId?: (id: string) => void;
  });
  feed(text: string): void;
}
