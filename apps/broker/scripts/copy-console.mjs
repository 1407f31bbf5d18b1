// Ships the built console inside the broker package: apps/console/dist → dist/console.
import { cpSync, existsSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const from = fileURLToPath(new URL("../../console/dist/", import.meta.url));
const to = fileURLToPath(new URL("../dist/console/", import.meta.url));
if (!existsSync(from)) {
  console.error(`copy-console: ${from} is missing (build @perishable/console first)`);
  process.exit(1);
}
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
