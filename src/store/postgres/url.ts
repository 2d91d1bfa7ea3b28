import fs from 'node:fs';
import { InputError } from '../../errors.js';

/**
 * Parses a `postgres://user@host:port/db?schema=name` location into what the
 * pool needs. The URL is shown in messages (`store.location`), so a password
 * inside it is refused: it would end up in shell history, `ps` output and logs.
 */

export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location.trim());
}

/** Schema names mailq creates and puts on search_path: plain lower-case identifiers, no quoting needed. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

const SSL_MODES = ['disable', 'require', 'no-verify', 'verify-full'] as const;
type SslMode = (typeof SSL_MODES)[number];

export interface PgTarget {
  /** The URL as given (it holds no password): what messages show. */
  readonly location: string;
  /** `host:port/db`, naming the server in one-line errors. */
  readonly label: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string | undefined;
  /** From MAILQ_DB_PASSWORD_FILE; undefined lets pg read PGPASSWORD (or ~/.pgpass). */
  readonly password: string | undefined;
  /** The `?schema=` parameter: created when missing and set as the only schema on search_path. */
  readonly schema: string | undefined;
  readonly sslMode: SslMode | undefined;
  readonly applicationName: string;
}

function decode(part: string, what: string, location: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new InputError(`--db ${location}: the ${what} is not valid percent-encoding`);
  }
}

/** Reads MAILQ_DB_PASSWORD_FILE: the whole file, less one trailing newline (as `echo secret > file` leaves). */
function readPasswordFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(
      `cannot read MAILQ_DB_PASSWORD_FILE ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      'point MAILQ_DB_PASSWORD_FILE at a readable file holding the database password',
    );
  }
  return text.replace(/\r?\n$/, '');
}

export function parsePgUrl(raw: string, env: NodeJS.ProcessEnv): PgTarget {
  const location = raw.trim();
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new InputError(`--db ${location} is not a valid URL`, 'write it as postgres://user@host:5432/database');
  }
  if (url.password !== '') {
    // Do not echo the URL: it holds the password.
    throw new InputError(
      `--db: the PostgreSQL URL contains a password (postgres://${decode(url.username, 'user', '…')}:…@${url.host}${url.pathname})`,
      'remove it from the URL and give it in PGPASSWORD or in a file named by MAILQ_DB_PASSWORD_FILE',
    );
  }
  const host = url.hostname === '' ? 'localhost' : url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? 5432 : Number(url.port);
  const database = decode(url.pathname.replace(/^\//, ''), 'database name', location);
  if (database === '' || database.includes('/')) {
    throw new InputError(`--db ${location} names no database`, 'write it as postgres://user@host:5432/database');
  }
  const user = url.username === '' ? undefined : decode(url.username, 'user', location);

  let schema: string | undefined;
  let sslMode: SslMode | undefined;
  let applicationName = 'mailq';
  for (const [key, value] of url.searchParams) {
    if (key === 'schema') {
      if (!SCHEMA_NAME.test(value)) {
        throw new InputError(
          `--db ${location}: schema "${value}" is not a plain lower-case name`,
          'use letters a-z, digits and _ (up to 63, not starting with a digit), e.g. ?schema=mailq_spring',
        );
      }
      schema = value;
    } else if (key === 'sslmode') {
      if (!(SSL_MODES as readonly string[]).includes(value)) {
        throw new InputError(`--db ${location}: sslmode must be one of ${SSL_MODES.join(', ')} (got "${value}")`);
      }
      sslMode = value as SslMode;
    } else if (key === 'application_name') {
      applicationName = value;
    } else {
      throw new InputError(`--db ${location}: unknown parameter "${key}"`, 'mailq understands ?schema=, ?sslmode= and ?application_name=');
    }
  }

  const passwordFile = env['MAILQ_DB_PASSWORD_FILE'];
  const password = passwordFile === undefined || passwordFile === '' ? undefined : readPasswordFile(passwordFile);
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    location,
    label: `${hostPart}:${port}/${database}`,
    host,
    port,
    database,
    user,
    password,
    schema,
    sslMode,
    applicationName,
  };
}

/** pg's `ssl` option for a libpq-style sslmode. */
export function sslOption(mode: SslMode | undefined): boolean | { rejectUnauthorized: boolean } | undefined {
  switch (mode) {
    case undefined:
      return undefined;
    case 'disable':
      return false;
    case 'require':
    case 'no-verify':
      // libpq's require encrypts without checking the certificate; so does this.
      return { rejectUnauthorized: false };
    case 'verify-full':
      return true;
  }
}
