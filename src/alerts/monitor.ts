import type { EngineEvent } from '../engine/events.js';
import { SendMetrics } from '../metrics/metrics.js';
import { startMetricsServer, type MetricsServer } from '../metrics/server.js';
import { AlertActions } from './actions.js';
import type { AlertSettings } from './config.js';
import { AlertEvaluator } from './evaluator.js';

/**
 * What `send` and `resume` hang on their event listener list besides the
 * reporters: the alert evaluator, the alert actions and the metrics endpoint.
 */

export type EngineListener = (e: EngineEvent) => void;

export interface MonitorOptions {
  readonly campaign: string;
  readonly alerts: AlertSettings;
  /** undefined: no endpoint; 0: a free port. */
  readonly metricsPort: number | undefined;
  /** Recipient domains by due volume, most first (the metrics' domain labels). */
  readonly domainsByVolume: readonly string[];
  /** The send's dispatcher: alerts go to every listener, like engine events. */
  readonly emit: EngineListener;
  /** A line on stderr: the metrics URL, action warnings. */
  readonly say: (line: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

export interface Monitor {
  /**
   * To put first on the listener list: the evaluator raises alerts while
   * `run-finished` is dispatched, and reporters later in the list then see
   * them before they print their summary.
   */
  readonly listeners: readonly EngineListener[];
  readonly metricsUrl: string | undefined;
  /** Wraps the NDJSON reporter so run-started carries `metricsUrl`. */
  withMetricsUrl(listener: EngineListener): EngineListener;
  /** Lets running actions finish (each is time-limited) and closes the endpoint. */
  close(): Promise<void>;
}

export async function startMonitor(o: MonitorOptions): Promise<Monitor> {
  let server: MetricsServer | undefined;
  let metrics: SendMetrics | undefined;
  if (o.metricsPort !== undefined) {
    metrics = new SendMetrics({ campaign: o.campaign, domainsByVolume: o.domainsByVolume });
    server = await startMetricsServer(metrics.registry, o.metricsPort);
    o.say(`mailq: metrics on ${server.url}`);
  }
  const evaluator = new AlertEvaluator(o.alerts, o.emit);
  const { command, webhook } = o.alerts.actions;
  const actions = command === undefined && webhook === undefined ? undefined : new AlertActions(o.alerts.actions, { campaign: o.campaign, warn: o.say, env: o.env });
  const listeners: EngineListener[] = [evaluator.onEvent];
  if (metrics !== undefined) listeners.push(metrics.onEvent);
  if (actions !== undefined) listeners.push(actions.onEvent);
  const url = server?.url;
  return {
    listeners,
    metricsUrl: url,
    withMetricsUrl: (listener) =>
      url === undefined
        ? listener
        : (e) => {
            if (e.type !== 'run-started') return listener(e);
            const started: typeof e & { readonly metricsUrl: string } = { ...e, metricsUrl: url };
            listener(started);
          },
    close: async () => {
      await actions?.drain();
      await server?.close();
    },
  };
}
