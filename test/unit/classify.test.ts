import fs from 'node:fs';
import { describe, it, expect } from 'vitest';
import {
  CLASSIFY_RULES,
  CLASSIFY_RULES_VERSION,
  classify,
  parseEnhancedCode,
  parseRetryAfter,
  type Category,
  type SmtpOutcomeInput,
  type SmtpStage,
} from '../../src/engine/classify.js';

/** One real-world reply and what mailq must make of it (test/unit/fixtures/replies.json). */
interface GoldenReply {
  source: string;
  stage: SmtpStage;
  code: number;
  reply: string;
  ref: string;
  expect: { category: Category; enhanced: string | null; rule: string; retryAfterSeconds?: number };
}

const golden = JSON.parse(
  fs.readFileSync(new URL('./fixtures/replies.json', import.meta.url), 'utf8'),
) as GoldenReply[];

/** Outcomes without a reply: socket errors, local transport refusals. */
const NETWORK_CASES: readonly { name: string; input: SmtpOutcomeInput; category: Category; rule: string }[] = [
  {
    name: 'ECONNREFUSED at connect',
    input: { stage: 'connect', errorCode: 'ECONNREFUSED', bodyWritten: false },
    category: 'connection',
    rule: 'no-reply-before-body',
  },
  {
    name: 'ECONNRESET after the final dot',
    input: { stage: 'body', errorCode: 'ECONNRESET', bodyWritten: true },
    category: 'ambiguous',
    rule: 'no-reply-after-body',
  },
  {
    name: 'ETIMEDOUT waiting for the reply to the final dot',
    input: { stage: 'body', errorCode: 'ETIMEDOUT', bodyWritten: true },
    category: 'ambiguous',
    rule: 'no-reply-after-body',
  },
  {
    name: 'ETIMEDOUT while streaming the body (no final dot yet)',
    input: { stage: 'body', errorCode: 'ETIMEDOUT', bodyWritten: false },
    category: 'connection',
    rule: 'no-reply-before-body',
  },
  {
    name: 'EPIPE at RCPT even if the flag is (wrongly) set',
    input: { stage: 'rcpt', errorCode: 'EPIPE', bodyWritten: true },
    category: 'connection',
    rule: 'no-reply-before-body',
  },
  {
    name: 'ENOTFOUND resolving the server',
    input: { stage: 'connect', errorCode: 'ENOTFOUND', bodyWritten: false },
    category: 'connection',
    rule: 'no-reply-before-body',
  },
  {
    name: 'ETLS during STARTTLS',
    input: { stage: 'starttls', errorCode: 'ETLS', bodyWritten: false },
    category: 'fatal',
    rule: 'tls-failure',
  },
  {
    name: 'expired server certificate',
    input: { stage: 'starttls', errorCode: 'CERT_HAS_EXPIRED', bodyWritten: false },
    category: 'fatal',
    rule: 'tls-failure',
  },
  {
    name: 'self-signed certificate',
    input: { stage: 'connect', errorCode: 'DEPTH_ZERO_SELF_SIGNED_CERT', bodyWritten: false },
    category: 'fatal',
    rule: 'tls-failure',
  },
  {
    name: 'ETLS after the final dot is still a lost reply',
    input: { stage: 'body', errorCode: 'ETLS', bodyWritten: true },
    category: 'ambiguous',
    rule: 'no-reply-after-body',
  },
  {
    name: 'EAUTH without a reply (missing credentials)',
    input: { stage: 'auth', errorCode: 'EAUTH', bodyWritten: false },
    category: 'fatal',
    rule: 'auth-error',
  },
  {
    name: 'EMESSAGE: larger than the advertised SIZE',
    input: { stage: 'mail', errorCode: 'EMESSAGE', bodyWritten: false },
    category: 'message-rejected',
    rule: 'client-message-too-big',
  },
  {
    name: 'EENVELOPE: refused locally',
    input: { stage: 'rcpt', errorCode: 'EENVELOPE', bodyWritten: false },
    category: 'message-rejected',
    rule: 'client-envelope-rejected',
  },
  {
    name: 'no error code and no reply at all, after the body',
    input: { stage: 'data', bodyWritten: true },
    category: 'ambiguous',
    rule: 'no-reply-after-body',
  },
];

