import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, pingRedis } from "./redis.js";

export interface RedisSentinel extends AsyncDisposable {
  /** `redis://127.0.0.1:<port>` of the sentinel. */
  readonly url: string;
  readonly masterName: string;
  stop(): Promise<void>;
}

/** A `redis-server --sentinel` on a free port, monitoring the master at `masterPort` as `mymaster`. */
export const startRedisSentinel = async (
  masterPort: number,
  masterName = "mymaster",
): Promise<RedisSentinel> => {
  const dir = mkdtempSync(join(tmpdir(), "perishable-sentinel-"));
  const port = await freePort();
  const file = join(dir, "sentinel.conf");
  writeFileSync(
    file,
    [
      `port ${port}`,
      "bind 127.0.0.1",
      `dir ${dir}`,
      `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 1`,
      `sentinel down-after-milliseconds ${masterName} 1000`,
      `sentinel failover-timeout ${masterName} 5000`,
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn("redis-server", [file, "--sentinel"], { stdio: "ignore" });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  while (!(await pingRedis("127.0.0.1", port, 200))) {
    if (Date.now() > deadline) {
      await stop();
      throw new Error("redis sentinel did not start");
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url: `redis://127.0.0.1:${port}`, masterName, stop, [Symbol.asyncDispose]: stop };
};
