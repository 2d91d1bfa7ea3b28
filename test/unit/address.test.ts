import { describe, it, expect } from 'vitest';
import { addressKeyOf, domainOf as domainOfAddress, normalizeAddress, type AddressRejectReason } from '../../src/campaign/address.js';

/** A domain of exactly `length` characters: 63-character labels, a letters-only last label. */
function domainOf(length: number): string {
  const labels: string[] = [];
  let left = length;
  while (left > 64) {
    labels.push('d'.repeat(63));
    left -= 64; // label plus its dot
  }
  labels.push('t'.repeat(left));
  const domain = labels.join('.');
  if (domain.length !== length) throw new Error(`domainOf(${length}) built ${domain.length}`);
  return domain;
}

/** C0, DEL, C1 and the Unicode line/paragraph separators found in s, as code points. */
function controlCharsIn(s: string): number[] {
  const found: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) found.push(c);
  }
  return found;
}

const L64 = 'a'.repeat(64);
const IDN63 = `xn--tda${'a'.repeat(56)}`;

/** [name, input, expected address, expected key]; local and domain are the address split at its '@'. */
const accepted: [name: string, input: string, address: string, key: string][] = [
  ['plain', 'ann@example.com', 'ann@example.com', 'ann@example.com'],
  ['subdomains', 'ann@mail.example.co.uk', 'ann@mail.example.co.uk', 'ann@mail.example.co.uk'],
  ['dotted local part', 'ann.b.lee@x.com', 'ann.b.lee@x.com', 'ann.b.lee@x.com'],
  ['+tag kept', 'ann+newsletter@x.com', 'ann+newsletter@x.com', 'ann+newsletter@x.com'],
  ['+tag kept with case', 'Ann+Tag@x.com', 'Ann+Tag@x.com', 'ann+tag@x.com'],
  ['domain lowercased', 'ann@Example.COM', 'ann@example.com', 'ann@example.com'],
  ['local case kept in address, lowered in key', 'John.Doe@Example.COM', 'John.Doe@example.com', 'john.doe@example.com'],
  ['all uppercase', 'ANN@X.COM', 'ANN@x.com', 'ann@x.com'],
  ['leading spaces trimmed', '  ann@x.com', 'ann@x.com', 'ann@x.com'],
  ['trailing spaces trimmed', 'ann@x.com  ', 'ann@x.com', 'ann@x.com'],
  ['tabs trimmed', '\tann@x.com\t', 'ann@x.com', 'ann@x.com'],
  ['mixed blanks trimmed', ' \t Ann@X.com \t ', 'Ann@x.com', 'ann@x.com'],
  ['all atext specials', "!#$%&'*+-/=?^_`{|}~@x.com", "!#$%&'*+-/=?^_`{|}~@x.com", "!#$%&'*+-/=?^_`{|}~@x.com"],
  ['digits everywhere', '123@456.com', '123@456.com', '123@456.com'],
  ['hyphen inside label', 'a@my-host.example', 'a@my-host.example', 'a@my-host.example'],
  ['double hyphen inside label', 'a@a--b.com', 'a@a--b.com', 'a@a--b.com'],
  ['punycode TLD', 'a@x.xn--p1ai', 'a@x.xn--p1ai', 'a@x.xn--p1ai'],
  ['TLD with a digit', 'a@x.c0m', 'a@x.c0m', 'a@x.c0m'],
  ['IDN', 'user@bücher.de', 'user@xn--bcher-kva.de', 'user@xn--bcher-kva.de'],
  ['IDN uppercase', 'user@BÜCHER.de', 'user@xn--bcher-kva.de', 'user@xn--bcher-kva.de'],
  ['IDN with local case', 'User@Bücher.DE', 'User@xn--bcher-kva.de', 'user@xn--bcher-kva.de'],
  ['IDN ideographic full stop', 'user@bücher\u3002de', 'user@xn--bcher-kva.de', 'user@xn--bcher-kva.de'],
  ['IDN fullwidth letters', 'user@ｅｘａｍｐｌｅ.com', 'user@example.com', 'user@example.com'],
  // 57 × 'ü' encodes to 'xn--tda' + 56 × 'a': 63 characters, the label limit applies to this form.
  ['IDN label of 63 after conversion', `u@${'ü'.repeat(57)}.de`, `u@${IDN63}.de`, `u@${IDN63}.de`],
  ['local part of 64', `${L64}@x.com`, `${L64}@x.com`, `${L64}@x.com`],
  ['label of 63', `a@${'b'.repeat(63)}.com`, `a@${'b'.repeat(63)}.com`, `a@${'b'.repeat(63)}.com`],
  // The longest domain that fits: 1 + '@' + 252 = 254 (RFC 5321 path limit).
  ['domain of 252, address of 254', `a@${domainOf(252)}`, `a@${domainOf(252)}`, `a@${domainOf(252)}`],
  ['address of 254 with local of 64', `${L64}@${domainOf(189)}`, `${L64}@${domainOf(189)}`, `${L64}@${domainOf(189)}`],
];

