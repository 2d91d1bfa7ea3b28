import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ALERT_RULES } from '../alerts/config.js';
import type { EngineEvent } from '../engine/events.js';
import { messageStates, type StateCounts } from '../store/types.js';

/**
 * Prometheus metrics of one send, fed by engine events, in a Registry of its
 * own (never prom-client's global one, so tests and a future in-process
 * dashboard can hold several side by side). Names and labels: README,
 * "Metrics".
 */

/**
 * Recipient domains that get their own `domain` label; every other domain is
 * counted as "other". A 1M-recipient list can span 100,000 domains, and each
 * label value multiplies the series of mailq_messages_total by its
 * outcome/category pairs (~10 seen in practice): 20 domains keep it near 200
 * series, which any Prometheus scrapes cheaply, while covering the providers
 * that carry most of a list (gmail, outlook, yahoo, … typically 60-80 %).
 */
export const MAX_DOMAIN_LABELS = 20;
export const OTHER_DOMAIN = 'other';

/**
 * Chooses the labelled domains once, by volume at the start of the run (the
 * campaign's due messages per domain), so a domain's counter never changes
 * label mid-run. Free slots (a campaign with fewer domains) go to domains
 * first seen later, e.g. rows imported while sending. "other" cannot clash
 * with a domain: recipient domains always contain a dot.
 */
export class DomainLabels {
  private readonly labelled = new Set<string>();

  constructor(
    byVolume: readonly string[],
    private readonly max = MAX_DOMAIN_LABELS,
  ) {
    for (const d of byVolume.slice(0, max)) this.labelled.add(d);
  }

  label(domain: string): string {
    if (this.labelled.has(domain)) return domain;
    if (this.labelled.size < this.max) {
      this.labelled.add(domain);
      return domain;
    }
    return OTHER_DOMAIN;
  }
}

/**
 * Latency buckets, in seconds, from a fast relay on loopback (a few ms) to
 * the 2-minute socket timeout per SMTP stage; providers usually answer in
 * 0.2-2 s, where the buckets are densest.
 */
const LATENCY_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120];

export class SendMetrics {
  readonly registry = new Registry();
  private readonly queue: Gauge<'state'>;
  private readonly messages: Counter<'outcome' | 'category' | 'domain'>;
  private readonly latency: Histogram;
  private readonly inFlight: Gauge;
  private readonly openConnections: Gauge;
  private readonly stalled: Gauge;
  private readonly paused: Gauge;
  private readonly alerts: Gauge<'rule'>;
  private readonly domains: DomainLabels;

  constructor(options: { campaign: string; domainsByVolume: readonly string[]; maxDomainLabels?: number }) {
    const registers = [this.registry];
    this.domains = new DomainLabels(options.domainsByVolume, options.maxDomainLabels);
    new Gauge({ name: 'mailq_run_info', help: 'Always 1; labels name the campaign being sent', labelNames: ['campaign'], registers }).set({ campaign: options.campaign }, 1);
    this.queue = new Gauge({ name: 'mailq_queue_messages', help: 'Messages of the campaign by state (from progress events)', labelNames: ['state'], registers });
    this.messages = new Counter({
      name: 'mailq_messages_total',
      help: 'Attempt outcomes of this run: outcome sent|deferred|failed, category from the reply classification, domain capped to the top domains by volume (others as "other")',
      labelNames: ['outcome', 'category', 'domain'],
      registers,
    });
    this.latency = new Histogram({ name: 'mailq_send_latency_seconds', help: 'From the lease to the final 250 reply, for sent messages', buckets: LATENCY_BUCKETS, registers });
    this.inFlight = new Gauge({ name: 'mailq_in_flight', help: 'SMTP transactions in flight', registers });
    this.openConnections = new Gauge({ name: 'mailq_open_connections', help: 'Open connections to the relay', registers });
    this.stalled = new Gauge({ name: 'mailq_stalled_transactions', help: 'In-flight transactions older than 30 s', registers });
    this.paused = new Gauge({ name: 'mailq_leasing_paused', help: '1 while the operator has paused leasing', registers });
    this.alerts = new Gauge({ name: 'mailq_alerts_firing', help: '1 while the alert rule is firing', labelNames: ['rule'], registers });
    // Every rule has a series from the start, so "absent" never has to mean "not firing".
    for (const rule of ALERT_RULES) this.alerts.set({ rule }, 0);
  }

  readonly onEvent = (e: EngineEvent): void => {
    switch (e.type) {
      case 'run-started':
      case 'run-finished':
        this.setCounts(e.counts);
        if (e.type === 'run-finished') {
          this.inFlight.set(0);
          this.stalled.set(0);
        }
        break;
      case 'progress':
        this.setCounts(e.counts);
        this.inFlight.set(e.inFlight);
        this.openConnections.set(e.openConnections);
        this.stalled.set(e.stalled);
        this.paused.set(e.paused ? 1 : 0);
        break;
      case 'leasing-paused':
      case 'leasing-resumed':
        this.paused.set(e.type === 'leasing-paused' ? 1 : 0);
        break;
      case 'message-sent':
        this.messages.inc({ outcome: 'sent', category: 'sent', domain: this.domains.label(e.domain) });
        this.latency.observe(e.latencyMs / 1000);
        break;
      case 'message-deferred':
        this.messages.inc({ outcome: 'deferred', category: e.category, domain: this.domains.label(e.domain) });
        break;
      case 'message-failed':
        this.messages.inc({ outcome: 'failed', category: e.category, domain: this.domains.label(e.domain) });
        break;
      case 'alert':
        this.alerts.set({ rule: e.alert.rule }, e.alert.state === 'firing' ? 1 : 0);
        break;
      default:
        break;
    }
  };

  private setCounts(counts: StateCounts): void {
    for (const state of messageStates) this.queue.set({ state }, counts[state]);
  }
}
