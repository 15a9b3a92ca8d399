// SPDX-License-Identifier: Apache-2.0
// Types of index.mjs (see README.md).
import type { ReactElement, ReactNode } from 'react';
import type { Connection, ConnectOptions, Message, Status } from 'mod-upload-progress-client';

/** connect() options without the narrowing, which the hooks take themselves. */
export type HookOptions = Partial<Omit<ConnectOptions, 'jobId' | 'sessionId' | 'projectId'>>;

export interface UploadProgressProviderProps extends HookOptions {
  url: ConnectOptions['url'];
  children?: ReactNode;
}
/** Gives the hooks below their url, token and connect() options. */
export function UploadProgressProvider(props: UploadProgressProviderProps): ReactElement;

export interface Feed {
  status: Status;
  lastEvent: Message | null;
  events: Message[];
  lastEventId: string | null;
}

export interface UploadProgressState extends Feed {
  /** The latest percentage, 100 once completed; null before any. */
  progress: number | null;
  /** How many `reset` signals arrived: re-read state from the API when it changes. */
  reset: number;
  connection: Connection | null;
}

export function useUploadProgress(options?: HookOptions & {
  jobId?: string;
  sessionId?: string;
  projectId?: string;
  maxEvents?: number;
}): UploadProgressState;

export interface WebSocketState extends Feed {
  connection: Connection | null;
}

export function useWebSocket(projectId?: string | null, options?: HookOptions & {
  maxEvents?: number;
}): WebSocketState;

/** How many shared connections are open (for tests and diagnostics). */
export function sharedConnectionCount(): number;