const rejected: [name: string, input: string, reason: AddressRejectReason][] = [
  // empty
  ['empty string', '', 'empty'],
  ['only spaces', '   ', 'empty'],
  ['only tabs', '\t\t', 'empty'],
  // control characters, anywhere, even where trimming would otherwise apply
  ['CR at the end', 'ann@x.com\r', 'control-character'],
  ['LF at the end', 'ann@x.com\n', 'control-character'],
  ['CRLF at the end', 'ann@x.com\r\n', 'control-character'],
  ['CR then space at the end', 'ann@x.com\r ', 'control-character'],
  ['LF at the start', '\nann@x.com', 'control-character'],
  ['header injection', 'ann@x.com\r\nBcc: all@x.com', 'control-character'],
  ['LF inside', 'ann\n@x.com', 'control-character'],
  ['NUL inside', 'ann\u0000@x.com', 'control-character'],
  ['NUL at the end', 'ann@x.com\u0000', 'control-character'],
  ['ESC', '\u001b[31mann@x.com', 'control-character'],
  ['vertical tab', '\u000bann@x.com', 'control-character'],
  ['form feed', 'ann@x.com\u000c', 'control-character'],
  ['DEL', 'ann\u007f@x.com', 'control-character'],
  ['C1 NEL', 'ann@x.com\u0085', 'control-character'],
  ['C1 CSI', 'ann\u009b@x.com', 'control-character'],
  ['U+2028 line separator', 'ann@x.com\u2028', 'control-character'],
  ['U+2029 paragraph separator', 'ann\u2029@x.com', 'control-character'],
  ['control wins over a list', 'a@x.com, b@y.com\n', 'control-character'],
  // one address per cell
  ['comma list', 'a@x.com, b@y.com', 'multiple-addresses'],
  ['semicolon list', 'a@x.com;b@y.com', 'multiple-addresses'],
  ['trailing comma', 'a@x.com,', 'multiple-addresses'],
  ['leading semicolon', ';a@x.com', 'multiple-addresses'],
  ['list of display names', 'Ann <a@x.com>, Bob <b@y.com>', 'multiple-addresses'],
  ['space-separated list', 'a@x.com b@y.com', 'multiple-addresses'],
  ['run-together addresses', 'a@x.com@y.com', 'multiple-addresses'],
  // display names and angle brackets
  ['display name', 'Ann <a@x.com>', 'display-name'],
  ['quoted display name', '"Ann Smith" <a@x.com>', 'display-name'],
  ['quoted display name without brackets', '"Ann Smith" a@x.com', 'display-name'],
  ['angle brackets only', '<a@x.com>', 'display-name'],
  ['stray closing bracket', 'a@x.com>', 'display-name'],
  // quoted local parts
  ['quoted local part with space', '"john doe"@x.com', 'quoted-local-part'],
  ['quoted local part', '"john"@x.com', 'quoted-local-part'],
  ['quoted @ is not a list', '"a@b"@x.com', 'quoted-local-part'],
  ['stray quote', 'jo"hn@x.com', 'quoted-local-part'],
  // whitespace inside
  ['space in local part', 'ann lee@x.com', 'whitespace'],
  ['space in domain', 'ann@x .com', 'whitespace'],
  ['tab inside', 'ann\tlee@x.com', 'whitespace'],
  ['unquoted display name', 'Ann ann@x.com', 'whitespace'],
  ['no-break space is not trimmed', 'ann@x.com\u00a0', 'whitespace'],
  ['BOM', '\ufeffann@x.com', 'whitespace'],
  ['ideographic space', 'ann@x.com\u3000', 'whitespace'],
  // @
  ['missing @', 'ann.x.com', 'missing-at'],
  ['missing @, single word', 'ann', 'missing-at'],
  ['fullwidth @ is not @', 'ann＠x.com', 'missing-at'],
  ['two @ in a row', 'ann@@x.com', 'invalid-local-part'],
  ['stray second @', 'a@b@x.com', 'invalid-local-part'],
  ['empty local part', '@x.com', 'invalid-local-part'],
  ['only @', '@', 'invalid-local-part'],
  ['empty domain', 'ann@', 'invalid-domain'],
  // local part
  ['non-ASCII local part', 'josé@x.com', 'non-ascii-local-part'],
  ['non-ASCII local part with IDN', 'ünï@bücher.de', 'non-ascii-local-part'],
  ['parentheses (comment)', 'ann(comment)@x.com', 'invalid-local-part'],
  ['closing parenthesis', 'ann)@x.com', 'invalid-local-part'],
  ['backslash', 'ann\\lee@x.com', 'invalid-local-part'],
  ['opening square bracket', 'ann[1@x.com', 'invalid-local-part'],
  ['closing square bracket', 'ann]@x.com', 'invalid-local-part'],
  ['colon', 'ann:lee@x.com', 'invalid-local-part'],
  ['leading dot in local part', '.ann@x.com', 'dot-position'],
  ['trailing dot in local part', 'ann.@x.com', 'dot-position'],
  ['double dot in local part', 'ann..lee@x.com', 'dot-position'],
  ['local part only a dot', '.@x.com', 'dot-position'],
  ['local part of 65', `${'a'.repeat(65)}@x.com`, 'local-part-too-long'],
  // domain
  ['IPv4 literal', 'ann@[192.0.2.1]', 'domain-literal'],
  ['IPv6 literal', 'ann@[IPv6:2001:db8::1]', 'domain-literal'],
  ['leading dot in domain', 'ann@.x.com', 'dot-position'],
  ['double dot in domain', 'ann@x..com', 'dot-position'],
  ['trailing-dot FQDN', 'ann@x.com.', 'dot-position'],
  ['single label', 'ann@localhost', 'single-label-domain'],
  ['TLD only', 'ann@com', 'single-label-domain'],
  ['bare IPv4', 'ann@192.0.2.1', 'invalid-domain'],
  ['numeric TLD', 'ann@x.123', 'invalid-domain'],
  ['label starts with hyphen', 'ann@-x.com', 'invalid-domain'],
  ['label ends with hyphen', 'ann@x-.com', 'invalid-domain'],
  ['TLD starts with hyphen', 'ann@x.-com', 'invalid-domain'],
  ['TLD ends with hyphen', 'ann@x.com-', 'invalid-domain'],
  ['underscore in domain', 'ann@x_y.com', 'invalid-domain'],
  ['exclamation mark in domain', 'ann@x!.com', 'invalid-domain'],
  ['slash in domain', 'ann@x/y.com', 'invalid-domain'],
  ['square bracket inside domain', 'ann@x[1].com', 'invalid-domain'],
  ['label of 64', `ann@${'b'.repeat(64)}.com`, 'label-too-long'],
  // 253 passes the domain limit but 'a@' + 253 = 255 breaks the address limit.
  ['domain of 253', `a@${domainOf(253)}`, 'address-too-long'],
  ['domain of 254', `a@${domainOf(254)}`, 'domain-too-long'],
  ['address of 255', `${'a'.repeat(64)}@${domainOf(190)}`, 'address-too-long'],
  // IDN
  ['emoji domain', 'ann@💩.la', 'invalid-domain'],
  ['symbol in IDN', 'ann@i♥.com', 'invalid-domain'],
  ['unassigned code point', 'ann@\u0378x.com', 'invalid-domain'],
  ['IDN label ends with hyphen', 'ann@bü-.de', 'invalid-domain'],
  ['percent in IDN (no URL decoding)', 'ann@bü%41cher.de', 'invalid-domain'],
  ['underscore in IDN', 'ann@bü_cher.de', 'invalid-domain'],
  ['double dot in IDN', 'ann@bücher..de', 'dot-position'],
  ['trailing dot in IDN', 'ann@bücher.de.', 'dot-position'],
  ['trailing ideographic full stop', 'ann@bücher\u3002', 'dot-position'],
  ['IDN label of 64 after conversion', `u@${'ü'.repeat(58)}.de`, 'label-too-long'],
  ['single-label IDN', 'ann@bücher', 'single-label-domain'],
];

