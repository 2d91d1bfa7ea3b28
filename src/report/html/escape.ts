/**
 * Text for the HTML report. Every value that came from outside (reply texts,
 * addresses, domains, the campaign name) goes through `esc`: an SMTP reply is
 * written by whoever runs the receiving server, and `<script>` in it must show
 * as text. Safe in element content and in double- or single-quoted attributes.
 */
const ENTITIES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function esc(value: string | number): string {
  const text = String(value)
    // Control characters other than tab and newline are parse errors in HTML and
    // invisible anyway; show them as \uXXXX like the terminal table does.
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

/** 1234567 -> "1,234,567" (fixed locale so reports read the same on every machine). */
export function num(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A duration for people: "850 ms", "12.5 s", "3 min 20 s", "2 h 5 min", "3 d 4 h". */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1).replace(/\.?0+$/, '')} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 === 0 ? '' : ` ${s % 60} s`}`;
  const m = Math.round(s / 60);
  if (m < 24 * 60) return `${Math.floor(m / 60)} h${m % 60 === 0 ? '' : ` ${m % 60} min`}`;
  const h = Math.round(m / 60);
  return `${Math.floor(h / 24)} d${h % 24 === 0 ? '' : ` ${h % 24} h`}`;
}

/** A UTC timestamp to the minute or second: reports must not depend on the reader's time zone. */
export function utc(ms: number, seconds = false): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, seconds ? 19 : 16)} UTC`;
}
