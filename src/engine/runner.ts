import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Campaign, LeasedMessage, Store } from '../store/types.js';
import type { Transport, TransportResult } from '../transport/types.js';
import { classify, type Classification } from './classify.js';
import type { ComposedForSend } from './compose.js';
import { Coordinator, SYNC_MS } from './coordinator.js';
import { STALLED_MS, type EngineEvent, type RunOutcome, type StopReason } from './events.js';
import { HEARTBEAT_MS, processAlive, type HostHealth } from './hosts.js';
import { sharedLimitFor, type SharedThrottle } from './shared-throttle.js';
import type { StateRow, Throttle } from './throttle.js';
import { decide, type Decision, type TransitionPolicy } from './transition.js';

/**
 * The send loop: leases only messages whose domain has capacity now (no
 * worker ever waits holding a lease), sends each with one RCPT, classifies the
 * outcome, and commits it at once, one message at a time.
 */

export interface RunnerDeps {
  readonly store: Store;
  readonly transport: Transport;
  readonly throttle: Throttle;
  readonly now: () => number;
  readonly random: () => number;
  readonly compose: (message: LeasedMessage) => Promise<ComposedForSend>;
  readonly emit: (event: EngineEvent) => void;
  /**
   * Limits shared with the other processes sending this campaign (tokens
   * granted by the store). Without it the limits are this process's alone
   * (tests of the engine on its own).
   */
  readonly shared?: SharedThrottle;
}

export interface RunnerConfig {
  readonly campaign: Campaign;
  readonly owner: string;
  /** SMTP transactions in flight. */
  readonly concurrency: number;
  /**
   * Messages leased and composed ahead of a free connection (the transport
   * caps its connections): a connection that finishes a message starts the
   * next at once instead of idling through the outcome's commit, the next
   * lease's commit and its composing (bench/README.md).
   */
  readonly ahead: number;
  /** Longer than the longest SMTP attempt, so a live attempt never loses its row. */
  readonly leaseMs: number;
  /** Stop after this many messages were attempted (rehearsals, canaries). */
  readonly limit: number | undefined;
  readonly policy: TransitionPolicy;
  readonly campaignStartedAt: number;
  /** Consecutive message-rejected or sender-blocked outcomes that pause the run. */
  readonly breakerThreshold: number;
  readonly progressEveryMs: number;
}

/** Ids fetched per domain at a time: enough to keep a fast domain busy between queries. */
const IDS_PER_FETCH = 100;
/**
 * With other runs on the campaign: a smaller page goes stale less before it
 * is used up (3 PostgreSQL runs, 50 domains: 100 ids in random order lost
 * 0.27 leases per message, in id order ~1.8).
 */
const IDS_PER_FETCH_SHARED = 25;
/** How often drained domains are looked at again (deferred rows coming due). */
const RECHECK_MS = 1000;
/** Full rescan of domains with due work (new imports, first deferred of a new domain). */
const RESCAN_MS = 30_000;
/** Longest idle sleep, so stop requests and new work are noticed quickly. */
const MAX_IDLE_MS = 1000;

interface DomainQueue {
  ids: number[];
  drained: boolean;
}

export class Runner {
  private readonly deps: RunnerDeps;
  private readonly config: RunnerConfig;
  private readonly domains = new Map<string, DomainQueue>();
  private order: string[] = [];
  private cursor = 0;
  private inFlight = 0;
  private attempted = 0;
  private stop: { reason: StopReason; message: string } | undefined;
  private aborted = false;
  private consecutive = { cause: '', count: 0 };
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private paused = false;
  /** Start time of each transaction in flight, by message id, to count stalled ones. */
  private readonly started = new Map<number, number>();
  /** Throttle keys announced as slowed or paused, with a domain of theirs, until they open again. */
  private readonly throttled = new Map<string, string>();
  /** Pauses, heartbeats and dead runs shared with the other runs of the campaign. */
  private readonly coordinator: Coordinator;
  /** Leases lost to another run between dueIds and lease: other runs are sending this campaign. */
  private leaseMisses = 0;
  /** Messages on the wire (at most `concurrency`), and the composed ones waiting for a turn, oldest first. */
  private onWire = 0;
  private readonly wireQueue: (() => void)[] = [];

