import { describe, expect, it } from 'vitest';
import { niceStep } from '../../src/report/html/charts.js';
import { duration, esc } from '../../src/report/html/escape.js';
import { latencyLabels, renderHtmlReport, type HtmlReportInput } from '../../src/report/html/page.js';
import { axisLabels, chooseAxis } from '../../src/report/html/timeline.js';
import { LATENCY_BOUNDS_MS } from '../../src/report/report-html.js';
import { emptyCounts } from '../../src/store/types.js';

const T0 = Date.UTC(2024, 4, 1, 14, 0, 0);

function input(overrides: Partial<HtmlReportInput> = {}): HtmlReportInput {
  return {
    campaign: 'spring <b>news</b>',
    campaignStatus: 'finished',
    generatedAt: T0 + 3_600_000,
    version: '0.1.0',
    summary: {
      counts: { ...emptyCounts(), sent: 1200, failed: 30, deferred: 5, suppressed: 2 },
      possibleDuplicates: 3,
      attempts: 1290,
      firstAttemptAt: T0,
      lastAttemptAt: T0 + 10 * 60_000,
      runs: 2,
    },
    charts: {
      timeline: [{ index: 0, sent: 100, other: 5 }, { index: 3, sent: 40, other: 0 }],
      categories: [{ category: 'sent', n: 1200 }, { category: 'bad-recipient', n: 30 }],
      domains: [{ domain: 'gmail.com', total: 700, counts: { ...emptyCounts(), sent: 690, failed: 10 } }, { domain: 'a&b.example', total: 1, counts: { ...emptyCounts(), failed: 1 } }],
      latency: LATENCY_BOUNDS_MS.map((_, i) => i * 3).concat([1]),
      latencyPercentiles: { p50: 180, p95: 2400, max: 31_000 },
      attemptsPerRecipient: [{ attempts: 1, n: 1180 }, { attempts: 3, n: 50 }],
      topReplies: [{ category: 'bad-recipient', code: 550, reply: '550 5.1.1 <script>alert("x")</script> \'quoted\' & more\u0007', n: 30 }],
    },
    axis: chooseAxis(T0, T0 + 10 * 60_000),
    latencyBoundsMs: LATENCY_BOUNDS_MS,
    ...overrides,
  };
}

describe('HTML report page', () => {
  it('escapes every outside text: reply, campaign name, domain; no markup gets through', () => {
    const html = renderHtmlReport(input());
    expect(html).toContain('550 5.1.1 &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &#39;quoted&#39; &amp; more\\u0007');
    expect(html).toContain('Campaign report: spring &lt;b&gt;news&lt;/b&gt;');
    expect(html).toContain('a&amp;b.example');
    expect(html).not.toMatch(/<script|<b>/i);
    expect(html).not.toContain('\u0007');
  });

  it('is self-contained: inline style and SVG, nothing fetched, scripts forbidden by CSP', () => {
    const html = renderHtmlReport(input());
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<link|<img|<iframe|@import|url\(/i);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'`);
    expect(html).toMatch(/page-break-inside: avoid/);
    expect(html).toMatch(/@media print/);
    // One chart per section: timeline, categories, domains, latency, attempts.
    expect(html.match(/<svg class="chart"/g)).toHaveLength(5);
  });

  it('shows the summary figures', () => {
    const html = renderHtmlReport(input());
    expect(html).toContain('<div class="v">1,237</div><div class="k">recipients</div>');
    expect(html).toMatch(/<div class="v">1,200<\/div><div class="k"><span class="dot"[^>]*><\/span>sent<\/div>/);
    expect(html).toMatch(/<div class="v">3<\/div><div class="k">possible duplicates<\/div>/);
    expect(html).toContain('<div class="v">10 min</div><div class="k">sending span: 2024-05-01 14:00:00 UTC → 14:10:00 UTC</div>');
    // 1,200 sent over 10 minutes.
    expect(html).toContain('<div class="v">120</div><div class="k">sent per minute, average</div>');
    // The busiest 15 s bucket held 100 sends: 400 a minute.
    expect(html).toContain('<div class="v">400</div><div class="k">sent per minute, busiest 15 s</div>');
    expect(html).toContain('<div class="v">180 ms / 2.4 s</div>');
    expect(html).toContain('<div class="v">2</div><div class="k">send / resume runs</div>');
  });

  it('an empty campaign renders every chart as "no data"', () => {
    const html = renderHtmlReport(input({
      summary: { counts: emptyCounts(), possibleDuplicates: 0, attempts: 0, firstAttemptAt: undefined, lastAttemptAt: undefined, runs: 0 },
      charts: { timeline: [], categories: [], domains: [], latency: LATENCY_BOUNDS_MS.map(() => 0).concat([0]), latencyPercentiles: undefined, attemptsPerRecipient: [], topReplies: [] },
      axis: undefined,
    }));
    expect(html.match(/>no data</g)).toHaveLength(5);
    expect(html).toContain('sending span: nothing sent yet');
    expect(html).toContain('<div class="v">0</div><div class="k">recipients</div>');
  });
});

describe('chart arithmetic', () => {
  it('chooses round time buckets for at most 60 columns', () => {
    expect(chooseAxis(T0 + 500, T0 + 59_000)).toEqual({ fromMs: T0, bucketMs: 1000, count: 60 });
    expect(chooseAxis(T0 + 500, T0 + 70_000)).toEqual({ fromMs: T0, bucketMs: 2000, count: 36 });
    expect(chooseAxis(T0, T0)).toEqual({ fromMs: T0, bucketMs: 1000, count: 1 });
    const threeDays = chooseAxis(T0 + 123, T0 + 3 * 86_400_000);
    expect(threeDays).toEqual({ fromMs: T0, bucketMs: 2 * 3_600_000, count: 37 });
    const years = chooseAxis(0, 5 * 365 * 86_400_000);
    expect(years.count).toBeLessThanOrEqual(60);
    expect(years.bucketMs % (7 * 86_400_000)).toBe(0);
  });

  it('labels the axis with times, and dates when it spans days', () => {
    expect(axisLabels({ fromMs: T0, bucketMs: 60_000, count: 3 })).toEqual(['14:00', '14:01', '14:02']);
    expect(axisLabels({ fromMs: T0, bucketMs: 10_000, count: 2 })).toEqual(['14:00:00', '14:00:10']);
    expect(axisLabels({ fromMs: T0, bucketMs: 12 * 3_600_000, count: 3 })).toEqual(['05-01 14:00', '05-02 02:00', '05-02 14:00']);
  });

  it('labels latency buckets and picks nice gridline steps', () => {
    expect(latencyLabels([25, 50, 1000, 2500])).toEqual(['< 25 ms', '25–50 ms', '0.05–1 s', '1–2.5 s', '≥ 2.5 s']);
    expect(latencyLabels(LATENCY_BOUNDS_MS)).toHaveLength(LATENCY_BOUNDS_MS.length + 1);
    expect([niceStep(0.3), niceStep(3), niceStep(2.2), niceStep(2.2, true), niceStep(0.3, true), niceStep(70)]).toEqual([0.5, 5, 2.5, 5, 1, 100]);
    expect(duration(61_000)).toBe('1 min 1 s');
    expect(duration(2 * 86_400_000 + 3_600_000)).toBe('2 d 1 h');
    expect(esc('<a href="x">')).toBe('&lt;a href=&quot;x&quot;&gt;');
  });
});
