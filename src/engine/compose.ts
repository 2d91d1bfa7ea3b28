import type { Campaign, MessageRow } from '../store/types.js';
import { buildMessage, messageIdFor } from '../campaign/mime.js';
import { renderMessage, type RenderFailureReason, type RenderedMessage } from '../campaign/template/render.js';
import type { CompiledTemplate } from '../campaign/template/compile.js';

/**
 * The one code path from a stored recipient to the bytes that go on the wire.
 * `preview`, `check` and `send` all call this, so a preview is exactly what
 * would be sent (apart from the Date header).
 */

export type ComposeResult =
  | {
      readonly ok: true;
      readonly raw: Buffer;
      readonly message: RenderedMessage;
      readonly messageId: string;
      /** Bare envelope sender (MAIL FROM), parsed from the rendered From. */
      readonly envelopeFrom: string;
    }
  | { readonly ok: false; readonly reason: RenderFailureReason; readonly message: string };

/** What sending needs of a composed message: the rendered parts stay where they were made. */
export type ComposedForSend =
  | Omit<Extract<ComposeResult, { ok: true }>, 'message'>
  | Extract<ComposeResult, { ok: false }>;

/**
 * Variables a template sees: campaign-wide ones, then the recipient's columns
 * (import refuses a column named like a campaign variable), and `email`, the
 * normalized address, unless a column is already called that.
 */
export function recipientScope(campaign: Campaign, row: MessageRow): Record<string, string> {
  const scope: Record<string, string> = { ...campaign.vars, ...row.vars };
  if (!Object.prototype.hasOwnProperty.call(scope, 'email')) scope['email'] = row.address;
  return scope;
}

export async function renderRecipient(
  template: CompiledTemplate,
  campaign: Campaign,
  row: MessageRow,
): Promise<Awaited<ReturnType<typeof renderMessage>>> {
  return renderMessage(template, recipientScope(campaign, row));
}

export async function composeMessage(
  template: CompiledTemplate,
  campaign: Campaign,
  row: MessageRow,
  date: Date,
): Promise<ComposeResult> {
  const rendered = await renderRecipient(template, campaign, row);
  if (!rendered.ok) return rendered;
  const messageId = messageIdFor(campaign.name, row.addressKey, rendered.message.from);
  const built = buildMessage(rendered.message, row.address, messageId, date);
  return { ok: true, raw: built.raw, message: rendered.message, messageId, envelopeFrom: built.envelope.from };
}