  constructor(deps: RunnerDeps, config: RunnerConfig) {
    this.deps = deps;
    this.config = config;
    this.coordinator = new Coordinator(
      { store: deps.store, throttle: deps.throttle, now: deps.now, host: hostname(), pid: process.pid, alive: processAlive },
      { campaignId: config.campaign.id, owner: config.owner, leaseMs: config.leaseMs },
    );
  }

  /** First Ctrl-C: stop leasing, let in-flight messages finish. */
  requestStop(reason: StopReason, message: string): void {
    if (this.stop === undefined) {
      this.stop = { reason, message };
      this.deps.emit({ type: 'stopping', at: this.deps.now(), reason, graceful: true });
    }
    this.notify();
  }

  /** The operator's `p`: stop or restart leasing; messages in flight finish either way. */
  setPaused(paused: boolean): void {
    if (paused === this.paused) return;
    this.paused = paused;
    this.deps.emit(paused ? { type: 'leasing-paused', at: this.deps.now() } : { type: 'leasing-resumed', at: this.deps.now() });
    this.notify();
  }

  isPaused(): boolean {
    return this.paused;
  }

  /** Second Ctrl-C: cut in-flight transactions; their rows go back without burning attempts. */
  abort(): void {
    this.requestStop('signal', 'aborted');
    this.aborted = true;
    this.deps.emit({ type: 'stopping', at: this.deps.now(), reason: 'signal', graceful: false });
    this.deps.transport.abortAll();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, Math.max(0, ms));
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  async run(): Promise<RunOutcome> {
    const { store, emit, now } = this.deps;
    const { campaign, owner } = this.config;
    const reclaimed = await this.coordinator.reclaimDeadRuns();
    await this.coordinator.restore();
    emit({ type: 'run-started', at: now(), campaign: campaign.name, owner, transport: this.deps.transport.description, counts: await store.countByState(campaign.id), reclaimed });
    // Heartbeat with figures, and a look for runs that died meanwhile (their messages are taken over).
    const heartbeat = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    heartbeat.unref();
    // Pauses and slow-downs other runs recorded apply here within SYNC_MS.
    const sync = setInterval(() => void this.syncDomainState(), SYNC_MS);
    sync.unref();
    this.timer = setInterval(() => void this.progress(), this.config.progressEveryMs);
    this.timer.unref();
    let fatal: string | undefined;
    try {
      await this.loop();
    } catch (err) {
      fatal = err instanceof Error ? err.message : String(err);
      this.requestStop('fatal', fatal);
    } finally {
      while (this.inFlight > 0) await this.sleep(MAX_IDLE_MS);
      clearInterval(heartbeat);
      clearInterval(sync);
      clearInterval(this.timer);
      // Tokens granted and not used go back at once, for the runs still sending.
      await this.deps.shared?.close();
      await this.coordinator.saveAll();
      await this.coordinator.heartbeat().catch(() => undefined);
    }
    const outcome: RunOutcome =
      this.stop === undefined
        ? { kind: 'finished' }
        : this.stop.reason === 'fatal'
          ? { kind: 'fatal', message: this.stop.message }
          : { kind: 'stopped', reason: this.stop.reason, message: this.stop.message };
    await store.finishRun(owner, outcome.kind === 'stopped' ? `stopped:${outcome.reason}` : outcome.kind);
    emit({ type: 'run-finished', at: now(), outcome, counts: await store.countByState(campaign.id), possibleDuplicates: await store.countPossibleDuplicates(campaign.id) });
    return outcome;
  }

