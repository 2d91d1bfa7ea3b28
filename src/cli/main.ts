import { Command, CommanderError } from 'commander';
import { ExitCode } from '../errors.js';
import { registerCheck } from './check.js';
import { registerImport } from './import.js';
import { registerPreview } from './preview.js';
import { registerRefreshTemplate } from './refresh-template.js';
import { registerRejects } from './rejects.js';
import { registerSink } from './sink.js';
import { registerSend } from './send.js';
import { registerFailures, registerStatus } from './status.js';
import { reportError } from './context.js';
import { VERSION } from '../version.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('mailq')
    .description('Bulk email for operators and CI: import recipients, check, preview, send.')
    .version(VERSION)
    .option('--db <path>', 'job database (env MAILQ_DB; default ./mailq.db)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  registerImport(program);
  registerRejects(program);
  registerCheck(program);
  registerPreview(program);
  registerRefreshTemplate(program);
  registerSend(program);
  registerStatus(program);
  registerFailures(program);
  registerSink(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

async function main(argv: string[]): Promise<void> {
  // A reader like `head` closing stdout early is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
  try {
    await buildProgram().parseAsync(argv);
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
