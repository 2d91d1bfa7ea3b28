import { Command, CommanderError } from 'commander';
import { ExitCode } from '../errors.js';
import { reportError } from './context.js';
import { VERSION } from '../version.js';

type Registrar = (program: Command) => void;

/**
 * Commands in help order, each loaded only when needed: loading every
 * command's dependencies (Ink, React, nodemailer, smtp-server, prom-client…)
 * took ~0.8 s before `mailq import` could start; a command now loads its own.
 */
const COMMANDS: readonly { readonly names: readonly string[]; readonly load: () => Promise<readonly Registrar[]> }[] = [
  { names: ['import'], load: async () => [(await import('./import.js')).registerImport] },
  { names: ['rejects'], load: async () => [(await import('./rejects.js')).registerRejects] },
  { names: ['check'], load: async () => [(await import('./check.js')).registerCheck] },
  { names: ['preview'], load: async () => [(await import('./preview.js')).registerPreview] },
  { names: ['refresh-template'], load: async () => [(await import('./refresh-template.js')).registerRefreshTemplate] },
  { names: ['send', 'resume'], load: async () => [(await import('./send.js')).registerSend] },
  {
    names: ['status', 'failures'],
    load: async () => {
      const m = await import('./status.js');
      return [m.registerStatus, m.registerFailures];
    },
  },
  { names: ['report'], load: async () => [(await import('./report.js')).registerReport] },
  { names: ['trace'], load: async () => [(await import('./trace.js')).registerTrace] },
  { names: ['retry'], load: async () => [(await import('./retry.js')).registerRetry] },
  { names: ['campaigns'], load: async () => [(await import('./campaigns.js')).registerCampaigns] },
  { names: ['sink'], load: async () => [(await import('./sink.js')).registerSink] },
];

/** Global options that take a value, so that value is not taken for a command name. */
const GLOBAL_VALUE_OPTIONS = new Set(['--db']);

/** The command named on the command line, if any (undefined for `mailq --help`, `mailq help send`…). */
function commandOf(argv: readonly string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (GLOBAL_VALUE_OPTIONS.has(arg)) i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

export async function buildProgram(argv: readonly string[]): Promise<Command> {
  const program = new Command();
  program
    .name('mailq')
    .description('Bulk email for operators and CI: import recipients, check, preview, send.')
    .version(VERSION)
    .option('--db <path|url>', 'job database: a SQLite file, or postgres://user@host:port/db (env MAILQ_DB; default ./mailq.db)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  const named = commandOf(argv);
  const one = COMMANDS.find((c) => named !== undefined && c.names.includes(named));
  const versionOnly = named === undefined && (argv.includes('--version') || argv.includes('-V'));
  // Help, an unknown command or none at all: load them all, so help and "did you mean" see every one.
  for (const entry of versionOnly ? [] : one === undefined ? COMMANDS : [one]) {
    for (const register of await entry.load()) register(program);
  }
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

async function main(argv: string[]): Promise<void> {
  // A reader like `head` closing stdout early is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
  try {
    await (await buildProgram(argv)).parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are successes; every other commander complaint is a usage error.
      const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
      process.exitCode = ok ? ExitCode.ok : ExitCode.usage;
      return;
    }
    process.exitCode = reportError(err);
  }
}

await main(process.argv);
