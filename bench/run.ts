import { consoleTable, machine, type SectionReport, verdicts, writeSection } from "./lib/report.js";
import { acksBench } from "./sections/acks.js";
import { dpopBench } from "./sections/dpop.js";
import { mcpBench } from "./sections/mcp.js";
import { proxyBench } from "./sections/proxy.js";
import { revocationBench } from "./sections/revocation.js";
import { rulesBench } from "./sections/rules.js";
import { sdkBench } from "./sections/sdk.js";
import { slicesBench } from "./sections/slices.js";
import { tokensBench } from "./sections/tokens.js";
import { websocketBench } from "./sections/websocket.js";

/**
 * `pnpm bench [section…]`: runs the named sections (all by default), prints each table and
 * rewrites its block in docs/benchmarks.md with the machine's facts.
 */
const SECTIONS: Record<string, () => Promise<SectionReport>> = {
  proxy: () => proxyBench(),
  tokens: () => tokensBench(),
  sdk: sdkBench,
  revocation: () => revocationBench(Number(process.env.BENCH_REVOKE_TOKENS ?? 100_000)),
  rules: () => rulesBench(),
  mcp: () => mcpBench(),
  websocket: () => websocketBench(),
  acks: () => acksBench(),
  slices: () => slicesBench(),
  dpop: () => dpopBench(),
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !(name in SECTIONS));
if (unknown.length > 0) {
  process.stderr.write(
    `unknown section ${unknown.join(", ")}; sections: ${Object.keys(SECTIONS).join(", ")}\n`,
  );
  process.exit(2);
}
const facts = machine();
const judgedTargets: { line: string; met: boolean }[] = [];
process.stdout.write(`${facts}\n`);
for (const name of wanted.length > 0 ? wanted : Object.keys(SECTIONS)) {
  const started = performance.now();
  process.stdout.write(`\n== ${name}\n`);
  const report = await SECTIONS[name]!();
  process.stdout.write(
    `${report.title}\n${consoleTable(report.header, report.rows)}\n(${((performance.now() - started) / 1000).toFixed(1)} s)\n`,
  );
  writeSection(report, facts);
  judgedTargets.push(...verdicts(report).map((v) => ({ ...v, line: `${name}: ${v.line}` })));
}
// The targets of this run, from its own ratios: timing targets are judged here, not asserted in tests.
process.stdout.write("\ntargets\n");
for (const v of judgedTargets)
  process.stdout.write(`  ${v.met ? "PASS" : "MISS"}  ${v.line.replace(/ (PASS|MISS)$/, "")}\n`);
const missed = judgedTargets.filter((v) => !v.met).length;
process.stdout.write(`${judgedTargets.length - missed} met, ${missed} missed\n`);
process.exit(0);
