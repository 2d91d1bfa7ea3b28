/**
 * Exit codes are part of mailq's interface (README, "Exit codes").
 * 2 is any usage or input problem; 1 is reserved for bugs.
 */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  someFailed: 3,
  stopped: 4,
  fatalTransport: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * An error meant for the operator: one line saying what is wrong and where
 * (file, line, column, address), an optional hint saying what to do, and the
 * process exit code it maps to.
 */
export class MailqError extends Error {
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;

  constructor(message: string, options: { hint?: string; exitCode?: ExitCode; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MailqError';
    this.exitCode = options.exitCode ?? ExitCode.usage;
    this.hint = options.hint;
  }
}

/** Bad input (files, flags, templates): always exit 2. */
export class InputError extends MailqError {
  constructor(message: string, hint?: string) {
    super(message, hint === undefined ? {} : { hint });
    this.name = 'InputError';
  }
}

export function isMailqError(err: unknown): err is MailqError {
  return err instanceof MailqError;
}