describe('classify: golden real-world replies', () => {
  it('has at least 60 cases from at least 10 sources', () => {
    expect(golden.length).toBeGreaterThanOrEqual(60);
    expect(new Set(golden.map((g) => g.source)).size).toBeGreaterThanOrEqual(10);
  });

  it.each(golden.map((g) => [`${g.source} ${g.stage} ${g.reply.slice(0, 70)}`, g] as const))('%s', (_name, g) => {
    const result = classify({ stage: g.stage, code: g.code, reply: g.reply, bodyWritten: g.stage === 'body' });
    expect({ category: result.category, enhanced: result.enhanced ?? null, rule: result.rule }).toEqual({
      category: g.expect.category,
      enhanced: g.expect.enhanced,
      rule: g.expect.rule,
    });
    if (g.expect.retryAfterSeconds !== undefined) expect(result.retryAfterSeconds).toBe(g.expect.retryAfterSeconds);
    expect(result.explanation).not.toMatch(/\n/);
    expect(result.explanation.length).toBeGreaterThan(10);
  });

  it('gives the same answer whether or not the code is passed separately', () => {
    for (const g of golden) {
      const withoutCode = classify({ stage: g.stage, reply: g.reply, bodyWritten: false });
      expect(withoutCode.rule, g.reply).toBe(g.expect.rule);
    }
  });
});

describe('classify: no reply', () => {
  it.each(NETWORK_CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const result = classify(c.input);
    expect(result.category).toBe(c.category);
    expect(result.rule).toBe(c.rule);
    expect(result.enhanced).toBeUndefined();
  });

  it('treats a reply code that is not 2xx/4xx/5xx as no reply', () => {
    expect(classify({ stage: 'body', code: 354, reply: '354 End data with <CR><LF>.<CR><LF>', bodyWritten: true }).category).toBe(
      'ambiguous',
    );
    expect(classify({ stage: 'mail', code: 0, bodyWritten: false }).category).toBe('connection');
  });

  it('falls back to the code in the text when the passed code is unusable', () => {
    expect(classify({ stage: 'rcpt', code: 0, reply: '550 5.1.1 User unknown', bodyWritten: false }).rule).toBe('enhanced-5.1.x');
  });
});

describe('classify: the rule table', () => {
  it('has unique ids and a version', () => {
    const ids = CLASSIFY_RULES.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(CLASSIFY_RULES_VERSION).toBeGreaterThanOrEqual(1);
  });

  it('uses no stateful (g or y) regexes', () => {
    for (const r of CLASSIFY_RULES) {
      for (const re of [r.when.text, r.when.enhanced, r.when.error]) {
        if (re) expect(re.global || re.sticky, `${r.id} ${String(re)}`).toBe(false);
      }
    }
  });

  it('has no dead rows: every rule is reached by a golden reply or a network case', () => {
    const hit = new Set<string>([...golden.map((g) => g.expect.rule), ...NETWORK_CASES.map((c) => c.rule)]);
    const dead = CLASSIFY_RULES.map((r) => r.id).filter((id) => !hit.has(id));
    expect(dead).toEqual([]);
  });
});

