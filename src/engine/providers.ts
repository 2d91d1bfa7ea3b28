import type { DomainLimit, ProviderGroup, ThrottleConfig } from './throttle.js';

/**
 * Default throttle table (DESIGN.md §7). Sources:
 * - KumoMTA assets/policy-extras/shaping.toml ("default" section and
 *   [provider.*] sections) and assets/community/shaping.toml (automation
 *   rules), https://github.com/KumoCorp/kumomta
 * - Google: https://support.google.com/mail/answer/81126 (sender guidelines)
 * - Yahoo: https://senders.yahooinc.com/best-practices (TSS04 = suspend)
 * - Microsoft: https://sendersupport.olc.protection.outlook.com/pm/Policies
 * - Apple: https://support.apple.com/en-us/102322
 * - Orange: https://messagerie.orange.fr/postmaster.html
 *
 * KumoMTA groups sites by MX host (e.g. every domain whose MX ends in
 * .google.com); mailq has no MX lookup in the throttle, so groups list the
 * providers' consumer domains explicitly. Hosted domains (Google Workspace,
 * Microsoft 365 tenants) fall back to the default limit, per domain.
 *
 * Providers publish connection guidance, not message rates; KumoMTA only sets
 * provider connection limits and leaves max_message_rate at its 100/s default.
 * The 20/s per provider below is mailq's own, more careful choice for a single
 * sending host without an IP warm-up plan: with 5 connections and a typical
 * 250-500 ms per transaction it is about what the connections carry anyway, so
 * the rate cap only bites on fast links. Raise it with --domain-rate.
 */

/** KumoMTA "default": connection_limit = 10, max_message_rate = "100/s". */
export const defaultDomainLimit: DomainLimit = { rate: { perSecond: 100 }, connections: 10 };

/** Yahoo TSS04/IPTS04 "temporarily deferred due to user complaints": KumoMTA suspends for 2 hours. */
const YAHOO_SEVERE_PAUSE_MS = 2 * 3_600_000;

export const defaultProviderGroups: readonly ProviderGroup[] = [
  {
    // KumoMTA [provider."google"]: provider_connection_limit = 5.
    name: 'google',
    domains: ['gmail.com', 'googlemail.com'],
    limit: { rate: { perSecond: 20 }, connections: 5 },
  },
  {
    // KumoMTA [provider."outlook"] (MX *.olc.protection.outlook.com, the consumer
    // service behind all of these domains): provider_connection_limit = 5.
    name: 'microsoft',
    domains: [
      'outlook.com',
      'hotmail.com',
      'live.com',
      'msn.com',
      'windowslive.com',
      'hotmail.co.uk',
      'hotmail.fr',
      'hotmail.de',
      'hotmail.it',
      'hotmail.es',
      'outlook.fr',
      'outlook.de',
      'live.co.uk',
      'live.fr',
      'live.nl',
      'live.it',
    ],
    limit: { rate: { perSecond: 20 }, connections: 5 },
  },
  {
    // KumoMTA [provider."yahoo"] (MX *.yahoodns.net, which also serves AOL) sets no
    // connection limit, so it inherits the default 10; mailq uses 5 like the other
    // big consumer providers because Yahoo's answer to pressure is a 2 h TSS04 suspension.
    // yahoo.co.jp is a separate company with its own MX (KumoMTA community file): not here.
    name: 'yahoo',
    domains: [
      'yahoo.com',
      'ymail.com',
      'rocketmail.com',
      'aol.com',
      'aim.com',
      'yahoo.co.uk',
      'yahoo.fr',
      'yahoo.de',
      'yahoo.it',
      'yahoo.es',
      'yahoo.ca',
      'yahoo.com.au',
      'yahoo.com.br',
    ],
    limit: { rate: { perSecond: 20 }, connections: 5 },
    severePauseMs: YAHOO_SEVERE_PAUSE_MS,
  },
  {
    // KumoMTA [provider."apple"] (MX *.icloud.com): provider_connection_limit = 10.
    name: 'apple',
    domains: ['icloud.com', 'me.com', 'mac.com'],
    limit: { rate: { perSecond: 20 }, connections: 10 },
  },
  {
    // DESIGN.md §7: 2 connections (KumoMTA's current file says 3 for orange.fr and
    // its automation drops to 1 on "Trop de connexions"; 2 is the cautious middle).
    // Orange refuses bursts readily, so the rate is kept at 5/s.
    name: 'orange',
    domains: ['orange.fr', 'wanadoo.fr'],
    limit: { rate: { perSecond: 5 }, connections: 2 },
  },
];

/** The default table as a ThrottleConfig; the CLI layers --rate and --domain-rate on top. */
export function defaultThrottleConfig(
  overrides: ReadonlyMap<string, DomainLimit> = new Map(),
  globalRate: ThrottleConfig['globalRate'] = undefined,
): ThrottleConfig {
  return { globalRate, defaultLimit: defaultDomainLimit, overrides, groups: defaultProviderGroups };
}
