import { Box, Static, Text, useInput } from 'ink';
import { useMemo, useState, type ReactElement } from 'react';
import { finishedLines, layoutDashboard, type Line } from './layout.js';
import type { DashboardSnapshot, FinishedLine } from './model.js';
import { createTheme, type Theme } from './theme.js';

export interface DashboardProps {
  readonly snapshot: DashboardSnapshot;
  readonly columns: number;
  readonly rows: number;
  readonly color: boolean;
  /** Read keys (Ink needs raw mode, so only when stdin is a TTY). */
  readonly keys: boolean;
  /** The last frame, left in the terminal after exit: no help overlay, no key hints. */
  readonly final?: boolean;
  readonly onTogglePause: () => void;
  readonly onQuit: () => void;
  /**
   * Ctrl-C: in raw mode the terminal sends it as a byte instead of raising
   * SIGINT, so the dashboard hands it back (mount.ts raises SIGINT).
   */
  readonly onInterrupt: () => void;
}

const paint = (line: Line, theme: Theme): string => {
  let out = '';
  for (const s of line) out += theme.paint(s.text, s.tone);
  // An empty <Text> has no height; keep blank lines one cell high.
  return out === '' ? ' ' : out;
};

/** Notices printed once above the live region and left in the terminal's history. */
function Notices({ lines, columns, theme }: { readonly lines: readonly FinishedLine[]; readonly columns: number; readonly theme: Theme }): ReactElement {
  // <Static> only reads the array (it prints the items past the count it has printed).
  return (
    <Static items={lines as FinishedLine[]} style={{ width: columns }}>
      {(l) => (
        <Box key={l.seq} flexDirection="column">
          {finishedLines(l, columns).map((line, i) => (
            <Text key={i} wrap="truncate-end">
              {paint(line, theme)}
            </Text>
          ))}
        </Box>
      )}
    </Static>
  );
}

function LiveRegion({ lines, columns, theme }: { readonly lines: readonly Line[]; readonly columns: number; readonly theme: Theme }): ReactElement {
  return (
    <Box flexDirection="column" width={columns}>
      {lines.map((l, i) => (
        // Lines are cut to the width by the layout; truncate is a second guard, never wrap.
        <Text key={i} wrap="truncate-end">
          {paint(l, theme)}
        </Text>
      ))}
    </Box>
  );
}

export function Dashboard(props: DashboardProps): ReactElement {
  const { snapshot, columns, rows, color, keys, final = false, onTogglePause, onQuit, onInterrupt } = props;
  const [help, setHelp] = useState(false);
  const theme = useMemo(() => createTheme(color), [color]);

  useInput(
    (input, key) => {
      if (key.ctrl && input === 'c') {
        onInterrupt();
        return;
      }
      if (key.escape) {
        setHelp(false);
        return;
      }
      if (key.ctrl || key.meta) return;
      if (input === 'p' || input === 'P') onTogglePause();
      else if (input === 'q' || input === 'Q') onQuit();
      else if (input === '?') setHelp((h) => !h);
    },
    { isActive: keys && !final },
  );

  const lines = layoutDashboard(snapshot, { columns, rows, help: help && !final, hints: keys && !final });
  return (
    <>
      <Notices lines={snapshot.finished} columns={columns} theme={theme} />
      <LiveRegion lines={lines} columns={columns} theme={theme} />
    </>
  );
}