describe('classify: decisions', () => {
  it('uses the reply class when the enhanced class disagrees (Postfix fallback)', () => {
    const r = classify({ stage: 'rcpt', code: 550, reply: '550 4.2.2 Something odd happened', bodyWritten: false });
    expect(r.enhanced).toBe('5.0.0');
    expect(r.category).toBe('bad-recipient');
    expect(r.rule).toBe('class-5xx-rcpt');
    const t = classify({ stage: 'rcpt', code: 450, reply: '450 5.1.1 Try later', bodyWritten: false });
    expect(t.enhanced).toBe('4.0.0');
    expect(t.category).toBe('retry');
  });

  it('treats mailbox full as transient on 4xx and as a bad recipient on 5xx', () => {
    expect(classify({ stage: 'rcpt', code: 452, reply: '452 4.2.2 Mailbox full', bodyWritten: false }).category).toBe('retry');
    expect(classify({ stage: 'rcpt', code: 552, reply: '552 5.2.2 Mailbox full', bodyWritten: false }).category).toBe(
      'bad-recipient',
    );
  });

  it('reads 5.1.x at MAIL as a sender problem, at RCPT as a recipient problem', () => {
    expect(classify({ stage: 'mail', code: 550, reply: '550 5.1.0 Address rejected', bodyWritten: false }).category).toBe(
      'sender-blocked',
    );
    expect(classify({ stage: 'rcpt', code: 550, reply: '550 5.1.0 Address rejected', bodyWritten: false }).category).toBe(
      'bad-recipient',
    );
  });

  it('keeps 5.5.1 (bad sequence) at RCPT off the suppression list', () => {
    const r = classify({ stage: 'rcpt', code: 503, reply: '503 5.5.1 Error: need MAIL command', bodyWritten: false });
    expect(r.category).toBe('message-rejected');
    expect(r.rule).toBe('enhanced-5.5.x');
  });

  it('reads a 421 as push-back at any stage unless the text says otherwise', () => {
    for (const stage of ['greeting', 'mail', 'rcpt', 'body'] as const) {
      expect(classify({ stage, code: 421, reply: '421 4.3.0 Temporary System Problem. Try again later', bodyWritten: false }).rule).toBe(
        'code-421',
      );
    }
  });

  it('reports a reply to the final dot as a reply, not as ambiguous', () => {
    const r = classify({ stage: 'body', code: 451, reply: '451 4.3.0 Temporary failure', bodyWritten: true });
    expect(r.category).toBe('retry');
  });

  it('carries the server-requested wait', () => {
    const r = classify({ stage: 'rcpt', code: 450, reply: '450 4.2.0 Greylisted, please try again in 5 minutes', bodyWritten: false });
    expect(r.category).toBe('retry');
    expect(r.retryAfterSeconds).toBe(300);
    expect(classify({ stage: 'body', code: 250, reply: '250 2.0.0 Ok, retry in 5 minutes', bodyWritten: true }).retryAfterSeconds).toBeUndefined();
  });
});

