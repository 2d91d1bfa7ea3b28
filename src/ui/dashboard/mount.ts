import { render } from 'ink';
import { createElement } from 'react';
import type { EngineEvent } from '../../engine/events.js';
import { Dashboard } from './Dashboard.js';
import { createDashboardModel } from './model.js';
import { colorEnabled } from './theme.js';

/**
 * Mounts the live dashboard. Events only update the model (a few counters,
 * well under a microsecond each: see bench/dashboard); a timer renders a
 * snapshot 4 times a second, so terminal work never sits on the send's path
 * and a burst of 5,000 events costs one frame, not 5,000.
 */

export interface DashboardOptions {
  /** Where to draw: the CLI passes process.stderr, keeping stdout for machine output. */
  readonly stdout: NodeJS.WriteStream;
  readonly stdin: NodeJS.ReadStream;
  readonly now: () => number;
  /** `p`: the engine answers with leasing-paused / leasing-resumed events. */
  readonly onTogglePause: () => void;
  /** `q`: a graceful stop, like a first Ctrl-C. Called on every press. */
  readonly onQuit: () => void;
  /** Re-render period (default 250 ms: 4 Hz). */
  readonly refreshMs?: number;
  /**
   * Ctrl-C. With keys read in raw mode the terminal no longer raises SIGINT,
   * so by default the dashboard raises it on this process itself, and the
   * send's SIGINT handling (graceful, then abort) works as without a dashboard.
   */
  readonly onInterrupt?: () => void;
  /** The engine's Throttle.keyFor, so a provider-group pause ("google") shows on gmail.com's row. */
  readonly keyFor?: (domain: string) => string;
  /** For NO_COLOR / FORCE_COLOR / TERM (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

export interface DashboardHandle {
  onEvent(e: EngineEvent): void;
  /** Renders the final frame, unmounts and restores the terminal (raw mode off, cursor shown). */
  stop(): Promise<void>;
}

const DEFAULT_COLUMNS = 80;
const DEFAULT_ROWS = 24;

export function startDashboard(opts: DashboardOptions): DashboardHandle {
  const { stdout, stdin } = opts;
  const model = createDashboardModel(opts.now, opts.keyFor === undefined ? {} : { keyFor: opts.keyFor });
  const color = colorEnabled(opts.env ?? process.env, stdout);
  // Ink throws when asked for raw mode on a stdin that is not a TTY (`mailq send < file`).
  const keys = stdin.isTTY === true;
  const onInterrupt = opts.onInterrupt ?? ((): void => void process.kill(process.pid, 'SIGINT'));
  // A display bug must not fail a send: remember it and report it from stop().
  let failure: unknown;

  const element = (final = false): ReturnType<typeof createElement> =>
    createElement(Dashboard, {
      snapshot: model.snapshot(),
      columns: stdout.columns > 0 ? stdout.columns : DEFAULT_COLUMNS,
      rows: stdout.rows > 0 ? stdout.rows : DEFAULT_ROWS,
      color,
      keys,
      onTogglePause: opts.onTogglePause,
      onQuit: opts.onQuit,
      onInterrupt,
      final,
    });

  let redraw = (_final?: boolean): void => undefined;
  // Registered before Ink's own resize listener, so Ink's re-layout after a
  // resize already sees the new width (a frame laid out for the old, wider
  // width would be wrapped by the terminal and leave debris behind).
  const onResize = (): void => redraw();
  stdout.on('resize', onResize);

  const instance = render(element(), {
    stdout,
    stdin,
    stderr: stdout,
    exitOnCtrlC: false,
    // Ink would route console.log to `stdout`, which is stderr here; stdout stays the CLI's.
    patchConsole: false,
  });
  // Before unmount: Ink resolves only a promise that exists when it unmounts.
  const exited = instance.waitUntilExit();
  redraw = (final = false): void => {
    try {
      instance.rerender(element(final));
    } catch (err) {
      failure ??= err;
    }
  };
  const timer = setInterval(() => redraw(), opts.refreshMs ?? 250);
  timer.unref();

  let stopped: Promise<void> | undefined;
  return {
    onEvent(e) {
      try {
        model.apply(e);
      } catch (err) {
        failure ??= err;
      }
    },
    stop() {
      stopped ??= (async () => {
        clearInterval(timer);
        stdout.off('resize', onResize);
        redraw(true);
        instance.unmount();
        await exited;
        if (failure !== undefined) throw failure instanceof Error ? failure : new Error(`dashboard: ${JSON.stringify(failure)}`);
      })();
      return stopped;
    },
  };
}
