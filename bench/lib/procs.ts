import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";

const TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface Proc {
  readonly child: ChildProcess;
  /** user + system CPU seconds the process has used so far. */
  cpuSeconds(): number;
  rssBytes(): number;
  stop(): Promise<void>;
}

/** A process pinned to one core with taskset (when `cpu` is a number), ready when `ready` says so. */
export const spawnPinned = async (
  cpu: number | null,
  args: string[],
  options: { ready?: RegExp; readyCheck?: () => Promise<boolean>; env?: NodeJS.ProcessEnv } = {},
): Promise<Proc> => {
  const [command, ...rest] = cpu === null ? args : ["taskset", "-c", String(cpu), ...args];
  const child = spawn(command!, rest, {
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${args.join(" ")} exited: ${out}`);
    if (options.ready?.test(out)) break;
    if (options.readyCheck && (await options.readyCheck())) break;
    if (Date.now() > deadline) throw new Error(`${args.join(" ")} not ready`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const stat = () => readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return {
    child,
    cpuSeconds: () => {
      const fields = stat();
      return (Number(fields[11]) + Number(fields[12])) / TICKS;
    },
    rssBytes: () =>
      Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1] ?? 0) * 1024,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
};
