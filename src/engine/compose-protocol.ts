import type { Campaign, MessageRow } from '../store/types.js';
import type { ComposedForSend } from './compose.js';

/** Messages between the send's main thread and its compose workers (compose-pool.ts). */

export interface ComposeWorkerInput {
  /** The campaign as stored: its template snapshot is compiled once per worker. */
  readonly campaign: Campaign;
}

export interface ComposeRequest {
  readonly id: number;
  readonly row: MessageRow;
  /** The Date header, chosen by the main thread so the clock stays injectable. */
  readonly dateMs: number;
}

/**
 * `raw` crosses as a transferred ArrayBuffer: the message bytes are moved,
 * not copied; the rendered subject, text and HTML (~10 KB) do not cross.
 */
export type ComposeReply =
  | { readonly id: number; readonly kind: 'ok'; readonly raw: ArrayBuffer; readonly result: Omit<Extract<ComposedForSend, { ok: true }>, 'raw'> }
  | { readonly id: number; readonly kind: 'failed'; readonly result: Extract<ComposedForSend, { ok: false }> }
  | { readonly id: number; readonly kind: 'error'; readonly message: string };

/**
 * Requests and replies travel in batches: on this 2-core VM one postMessage
 * costs the sender ~100 µs (the wake-up of the other thread), as much as
 * composing a message; the leases of one commit are composed together.
 */
export interface ComposeBatch {
  readonly requests: readonly ComposeRequest[];
}

export interface ComposeReplies {
  readonly replies: readonly ComposeReply[];
}
