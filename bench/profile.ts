import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

/**
 * `node --import tsx bench/profile.ts <dir|file.cpuprofile> [top]`: self time by function from a
 * V8 CPU profile (as written by BENCH_PROFILE=<dir> pnpm bench proxy), grouped by package.
 */
interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const target = process.argv[2];
if (!target) {
  process.stderr.write("usage: profile.ts <dir|file.cpuprofile> [top]\n");
  process.exit(2);
}
const file = statSync(target).isDirectory()
  ? readdirSync(target)
      .filter((f) => f.endsWith(".cpuprofile"))
      .map((f) => join(target, f))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]
  : target;
if (!file) throw new Error(`no .cpuprofile in ${target}`);
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
profile.samples.forEach((id, i) => {
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const total = [...self.values()].reduce((a, b) => a + b, 0);

const where = (url: string): string => {
  if (url === "") return "(native)";
  const pkg = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith("node:")) return "node";
  if (url.includes("/apps/broker/")) return "broker";
  return url.split("/").slice(-2).join("/");
};
const fns = new Map<string, number>();
const packages = new Map<string, number>();
for (const [id, us] of self) {
  const n = byId.get(id)!;
  const key = `${n.callFrame.functionName || "(anonymous)"}  ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  fns.set(key, (fns.get(key) ?? 0) + us);
  packages.set(where(n.callFrame.url), (packages.get(where(n.callFrame.url)) ?? 0) + us);
}
// Inclusive time: each sample counts once for every distinct function on its stack.
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const keyOf = (n: Node) =>
  `${n.callFrame.functionName || "(anonymous)"}  ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
const inclusive = new Map<string, number>();
for (const [id, us] of self) {
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const key = keyOf(byId.get(at)!);
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + us);
  }
}
const top = Number(process.argv[3] ?? 40);
const pct = (us: number) => `${((us / total) * 100).toFixed(1).padStart(5)} %`;
process.stdout.write(`${file}: ${(total / 1e6).toFixed(2)} s sampled\n\nby package\n`);
for (const [k, us] of [...packages].sort((a, b) => b[1] - a[1]).slice(0, 15))
  process.stdout.write(`${pct(us)}  ${k}\n`);
process.stdout.write("\nby function (self time)\n");
for (const [k, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top))
  process.stdout.write(`${pct(us)}  ${k}\n`);
process.stdout.write("\nby function (inclusive, the project's own code)\n");
for (const [k, us] of [...inclusive]
  .filter(([k]) => / {2}broker:/.test(k))
  .sort((a, b) => b[1] - a[1])
  .slice(0, top))
  process.stdout.write(`${pct(us)}  ${k}\n`);
