import type { Command } from 'commander';
import { ExitCode } from '../errors.js';
import { checkCampaign, type CheckReport } from '../campaign/check.js';
import { out, parsePositiveInt, requireCampaign, requireImportsComplete, withStore } from './context.js';

function reportText(r: CheckReport): string {
  const lines = [`campaign ${r.campaign}`, `  template uses   ${r.variables.join(', ') || '(no variables)'}`];
  lines.push(r.missing.length === 0
    ? '  variables       all defined'
    : `  MISSING         ${r.missing.join(', ')} (not a CSV column nor a --var)`);
  lines.push(`  rendered        ${r.checked} recipient${r.checked === 1 ? '' : 's'}: ${r.ok} ok, ${r.failed} failed`);
  for (const [reason, f] of Object.entries(r.failures).sort((a, b) => b[1].count - a[1].count)) {
    lines.push(`    ${reason} (${f.count})`);
    for (const e of f.examples) lines.push(`      line ${e.line}: ${e.message}`);
  }
  if (r.sampleBytes !== undefined) lines.push(`  sample message  ${r.sampleBytes} bytes of MIME`);
  lines.push(r.missing.length === 0 && r.failed === 0 ? 'OK: every checked recipient renders' : 'NOT READY: fix the template or the data, then check again');
  return `${lines.join('\n')}\n`;
}

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('check that the template only uses defined variables and that every recipient renders')
    .requiredOption('-c, --campaign <name>', 'campaign name')
    .option('--sample <n>', 'render a uniform random sample of n recipients instead of all')
    .option('--json', 'print the report as JSON on stdout')
    .action(async (flags: { campaign: string; sample?: string; json?: boolean }, cmd: Command) => {
      const sample = flags.sample === undefined ? undefined : parsePositiveInt(flags.sample, '--sample');
      const report = await withStore(cmd, async (store) => {
        const campaign = await requireCampaign(store, flags.campaign);
        await requireImportsComplete(store, campaign);
        return checkCampaign(store, campaign, sample === undefined ? {} : { sample });
      });
      out(flags.json === true ? `${JSON.stringify(report)}\n` : reportText(report));
      if (report.missing.length > 0 || report.failed > 0) process.exitCode = ExitCode.someFailed;
    });
}