describe('normalizeAddress: accepted', () => {
  it.each(accepted)('%s: %j', (_name, input, address, key) => {
    const at = address.lastIndexOf('@');
    expect(normalizeAddress(input)).toEqual({
      ok: true,
      address,
      key,
      local: address.slice(0, at),
      domain: address.slice(at + 1),
    });
  });

  // The stores are given only the address and derive the key and the domain
  // from it (the SQLite store with lower() and substr() in SQL).
  it.each(accepted)('%s: key and domain derive from the address', (_name, input) => {
    const r = normalizeAddress(input);
    if (!r.ok) throw new Error(r.message);
    expect(r.address).toMatch(/^[\x21-\x7e]+$/);
    expect(addressKeyOf(r.address)).toBe(r.key);
    expect(domainOfAddress(r.address)).toBe(r.domain);
  });

  it.each(accepted)('%s: normalizing the result again changes nothing', (_name, input) => {
    const first = normalizeAddress(input);
    if (!first.ok) throw new Error(first.message);
    expect(normalizeAddress(first.address)).toEqual(first);
  });
});

describe('normalizeAddress: rejected', () => {
  it.each(rejected)('%s: %j', (_name, input, reason) => {
    const result = normalizeAddress(input);
    expect(result).toMatchObject({ ok: false, reason });
    if (result.ok) return;
    // One visible line: no line breaks of any kind, no raw control characters.
    expect(controlCharsIn(result.message)).toEqual([]);
    expect(result.message).not.toMatch(/\.$/);
    expect(result.message.length).toBeGreaterThan(10);
  });
});

