// Types of uniws-client.js (docs/clients.md).

export declare const AGENT_EVENT_TYPES: readonly ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"];

export type State = "connecting" | "open" | "reconnecting" | "closed";
export declare const State: { readonly connecting: "connecting"; readonly open: "open"; readonly reconnecting: "reconnecting"; readonly closed: "closed" };

export type NextStep = "reconnect" | "stop";
export declare const CLOSE_CODES: Readonly<Record<number, readonly [NextStep, string]>>;
export declare const RETRY_STATUSES: readonly number[];
export declare function afterClose(code: number | undefined): [NextStep, string];

/** One event of a run: its type, the user's seq (W8), the payload object. */
export interface AgentEvent {
  kind: "agent_event";
  type: string;
  threadId: string;
  runId: string;
  seq: number;
  payload: Record<string, unknown>;
}
/** A join answered (R1): `recovered` is undefined for a first join, true/false for a resume. */
export interface JoinedEvent {
  kind: "joined";
  threadId: string;
  epoch: string;
  seq: number;
  recovered?: boolean;
  replayed: number;
}
/** A resume the server could not serve (R3): events of the thread may have been missed. Fetch the
 * thread's state again; the stream goes on from `seq`. */
export interface StateLostEvent {
  kind: "state_lost";
  threadId: string;
  epoch: string;
  seq: number;
}
/** An error event (E1, L3-L5): the connection stays open. */
export interface ServerErrorEvent {
  kind: "server_error";
  code: string;
  message: string;
}
export interface StateChangedEvent {
  kind: "state_changed";
  state: State;
  reason: string;
}
export type ClientEvent = AgentEvent | JoinedEvent | StateLostEvent | ServerErrorEvent | StateChangedEvent;

export declare class ClientError extends Error {}
export declare class AuthenticationFailed extends ClientError {}
export declare class Refused extends ClientError {
  status: number;
  closeCode: number;
}
export declare class GaveUp extends ClientError {}

export interface ReconnectPolicyOptions {
  /** ms before the first retry (250) */ initial?: number;
  /** the longest wait, ms (5000) */ maximum?: number;
  /** growth per attempt (2) */ multiplier?: number;
  /** the random part taken off each wait, 0..1 (0.5) */ jitter?: number;
  /** ms a connection must stay open for the count to start again (10000) */ stable?: number;
  /** attempts before GaveUp (null: forever) */ maxAttempts?: number | null;
}
export declare class ReconnectPolicy implements Required<ReconnectPolicyOptions> {
  constructor(options?: ReconnectPolicyOptions);
  readonly initial: number;
  readonly maximum: number;
  readonly multiplier: number;
  readonly jitter: number;
  readonly stable: number;
  readonly maxAttempts: number | null;
  delay(attempt: number, random?: () => number): number;
}

export type TokenProvider = (info: { refused: boolean }) => string | Promise<string>;

export interface ClientOptions {
  policy?: ReconnectPolicy;
  /** A WebSocket constructor (default: globalThis.WebSocket; in Node, e.g. require("ws")). */
  WebSocket?: new (url: string) => any;
  /** For the status probe after a failed upgrade (default: globalThis.fetch). */
  fetch?: (url: string, init?: object) => Promise<{ status: number }>;
  /** ms between the client's pings (20000; 0: none) */ pingInterval?: number;
  /** ms a ping may wait for any frame before the connection counts as dead (20000) */ pingTimeout?: number;
  /** ms an attempt may take to open (10000) */ openTimeout?: number;
  /** commands kept while disconnected (1024) */ maxPending?: number;
  /** events kept for the iterator before the client ends with an error (100000) */ maxBuffered?: number;
  /** Every event, in order; a returned promise is awaited before the next. No iterator then. */
  onEvent?: (event: ClientEvent) => void | Promise<void>;
  random?: () => number;
  /** false: call start() yourself */ start?: boolean;
}

export interface ClientStats {
  connects: number;
  failedConnects: number;
  tokenRequests: number;
  resumes: number;
  statesLost: number;
  duplicatesDropped: number;
  events: number;
}

export declare class UniwsClient implements AsyncIterable<ClientEvent> {
  constructor(url: string, tokenProvider: TokenProvider, options?: ClientOptions);
  readonly url: string;
  readonly policy: ReconnectPolicy;
  readonly stats: Readonly<ClientStats>;
  readonly state: State;
  /** Resolves when the client ends: null after close(), or the ClientError that ended it. */
  readonly closed: Promise<ClientError | null>;
  start(): void;
  close(): Promise<void>;
  join(threadId: string): void;
  leave(threadId: string): void;
  runAgent(threadId: string, message: string, options?: { steps?: number; pad?: number }): void;
  lastSeq(threadId: string): number | undefined;
  [Symbol.asyncIterator](): AsyncIterator<ClientEvent>;
}
