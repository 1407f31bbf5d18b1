import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "@perishable/test-support";
import type { ConfigInput } from "../../src/config/schema.js";

export interface ProcessBroker extends AsyncDisposable {
  readonly url: string;
  readonly process: ChildProcess;
  /** The config file it was started with (tests rewrite it and send SIGHUP). */
  readonly file: string;
  /** What it wrote to stderr and stdout. */
  readonly output: () => string;
}

const bin = fileURLToPath(new URL("../../dist/bin.js", import.meta.url));

/**
 * The built `perishable start` in its own process, with this config document (JSON is YAML),
 * on a free port; resolves once /readyz answers. A second broker node for multi-node tests.
 */
export const startProcessBroker = async (doc: ConfigInput): Promise<ProcessBroker> => {
  const port = await freePort();
  const file = join(mkdtempSync(join(tmpdir(), "perishable-node-")), "perishable.yaml");
  writeFileSync(file, JSON.stringify({ ...doc, listen: { ...doc.listen, host: "127.0.0.1", port } }));
  const child = spawn(process.execPath, [bin, "start", "--config", file], {
    env: { PATH: process.env.PATH ?? "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d));
  child.stderr!.on("data", (d: Buffer) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`broker process exited: ${output}`);
    const ready = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`broker process not ready: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    file,
    process: child,
    output: () => output,
    [Symbol.asyncDispose]: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    },
  };
};