  private async progress(): Promise<void> {
    const { store, emit, now, transport } = this.deps;
    try {
      const counts = await store.countByState(this.config.campaign.id);
      const t = now();
      let stalled = 0;
      for (const since of this.started.values()) if (t - since >= STALLED_MS) stalled++;
      const nextRetryAt = counts.deferred > 0 ? await store.nextDueAt(this.config.campaign.id) : undefined;
      const hosts: readonly HostHealth[] | undefined = await this.coordinator.hosts().catch(() => undefined);
      for (const [key, domain] of this.throttled) {
        if (this.deps.throttle.status(domain).kind === 'open') {
          this.throttled.delete(key);
          emit({ type: 'domain-resumed', at: t, key });
        }
      }
      emit({ type: 'progress', at: t, counts, inFlight: this.inFlight, openConnections: transport.openConnections(), stalled, nextRetryAt, paused: this.paused, ...(hosts === undefined ? {} : { hosts }) });
    } catch {
      // A progress line is never worth failing a send over.
    }
  }

  /** Heartbeat with this run's figures; then frees the messages of runs that died (any host), to be taken over. */
  private async heartbeat(): Promise<void> {
    try {
      await this.coordinator.heartbeat();
      if (this.stop === undefined && (await this.coordinator.reclaimDeadRuns()) > 0) {
        for (const q of this.domains.values()) q.drained = false;
        this.notify();
      }
    } catch {
      // A missed heartbeat is retried at the next one; never worth failing a send over.
    }
  }

  /** Takes in the pauses and slow-downs other runs persisted, when stricter than ours. */
  private async syncDomainState(): Promise<void> {
    try {
      for (const row of await this.coordinator.sync()) this.announceImported(row);
    } catch {
      // The next poll tries again.
    }
  }

  private announceImported(row: StateRow): void {
    const { emit, now, throttle } = this.deps;
    if (row.status.kind === 'open') return;
    // A domain of ours behind the key, so that its reopening is noticed (domain-resumed).
    const domain = [...this.domains.keys()].find((d) => throttle.keyFor(d) === row.key) ?? row.key;
    this.throttled.set(row.key, domain);
    const paused = row.status.kind === 'paused';
    const reason = row.status.kind === 'paused' ? row.status.reason : 'slowed down by another run';
    emit({ type: 'domain-throttled', at: now(), key: row.key, until: row.status.until, paused, reason: `(from another run) ${reason}` });
  }

  private async rescan(): Promise<void> {
    const due = await this.deps.store.dueDomains(this.config.campaign.id, this.deps.now());
    for (const d of due) {
      const q = this.domains.get(d.domain);
      if (q === undefined) this.domains.set(d.domain, { ids: [], drained: false });
      else q.drained = false;
    }
    this.order = [...this.domains.keys()];
  }

  private limitReached(): boolean {
    return this.config.limit !== undefined && this.attempted >= this.config.limit;
  }