describe('normalizeAddress: details', () => {
  it('dedupes case variants of the local part to one key', () => {
    const a = normalizeAddress('Ann.Lee@X.com');
    const b = normalizeAddress('ann.lee@x.COM');
    expect(a.ok && b.ok && a.key === b.key).toBe(true);
  });

  it('keys an IDN and its punycode form the same', () => {
    const a = normalizeAddress('u@bücher.de');
    const b = normalizeAddress('u@xn--bcher-kva.de');
    expect(a.ok && b.ok && a.key === b.key).toBe(true);
  });

  it('quotes the input in the message', () => {
    expect(normalizeAddress('Ann <a@x.com>')).toEqual({
      ok: false,
      reason: 'display-name',
      message: 'display names are not allowed ("Ann <a@x.com>"); put only the address in the cell',
    });
  });

  it('escapes line breaks and invisible characters in the quoted input', () => {
    const result = normalizeAddress('a@x.com\r\n\u2028\u0085');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.message).toContain('"a@x.com\\r\\n\\u2028\\u0085"');
  });

  it('says why quoted local parts are refused', () => {
    const result = normalizeAddress('"john doe"@x.com');
    expect(result.ok ? '' : result.message).toMatch(/header and RCPT/);
  });

  it('says SMTPUTF8 local parts are not supported', () => {
    const result = normalizeAddress('josé@x.com');
    expect(result.ok ? '' : result.message).toMatch(/SMTPUTF8/);
  });

  it('truncates a huge cell in the message', () => {
    const result = normalizeAddress(`${'a'.repeat(100_000)}@x.com`);
    expect(result).toMatchObject({ ok: false, reason: 'local-part-too-long' });
    expect(result.ok ? '' : result.message.length).toBeLessThan(300);
  });

  it('has at least 70 table cases', () => {
    expect(accepted.length + rejected.length).toBeGreaterThanOrEqual(70);
  });
});
