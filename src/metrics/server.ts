import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { InputError } from '../errors.js';

/**
 * The Prometheus endpoint: GET /metrics on 127.0.0.1 only. Metrics name
 * campaigns and domains, so they stay on this machine; a scraper elsewhere
 * goes through the operator's own proxy or tunnel.
 */

export const METRICS_HOST = '127.0.0.1';

export interface MetricsServer {
  /** http://127.0.0.1:PORT/metrics, with the port actually bound (port 0 picks a free one). */
  readonly url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(registry: Registry, port: number): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const pathname = (req.url ?? '/').split('?')[0];
    if (pathname !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const why = err.code === 'EADDRINUSE' ? 'the port is in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(new InputError(`--metrics-port ${port}: cannot listen on ${METRICS_HOST}:${port}: ${why}`, 'choose another port, or 0 for a free one'));
    };
    server.once('error', onError);
    server.listen(port, METRICS_HOST, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // The endpoint lives as long as the send: it must never keep the process alive on its own.
  server.unref();
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://${METRICS_HOST}:${bound}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        // A scraper's keep-alive connection would otherwise hold close() open.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