  private async loop(): Promise<void> {
    const { now, throttle, store } = this.deps;
    let lastRescan = -Infinity;
    let lastRecheck = now();
    for (;;) {
      if (this.stop !== undefined) return;
      if (this.paused) {
        await this.sleep(MAX_IDLE_MS);
        continue;
      }
      if (this.limitReached()) {
        if (this.inFlight === 0) return this.requestStop('limit', `stopped after --limit ${this.config.limit ?? 0} messages`);
        await this.sleep(MAX_IDLE_MS);
        continue;
      }
      const t = now();
      if (t - lastRescan >= RESCAN_MS) {
        await this.rescan();
        lastRescan = t;
      } else if (t - lastRecheck >= RECHECK_MS) {
        for (const q of this.domains.values()) q.drained = false;
        lastRecheck = t;
      }
      // Every free slot is picked first and leased together: the leases then
      // share one commit (store group commit) instead of one each in turn.
      const picks: { domain: string; id: number }[] = [];
      const room = (): boolean =>
        this.inFlight + picks.length < this.config.concurrency + this.config.ahead &&
        (this.config.limit === undefined || this.attempted + picks.length < this.config.limit);
      while (room() && this.stop === undefined && !this.paused) {
        const picked = await this.pick();
        if (picked === undefined) break;
        picks.push(picked);
      }
      const leases = await Promise.all(picks.map((p) => store.lease(p.id, this.config.owner, randomUUID(), now(), this.config.leaseMs)));
      let started = 0;
      picks.forEach((picked, i) => {
        const leased = leases[i];
        if (leased === undefined) {
          throttle.release(picked.domain);
          // Another run leased it first: nothing went out, so the shared token is not spent.
          this.deps.shared?.refund(throttle.keyFor(picked.domain));
          this.leaseMisses++;
          // The ids fetched with it are likely taken too: fetch fresh ones rather than try each.
          const q = this.domains.get(picked.domain);
          if (q !== undefined) q.ids = [];
          return;
        }
        started++;
        this.launch(leased);
      });
      if (picks.length > 0 && started === 0) continue;
      if (started > 0 || this.inFlight >= this.config.concurrency + this.config.ahead) {
        await this.sleep(MAX_IDLE_MS);
        continue;
      }
      const anyCandidates = [...this.domains.values()].some((q) => !q.drained || q.ids.length > 0);
      if (!anyCandidates && this.inFlight === 0) {
        const next = await store.nextDueAt(this.config.campaign.id);
        if (next === undefined) return; // nothing queued, deferred or sending: done
        await this.rescan();
        lastRescan = now();
        const stillNone = [...this.domains.values()].every((q) => q.drained && q.ids.length === 0);
        if (stillNone || next > now()) await this.sleep(Math.min(MAX_IDLE_MS, Math.max(5, next - now())));
        continue;
      }
      // Work exists but every domain is at its limit: sleep until the soonest opens.
      let soonest = now() + MAX_IDLE_MS;
      const shared = this.deps.shared;
      for (const [domain, q] of this.domains) {
        if (q.ids.length > 0 || !q.drained) {
          const sharedAt = shared === undefined ? 0 : shared.readyAt(throttle.keyFor(domain));
          soonest = Math.min(soonest, Math.max(throttle.nextOpportunity(domain), sharedAt));
        }
      }
      await this.sleep(Math.max(5, soonest - now()));
    }
  }

  /** Round-robin over domains with due work and capacity now; refills a domain's ids when empty. */
  private async pick(): Promise<{ domain: string; id: number } | undefined> {
    const { throttle, store, now } = this.deps;
    for (let tries = 0; tries < this.order.length; tries++) {
      const domain = this.order[this.cursor % this.order.length] as string;
      this.cursor = (this.cursor + 1) % Math.max(1, this.order.length);
      const q = this.domains.get(domain);
      if (q === undefined) continue;
      if (q.ids.length === 0) {
        if (q.drained) continue;
        if (throttle.nextOpportunity(domain) > now()) continue;
        // Other runs fetch the same oldest ids. Runs starting together do not
        // see each other in the runs table at once: a lost lease says so first.
        const contended = this.coordinator.otherRuns() > 0 || this.leaseMisses > 0;
        q.ids = await store.dueIds(this.config.campaign.id, domain, now(), contended ? IDS_PER_FETCH_SHARED : IDS_PER_FETCH);
        if (q.ids.length === 0) {
          q.drained = true;
          continue;
        }
        // Taken in a random order, the same ids are rarely tried by two runs at
        // once; alone, a run keeps the oldest-first order.
        if (contended) shuffle(q.ids, this.deps.random);
      }
      const shared = this.deps.shared;
      if (shared !== undefined) {
        // Ask for shared tokens only when this process could start the message now.
        if (throttle.nextOpportunity(domain) > now()) continue;
        if (!(await shared.ready(throttle.keyFor(domain), sharedLimitFor(throttle, domain), q.ids.length))) continue;
      }
      if (!throttle.tryAcquire(domain)) continue;
      if (shared !== undefined && !shared.tryConsume(throttle.keyFor(domain))) {
        // The token expired, or another key's await let it go: ask again on a later pass.
        throttle.release(domain);
        continue;
      }
      const id = q.ids.shift() as number;
      return { domain, id };
    }
    return undefined;
  }

