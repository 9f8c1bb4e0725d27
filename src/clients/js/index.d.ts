// Type declarations for reactor-client (index.js). The protocol: docs/protocol.md.

export declare const VERSION: string;
export declare const BACKOFF_MIN_MS: number;
export declare const BACKOFF_MAX_MS: number;
export declare const DEDUP_WINDOW: number;

export declare const CloseCode: Readonly<{
  NORMAL: 1000; GOING_AWAY: 1001; PROTOCOL_ERROR: 1002; INVALID_DATA: 1007;
  POLICY: 1008; TOO_BIG: 1009; INTERNAL: 1011; SLOW_CONSUMER: 1013;
}>;

export type JobStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled' | 'expired';
export type EventKind = 'status' | 'progress' | 'due';

/** An event of CONTRACT section 4 (`reactor.job_events.payload`). */
export interface JobEvent {
  id: number;
  kind: EventKind;
  job_id: string;
  source: string;
  status: JobStatus | string;
  old_status: JobStatus | string | null;
  user_id: string | null;
  job_type: string | null;
  attempt?: number | null;
  progress?: number | null;
  message?: string | null;
  error?: string | null;
  scheduled_for?: string | null;
  at?: string;
  truncated?: boolean;
  [field: string]: unknown;
}

/** A row of reactor.scheduled_jobs as a snapshot carries it. */
export interface JobRow {
  id: string;
  job_type: string;
  user_id: string | null;
  status: JobStatus | string;
  scheduled_for: string | null;
  updated_at: string;
  /** What the job's newest event says of the last change; null when none is kept (absent from older servers). */
  last_event?: LastEvent | null;
  [column: string]: unknown;
}

/** A snapshot row's newest event: events with an id at or below `id` are already in the row. */
export interface LastEvent {
  id: number;
  kind: string;
  at: string | null;
  cause: string | null;
  actor: string | null;
  action: string | null;
  attempt: number | null;
}

export interface Filter {
  job_id?: string;
  user_id?: string;
  job_type?: string[] | string;
  status?: (JobStatus | string)[] | string;
}

export interface WelcomeMessage { type: 'welcome'; server: string; last_event_id: number; mode?: 'live' | 'replay' }
export type ActionName = 'retry_now' | 'cancel' | 'run_now' | 'enable' | 'disable' | 'set_priority';
export interface AckMessage { type: 'ack'; id: string; action: ActionName; job_id: string; event_id: number }
export interface HistoryMessage { type: 'history'; id: string; job_id: string; events: JobEvent[]; more: boolean }
export interface CountsMessage { type: 'counts'; as_of: number; counts: Record<string, Record<string, number>> }
/** A refused request: `code` is the server's (forbidden, not_found, conflict, bad_request, unavailable), or closed / busy / timeout; `id` the request's. */
export interface RequestError extends Error { code: string; id?: string }
export interface SubscribedMessage { type: 'subscribed'; id: string; last_event_id: number }
export interface SnapshotMessage { type: 'snapshot'; id: string; as_of: number; jobs: JobRow[] }
export interface GapMessage { type: 'gap'; id: string; after: number }
export interface ErrorMessage {
  type: 'error';
  code: 'bad_request' | 'forbidden' | 'unknown_subscription' | string;
  message: string;
}
export type ServerMessage =
  | WelcomeMessage | SubscribedMessage | SnapshotMessage | GapMessage | ErrorMessage
  | { type: 'event'; event: JobEvent } | { type: 'unsubscribed'; id: string } | { type: 'pong' };

export type ClientState = 'idle' | 'connecting' | 'open' | 'live' | 'reconnecting' | 'auth';

/** Anything shaped like the browser's WebSocket (Node 22's global, or the `ws` package's class). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface SubscribeOptions {
  filter?: Filter;
  /** Take a snapshot first (and again after a gap, or a reconnect before it arrived). */
  snapshot?: boolean;
  /** Resume after this event id. */
  since?: number;
  /** On `gap`, take a fresh snapshot (default true). */
  resnapshotOnGap?: boolean;
  onEvent?: (event: JobEvent) => void;
  onSnapshot?: (message: SnapshotMessage) => void;
  onGap?: (message: GapMessage) => void;
  onSubscribed?: (message: SubscribedMessage) => void;
}

export declare class Subscription {
  readonly id: string;
  readonly filter: Filter;
  /** The event id this subscription resumes from after a reconnect (null: none yet). */
  cursor: number | null;
  snapshotPending: boolean;
  subscribed: boolean;
  gaps: number;
  snapshots: number;
  resnapshot(): void;
  unsubscribe(): void;
}

export interface ClientOptions {
  url: string;
  /** Default: globalThis.WebSocket (browsers, Node 22+). Node 20: `import WebSocket from 'ws'`. */
  WebSocket?: WebSocketConstructor;
  token?: string | null;
  /** Called for a new token before the current one expires (and after a 1008 close). */
  refreshToken?: (() => Promise<string | null> | string | null) | null;
  /** Renew this long before `exp` (at most half the remaining lifetime). Default 30 000. */
  refreshMarginMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Fraction of each backoff delay taken off at random (0..1). Default 0.5. */
  jitter?: number;
  random?: () => number;
  /** How many recent event ids are remembered for de-duplication. Default 65 536. */
  dedupWindow?: number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (t: unknown) => void;
  now?: () => number;
  onState?: (state: ClientState, client: ReactorClient) => void;
  /** Every event, once, before the subscriptions' own handlers. */
  onEvent?: (event: JobEvent) => void;
  onWelcome?: (message: WelcomeMessage) => void;
  onError?: (text: string, message?: ErrorMessage) => void;
  onAuthNeeded?: (why: string) => void;
  onClose?: (close: { code: number; reason: string }) => void;
  /** Requests (action, history) waiting for their answer at once; more are rejected (`busy`). Default 64. */
  maxRequests?: number;
  /** A request not answered in this long is rejected (`timeout`). Default 15 000. */
  requestTimeoutMs?: number;
}

export declare class ReactorClient {
  constructor(options: ClientOptions);
  readonly state: ClientState;
  readonly server: string | null;
  /** The id of the last event received. */
  readonly lastEventId: number | null;
  readonly retryAt: number;
  readonly connections: number;
  readonly stats: {
    events: number; duplicates: number; gaps: number; snapshots: number; reconnects: number; refreshes: number;
  };
  start(): this;
  stop(code?: number, reason?: string): void;
  isOpen(): boolean;
  subscribe(id: string, options?: SubscribeOptions): Subscription;
  unsubscribe(id: string): void;
  subscription(id: string): Subscription | undefined;
  setToken(token: string | null): void;
  reconnectNow(): void;
  backoffDelay(attempt: number): number;
  /** An operator's action; rejects with a RequestError. */
  action(action: ActionName, jobId: string, arg?: string): Promise<AckMessage>;
  /** A job's events, newest first; page with `before`. */
  history(jobId: string, options?: { before?: number; limit?: number; source?: string }): Promise<HistoryMessage>;
  /** Totals by status × job type on every change (at most 5/s); null stops them. */
  watchCounts(onCounts: ((message: CountsMessage) => void) | null): void;
}

export declare function matchesFilter(filter: Filter | null | undefined, event: JobEvent): boolean;
export declare function tokenExpiry(token: string): number | null;
export default ReactorClient;
