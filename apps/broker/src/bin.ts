#!/usr/bin/env node
import { main } from "./cli/main.js";

const code = await main(process.argv.slice(2));
// Long-running commands (dev, start) keep the process alive until a signal; the rest end here.
if (code !== 0) process.exitCode = code;
