import { parentPort, workerData } from 'node:worker_threads';
import { compileCampaign } from '../campaign/check.js';
import { composeMessage } from './compose.js';
import type { ComposeBatch, ComposeReplies, ComposeReply, ComposeRequest, ComposeWorkerInput } from './compose-protocol.js';

/**
 * One compose thread: compiles the campaign's template once, then renders
 * and builds the MIME bytes of each batch of messages the main thread sends
 * it, and answers each batch with one message.
 */
const port = parentPort;
if (port === null) throw new Error('compose worker started outside a worker thread');
const { campaign } = workerData as ComposeWorkerInput;
const template = compileCampaign(campaign);

async function composeOne(req: ComposeRequest, transfer: ArrayBuffer[]): Promise<ComposeReply> {
  try {
    const result = await composeMessage(template, campaign, req.row, new Date(req.dateMs));
    if (!result.ok) return { id: req.id, kind: 'failed', result };
    const { raw, messageId, envelopeFrom } = result;
    // A Buffer may be a view into a shared pool; transfer only a buffer of its own.
    const own = raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength ? (raw.buffer as ArrayBuffer) : Uint8Array.prototype.slice.call(raw).buffer;
    transfer.push(own);
    return { id: req.id, kind: 'ok', raw: own, result: { ok: true, messageId, envelopeFrom } };
  } catch (err) {
    return { id: req.id, kind: 'error', message: err instanceof Error ? err.message : String(err) };
  }
}

port.on('message', (batch: ComposeBatch) => {
  void (async () => {
    const transfer: ArrayBuffer[] = [];
    const replies: ComposeReply[] = [];
    for (const req of batch.requests) replies.push(await composeOne(req, transfer));
    port.postMessage({ replies } satisfies ComposeReplies, transfer);
  })();
});
