/**
 * Sender values are parsed once per distinct value: a campaign's From and
 * Reply-To repeat for every recipient, and three places parse them.
 */
import { describe, expect, it } from 'vitest';
import { parseMailboxes, parseSingleMailbox } from '../../src/campaign/template/mailbox.js';

describe('parseMailboxes', () => {
  it('answers a value it has seen with the same result, without parsing again', () => {
    const a = parseMailboxes('Acme News <news@acme.test>');
    expect(a).toEqual({ ok: true, mailboxes: [{ name: 'Acme News', address: 'news@acme.test' }] });
    expect(parseMailboxes('Acme News <news@acme.test>')).toBe(a);
    // Another value, alternating with the first (From, Reply-To, From…), is its own entry.
    const b = parseMailboxes('Support <support@acme.test>, ops@acme.test');
    expect(b).not.toBe(a);
    expect(b.ok && b.mailboxes.map((m) => m.address)).toEqual(['support@acme.test', 'ops@acme.test']);
    expect(parseMailboxes('Acme News <news@acme.test>')).toBe(a);
  });

  it('keeps refusing what it refused, and stays right past its size', () => {
    expect(parseSingleMailbox('a@x.test, b@y.test')).toEqual({ ok: false, problem: 'holds 2 addresses; exactly one is required' });
    for (let i = 0; i < 40; i++) expect(parseSingleMailbox(`u${i} <u${i}@acme.test>`)).toMatchObject({ ok: true, mailbox: { address: `u${i}@acme.test` } });
    expect(parseSingleMailbox('a@x.test, b@y.test').ok).toBe(false);
    const group = parseMailboxes('Team: a@x.test, b@y.test;');
    expect(!group.ok && group.problem).toMatch(/group/);
  });
});
