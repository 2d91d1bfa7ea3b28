/**
 * What the engine needs from a way of delivering mail. The engine owns retries
 * and classification; a transport makes exactly one attempt and reports what
 * happened, including whether the body had been fully written when it failed.
 */

export type TransportStage = 'connect' | 'greeting' | 'ehlo' | 'starttls' | 'auth' | 'mail' | 'rcpt' | 'data' | 'body';

export interface OutgoingMessage {
  /** Envelope sender (bare address). */
  readonly from: string;
  /** The one validated recipient: exactly one RCPT per message. */
  readonly to: string;
  readonly raw: Buffer;
  readonly messageId: string;
}

export type TransportResult =
  | { readonly ok: true; readonly code: number; readonly reply: string }
  | {
      readonly ok: false;
      readonly stage: TransportStage;
      readonly code: number | undefined;
      readonly reply: string | undefined;
      /** Network or local error code (ECONNREFUSED, ETIMEDOUT, EAUTH, ETLS…) when there was no usable reply. */
      readonly errorCode: string | undefined;
      /** The whole body and the final "." were handed to the socket before the failure. */
      readonly bodyWritten: boolean;
      readonly message: string;
    };

export interface Transport {
  /** Without secrets, for logs, settings and the dashboard. */
  readonly description: string;
  /** Connections this transport opens at most. */
  readonly maxConnections: number;
  send(message: OutgoingMessage): Promise<TransportResult>;
  /** Open connections right now (for the dashboard's health view). */
  openConnections(): number;
  /** Cuts every connection now, in-flight transactions included (second Ctrl-C). */
  abortAll(): void;
  close(): Promise<void>;
}
