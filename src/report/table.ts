/** Plain aligned text table for terminals; cells are single-line (control characters shown escaped). */
function oneLine(text: string): string {
  // Control characters are exactly what must not reach a terminal raw.
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function renderTable(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>, maxCell = 60): string {
  const cells = rows.map((r) => r.map((c) => {
    const s = oneLine(String(c));
    return s.length > maxCell ? `${s.slice(0, maxCell - 1)}…` : s;
  }));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const fmt = (r: readonly string[]): string => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...cells.map(fmt)].join('\n') + '\n';
}
