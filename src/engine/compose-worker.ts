import { parentPort, workerData } from 'node:worker_threads';
import { compileCampaign } from '../campaign/check.js';
import { composeMessage } from './compose.js';
import type { ComposeReply, ComposeRequest, ComposeWorkerInput } from './compose-protocol.js';

/**
 * One compose thread: compiles the campaign's template once, then renders
 * and builds the MIME bytes of each message the main thread sends it.
 */
const port = parentPort;
if (port === null) throw new Error('compose worker started outside a worker thread');
const { campaign } = workerData as ComposeWorkerInput;
const template = compileCampaign(campaign);

port.on('message', (req: ComposeRequest) => {
  composeMessage(template, campaign, req.row, new Date(req.dateMs)).then(
    (result) => {
      if (!result.ok) {
        port.postMessage({ id: req.id, kind: 'failed', result } satisfies ComposeReply);
        return;
      }
      const { raw, messageId, envelopeFrom } = result;
      // A Buffer may be a view into a shared pool; transfer only a buffer of its own.
      const own = raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength ? (raw.buffer as ArrayBuffer) : Uint8Array.prototype.slice.call(raw).buffer;
      port.postMessage({ id: req.id, kind: 'ok', raw: own, result: { ok: true, messageId, envelopeFrom } } satisfies ComposeReply, [own]);
    },
    (err: unknown) => port.postMessage({ id: req.id, kind: 'error', message: err instanceof Error ? err.message : String(err) } satisfies ComposeReply),
  );
});
