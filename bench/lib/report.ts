import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";

/** One benchmark section's result: a title, a table, notes; written between markers in docs/benchmarks.md. */
export interface SectionReport {
  readonly id: string;
  readonly title: string;
  readonly command: string;
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
  readonly notes?: readonly string[];
}

export const machine = (): string => {
  const redis = (() => {
    try {
      return execFileSync("redis-server", ["--version"], { encoding: "utf8" }).match(/v=(\S+)/)?.[1] ?? "?";
    } catch {
      return "?";
    }
  })();
  return `${cpus().length} cores (${cpus()[0]?.model.trim() ?? "?"}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, Redis ${redis}, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`;
};

export const markdownTable = (header: readonly string[], rows: readonly (readonly string[])[]): string =>
  [
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");

export const consoleTable = (header: readonly string[], rows: readonly (readonly string[])[]): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
};

const FILE = new URL("../../docs/benchmarks.md", import.meta.url);
const INTRO = `# Benchmarks

Produced by \`corepack pnpm bench\` (or \`corepack pnpm bench <section>\`): bounded, loopback only, stops by
itself. Each section below is rewritten by its own run and says on which machine and when. The machine
is shared and noisy: compare the ratios within one run rather than absolute numbers across runs.
`;

/** Replaces (or appends) the section's block in docs/benchmarks.md. */
export const writeSection = (report: SectionReport, facts: string): void => {
  const current = existsSync(FILE) ? readFileSync(FILE, "utf8") : INTRO;
  const block = [
    `<!-- bench:${report.id} -->`,
    `## ${report.title}`,
    "",
    `Machine: ${facts}. Command: \`${report.command}\`.`,
    "",
    markdownTable(report.header, report.rows),
    ...(report.notes?.length ? ["", ...report.notes.map((n) => `- ${n}`)] : []),
    `<!-- /bench:${report.id} -->`,
  ].join("\n");
  const pattern = new RegExp(`<!-- bench:${report.id} -->[\\s\\S]*?<!-- /bench:${report.id} -->`);
  const next = pattern.test(current) ? current.replace(pattern, block) : `${current.trimEnd()}\n\n${block}\n`;
  writeFileSync(FILE, next);
};

/** Percentile of a sorted-or-not list of numbers. */
export const percentile = (values: readonly number[], p: number): number => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};

/** A target cell: the target and whether this run met it ("≤ 1.0× PASS"). A figure that could not be measured misses. */
export const judged = (target: string, met: boolean): string => `${target} ${met ? "PASS" : "MISS"}`;

/** The rows whose target cell carries a verdict, as "measure: target PASS|MISS". */
export const verdicts = (report: SectionReport): { line: string; met: boolean }[] =>
  report.rows.flatMap((row) => {
    const cell = row.at(-1) ?? "";
    const met = cell.endsWith(" PASS") ? true : cell.endsWith(" MISS") ? false : undefined;
    return met === undefined ? [] : [{ line: `${row[0]}: ${cell}`, met }];
  });

export const fmt = (n: number, digits = 2): string =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 })
    : "-";
