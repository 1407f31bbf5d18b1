import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Runs `examples/<name>/run.mjs` as a user would (a bare environment) → exit code, stdout, stderr. */
export const runExample = async (
  name: string,
): Promise<{ code: number | null; out: string; err: string }> => {
  const script = fileURLToPath(new URL(`../${name}/run.mjs`, import.meta.url));
  const child = spawn(process.execPath, [script], { env: { PATH: process.env.PATH ?? "" } });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d));
  child.stderr.on("data", (d: Buffer) => (err += d));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { code, out, err };
};
