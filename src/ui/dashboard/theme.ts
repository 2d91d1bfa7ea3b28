/**
 * Colour for the dashboard, decided by mailq rather than by chalk (which Ink
 * uses for <Text color>). Two reasons, both checked in chalk 5.6 as shipped
 * with ink 6.8: chalk ignores NO_COLOR (only FORCE_COLOR=0 and --no-color turn
 * it off), and it decides from stdout (fd 1) while the dashboard draws on
 * stderr, so `mailq send … > log` would lose colour and `NO_COLOR=1 mailq send`
 * would keep it. So the components never pass colour props to Ink: they write
 * SGR sequences themselves (Ink passes SGR through and measures text without
 * it), or none at all when colour is off.
 */

export type Tone = 'ok' | 'warn' | 'bad' | 'dim' | 'accent' | 'bold' | 'inverse';

/** SGR open/close pairs (ECMA-48); closes reset only their own attribute, so tones can sit side by side. */
const SGR: Readonly<Record<Tone, readonly [string, string]>> = {
  ok: ['\u001b[32m', '\u001b[39m'],
  warn: ['\u001b[33m', '\u001b[39m'],
  bad: ['\u001b[31m', '\u001b[39m'],
  dim: ['\u001b[2m', '\u001b[22m'],
  accent: ['\u001b[36m', '\u001b[39m'],
  bold: ['\u001b[1m', '\u001b[22m'],
  inverse: ['\u001b[7m', '\u001b[27m'],
};

export interface Theme {
  readonly color: boolean;
  paint(text: string, tone: Tone | undefined): string;
}

/**
 * no-color.org: NO_COLOR set to anything but "" turns colour off, and here it
 * wins over FORCE_COLOR (a parent tool may force colour for its children; a
 * user's NO_COLOR is a standing preference). Otherwise FORCE_COLOR=0/false
 * turns it off and any other FORCE_COLOR turns it on; TERM=dumb turns it off;
 * else colour follows whether the stream the dashboard draws on is a TTY.
 */
export function colorEnabled(env: NodeJS.ProcessEnv, stream: { readonly isTTY?: boolean }): boolean {
  const noColor = env['NO_COLOR'];
  if (noColor !== undefined && noColor !== '') return false;
  const force = env['FORCE_COLOR'];
  if (force !== undefined) return force !== '0' && force !== 'false';
  if (env['TERM'] === 'dumb') return false;
  return stream.isTTY === true;
}

export function createTheme(color: boolean): Theme {
  return {
    color,
    paint: color
      ? (text, tone) => {
          if (tone === undefined || text === '') return text;
          const [open, close] = SGR[tone];
          return open + text + close;
        }
      : (text) => text,
  };
}