  private launch(message: LeasedMessage): void {
    this.inFlight++;
    this.attempted++;
    this.started.set(message.id, this.deps.now());
    void this.attempt(message)
      .catch((err: unknown) => this.requestStop('fatal', `internal error: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        this.deps.throttle.release(message.domain);
        this.started.delete(message.id);
        this.inFlight--;
        this.notify();
      });
  }

  private async attempt(m: LeasedMessage): Promise<void> {
    const { now, compose, transport, emit } = this.deps;
    const startedAt = now();
    if (m.reclaimed && !this.config.policy.resendAmbiguous) {
      // A run died while this message was on the wire: with --no-resend-ambiguous we do not guess.
      const c: Classification = { category: 'ambiguous', enhanced: undefined, retryAfterSeconds: undefined, rule: 'reclaimed-lease', explanation: 'the run sending this message died mid-transaction' };
      await this.commit(m, startedAt, c, { ok: false, stage: 'body', code: undefined, reply: undefined, errorCode: 'ELOST', bodyWritten: true, message: 'run died mid-send' }, '');
      return;
    }
    const composed = await compose(m);
    if (!composed.ok) {
      const ok = await this.deps.store.recordOutcome({
        messageId: m.id, attemptId: m.attemptId, runOwner: this.config.owner, startedAt, finishedAt: now(),
        stage: undefined, code: undefined, enhanced: undefined, category: 'message-rejected', rule: `render-${composed.reason}`,
        reply: composed.message, bodyWritten: false, flagPossibleDuplicate: false,
        next: { state: 'failed', reason: `render: ${composed.reason}`, suppress: false, countsAttempt: true },
      });
      if (ok) emit({ type: 'message-failed', at: now(), line: m.line, domain: m.domain, category: 'render', reason: composed.reason, code: undefined, reply: composed.message });
      return;
    }
    await this.takeWire();
    if (this.stop !== undefined || this.paused || this.deps.throttle.status(m.domain).kind === 'paused') {
      // Leased ahead and never sent: hand it back untouched (a stop, the operator's pause, or its domain paused meanwhile).
      this.freeWire();
      // Not an attempt: --limit still counts only messages that went out.
      this.attempted--;
      if (!(await this.deps.store.unlease(m.id, m.attemptId, now()))) emit({ type: 'lease-lost', at: now(), line: m.line });
      return;
    }
    let result: TransportResult;
    try {
      result = await transport.send({ from: composed.envelopeFrom, to: m.address, raw: composed.raw, messageId: composed.messageId });
    } catch (err) {
      this.freeWire();
      throw err;
    }
    const c = result.ok
      ? classify({ stage: 'body', code: result.code, reply: result.reply, bodyWritten: true })
      : classify({
          stage: result.stage,
          ...(result.code === undefined ? {} : { code: result.code }),
          ...(result.reply === undefined ? {} : { reply: result.reply }),
          ...(result.errorCode === undefined ? {} : { errorCode: result.errorCode }),
          bodyWritten: result.bodyWritten,
        });
    // The next message goes on the wire while this outcome commits, once
    // this reply has had its say (a breaker, a fatal reply or a throttle
    // stops or holds back the messages waiting).
    await this.commit(m, startedAt, c, result, composed.messageId, () => this.freeWire());
  }

  private takeWire(): Promise<void> {
    if (this.onWire < this.config.concurrency) {
      this.onWire++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.wireQueue.push(resolve));
  }

  /** Passes the turn straight to the oldest waiter, so the count never dips and lets a newer message jump the queue. */
  private freeWire(): void {
    const next = this.wireQueue.shift();
    if (next !== undefined) next();
    else this.onWire--;
  }

  private async commit(
    m: LeasedMessage,
    startedAt: number,
    c: Classification,
    result: TransportResult,
    smtpMessageId: string,
    decided: () => void = () => undefined,
  ): Promise<void> {
    const { now, store, emit, throttle, random } = this.deps;
    const finishedAt = now();
    let decision: Decision = decide(
      { classification: c, attemptsBefore: m.attempts, campaignStartedAt: this.config.campaignStartedAt, now: finishedAt, smtpMessageId },
      this.config.policy,
      random,
    );
    if (this.aborted && !result.ok) {
      // Cut by our own abort: hand the row back untouched (flagged if the body had gone out).
      decision = { next: { state: 'released', nextAttemptAt: finishedAt }, flagPossibleDuplicate: result.bodyWritten, action: { kind: 'none' } };
    }
    const flag = decision.flagPossibleDuplicate || (m.possibleDuplicate && decision.next.state === 'sent');
    const written = store.recordOutcome({
      messageId: m.id,
      attemptId: m.attemptId,
      runOwner: this.config.owner,
      startedAt,
      finishedAt,
      stage: result.ok ? 'body' : result.stage,
      code: result.code,
      enhanced: c.enhanced,
      category: c.category,
      rule: c.rule,
      reply: result.ok ? result.reply : (result.reply ?? `${result.errorCode ?? 'error'}: ${result.message}`),
      bodyWritten: result.ok || result.bodyWritten,
      flagPossibleDuplicate: flag,
      next: decision.next,
    });
    const next = decision.next;
    // What the reply tells about its domain and the run holds whether or not
    // this attempt still owns the row: it is acted on before the commit.
    if (next.state === 'sent') {
      throttle.onSuccess(m.domain);
      this.consecutive = { cause: '', count: 0 };
    }
    this.act(m.domain, decision, c, result);
    decided();
    if (!(await written)) {
      emit({ type: 'lease-lost', at: finishedAt, line: m.line });
      return;
    }
    const reply = result.reply;
    const code = result.code;
    if (next.state === 'sent') {
      this.coordinator.noteSent(finishedAt);
      emit({ type: 'message-sent', at: finishedAt, line: m.line, domain: m.domain, latencyMs: finishedAt - startedAt, possibleDuplicate: flag || m.possibleDuplicate });
    } else if (next.state === 'deferred') {
      emit({ type: 'message-deferred', at: finishedAt, line: m.line, domain: m.domain, category: c.category, code, reply, retryAt: next.nextAttemptAt });
    } else if (next.state === 'failed') {
      emit({ type: 'message-failed', at: finishedAt, line: m.line, domain: m.domain, category: c.category, reason: next.reason, code, reply });
    }
  }

  private act(domain: string, decision: Decision, c: Classification, result: TransportResult): void {
    const { throttle, now, emit } = this.deps;
    const a = decision.action;
    const reply = result.ok ? result.reply : (result.reply ?? result.message);
    if (a.kind === 'throttle-domain') {
      const status = throttle.onThrottle(domain, { ...(a.retryAfterMs === undefined ? {} : { retryAfterMs: a.retryAfterMs }), severe: a.severe, reason: reply });
      const until = status.kind === 'open' ? now() : status.until;
      if (status.kind !== 'open') this.throttled.set(throttle.keyFor(domain), domain);
      emit({ type: 'domain-throttled', at: now(), key: throttle.keyFor(domain), until, paused: status.kind === 'paused', reason: reply });
      // Only this key's row: rewriting every key would overwrite what other runs recorded since our last poll.
      void this.coordinator.saveKey(throttle.keyFor(domain)).catch(() => undefined);
    } else if (a.kind === 'backoff-domain') {
      throttle.pause(domain, a.untilMs, reply);
      this.throttled.set(throttle.keyFor(domain), domain);
      emit({ type: 'domain-throttled', at: now(), key: throttle.keyFor(domain), until: a.untilMs, paused: true, reason: reply });
    } else if (a.kind === 'breaker') {
      this.consecutive = this.consecutive.cause === a.cause ? { cause: a.cause, count: this.consecutive.count + 1 } : { cause: a.cause, count: 1 };
      if (this.consecutive.count >= this.config.breakerThreshold) {
        emit({ type: 'breaker-tripped', at: now(), cause: a.cause, count: this.consecutive.count });
        this.requestStop('breaker', `${this.consecutive.count} ${a.cause} replies in a row (last: ${reply}); fix the cause, then resume`);
      }
    } else if (a.kind === 'stop') {
      if (a.exit === 'quota') this.requestStop('quota', `sending quota reached: ${reply}; resume when it resets`);
      else this.requestStop('fatal', `${c.explanation}: ${reply}`);
    }
  }
}

/** Fisher-Yates, in place. */
function shuffle(ids: number[], random: () => number): void {
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const a = ids[i] as number;
    ids[i] = ids[j] as number;
    ids[j] = a;
  }
}
