import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, pingRedis } from "./redis.js";

export interface RedisCluster extends AsyncDisposable {
  /** `redis://127.0.0.1:<port>` of every master. */
  readonly urls: readonly string[];
  stop(): Promise<void>;
}

const run = (file: string, args: string[]) =>
  new Promise<string>((resolve, reject) =>
    execFile(file, args, { timeout: 30_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`${file} ${args.join(" ")}: ${stderr || error.message}`)) : resolve(stdout),
    ),
  );

/**
 * A real Redis Cluster of `masters` `redis-server` processes on free local ports (no replicas,
 * nothing on disk but the cluster's node files in a temporary directory), created with
 * `redis-cli --cluster create`. Stops and deletes everything on dispose.
 */
export const startRedisCluster = async (masters = 3): Promise<RedisCluster> => {
  const dir = mkdtempSync(join(tmpdir(), "perishable-cluster-"));
  const ports: number[] = [];
  for (let i = 0; i < masters; i++) ports.push(await freePort());
  // biome-ignore format: flag/value pairs read best two to a line
  const children: ChildProcess[] = ports.map((port) =>
    spawn(
      "redis-server",
      [
        "--port", String(port),
        "--bind", "127.0.0.1",
        "--cluster-enabled", "yes",
        "--cluster-config-file", join(dir, `nodes-${port}.conf`),
        "--cluster-node-timeout", "2000",
        "--save", "",
        "--appendonly", "no",
        "--dir", dir,
      ],
      { stdio: "ignore" },
    ),
  );
  const stop = async () => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, "exit");
        child.kill("SIGTERM");
        await exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      const deadline = Date.now() + 10_000;
      while (!(await pingRedis("127.0.0.1", port, 200))) {
        if (Date.now() > deadline) throw new Error(`redis-server did not start on ${port}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    await run("redis-cli", [
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    const deadline = Date.now() + 20_000;
    for (const port of ports) {
      while (
        !(await run("redis-cli", ["-p", String(port), "cluster", "info"])).includes("cluster_state:ok")
      ) {
        if (Date.now() > deadline) throw new Error("the cluster did not reach cluster_state:ok");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { urls: ports.map((p) => `redis://127.0.0.1:${p}`), stop, [Symbol.asyncDispose]: stop };
};