describe('classify: garbage input never throws', () => {
  const inputs: SmtpOutcomeInput[] = [
    { stage: 'rcpt', code: 550, reply: '', bodyWritten: false },
    { stage: 'rcpt', code: 0, reply: '550 5.1.1 x', bodyWritten: false },
    { stage: 'rcpt', code: 999, reply: '999 9.9.9 what', bodyWritten: false },
    { stage: 'rcpt', code: -1, bodyWritten: false },
    { stage: 'rcpt', code: 550.5, reply: '550 5.1.1 half', bodyWritten: false },
    { stage: 'rcpt', code: Number.NaN, bodyWritten: false },
    { stage: 'rcpt', code: 550, reply: '550 5.1.1 Пользователь не найден / 用户不存在 / ユーザーが存在しません 🙅', bodyWritten: false },
    { stage: 'body', code: 554, reply: '554 ' + 'x'.repeat(200_000), bodyWritten: true },
    { stage: 'body', code: 554, reply: '554-\n554-\n554 ', bodyWritten: true },
    { stage: 'rcpt', reply: '\u0000\u0001\uFFFD', bodyWritten: false },
    { stage: 'nonsense' as SmtpStage, code: 550, reply: '550 5.7.1 no', bodyWritten: false },
    { stage: 'rcpt', code: 550, reply: 42 as unknown as string, errorCode: {} as unknown as string, bodyWritten: false },
  ];

  it.each(inputs.map((input, i) => [i, input] as const))('input %i', (_i, input) => {
    const r = classify(input);
    expect(typeof r.category).toBe('string');
    expect(typeof r.rule).toBe('string');
    expect(r.explanation).not.toBe('');
  });

  it('stays linear on long runs of whitespace', () => {
    const started = performance.now();
    classify({ stage: 'rcpt', code: 550, reply: ' '.repeat(100_000), bodyWritten: false });
    parseEnhancedCode(' '.repeat(100_000), 550);
    parseRetryAfter('wait '.repeat(20_000));
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('classifies non-ASCII text by its codes', () => {
    const r = classify(inputs[6] as SmtpOutcomeInput);
    expect(r.category).toBe('bad-recipient');
    expect(r.enhanced).toBe('5.1.1');
  });

  it('finds the code in the text when only the text is known', () => {
    const r = classify({ stage: 'rcpt', reply: '550 5.1.1 <a@example.com>: Recipient address rejected: User unknown', bodyWritten: false });
    expect(r.rule).toBe('enhanced-5.1.x');
  });
});

describe('parseEnhancedCode', () => {
  it.each([
    ['550 5.1.1 User unknown', 550, '5.1.1'],
    ['550-5.1.1 The email account\n550 5.1.1 does not exist', 550, '5.1.1'],
    ['5.1.1 without the reply code', 550, '5.1.1'],
    ['550 5.1.10 RESOLVER.ADR.RecipientNotFound', 550, '5.1.10'],
    ['451 4.7.650 The mail server', 451, '4.7.650'],
    ['250 2.0.0 OK', 250, '2.0.0'],
    ['550 4.2.2 mismatched class', 550, '5.0.0'],
    ['450 5.7.1 mismatched class', 450, '4.0.0'],
    ['250 5.0.0 mismatched class', 250, '2.0.0'],
    ['550 User unknown', 550, undefined],
    ['550 User 5.1.1 later in the text', 550, undefined],
    ['553 sorry, ... (#5.7.1)', 553, undefined],
    ['550 5.1.1.2 not a code', 550, undefined],
    ['550 5.1234.1 too long', 550, undefined],
    ['550 6.1.1 bad class', 550, undefined],
    ['354 5.0.0 intermediate', 354, undefined],
    ['999 9.9.9 junk', 999, undefined],
    ['', 550, undefined],
  ] as const)('%j (%i) → %s', (reply, code, want) => {
    expect(parseEnhancedCode(reply, code)).toBe(want);
  });
});

describe('parseRetryAfter', () => {
  it.each([
    ['451 4.7.1 Greylisted, try again in 60 seconds', 60],
    ['450 retry in 5 minutes', 300],
    ['421 Please try again later in 1 hour', 3600],
    ['451 wait 30s', 30],
    ['450 4.2.0 Greylisted for 300 seconds', 300],
    ['550 Too many messages. Try again in 92 seconds.', 92],
    ['451 please retry after 10 min', 600],
    ['421 Try again in\n421 2 hours', 7200],
    ['451 try again in 0 seconds', 1],
    ['451 wait 48 hours', 86_400],
    ['451 wait 999999999 seconds', 86_400],
  ] as const)('%j → %i', (reply, seconds) => {
    expect(parseRetryAfter(reply)).toBe(seconds);
  });

  it.each([
    '421 4.7.0 Try again later, closing connection.',
    '450 4.2.0 Sender address rejected: Greylisted for XX sec.',
    '553 5.7.2 [TSS09] Retrying will NOT succeed.',
    '250 2.0.0 OK',
    '',
  ])('%j → undefined', (reply) => {
    expect(parseRetryAfter(reply)).toBeUndefined();
  });
});
