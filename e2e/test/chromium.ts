import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, chromium } from "playwright-core";

/** Debian's chromium (apt-get install chromium), or CHROMIUM_PATH. The tests download no browser. */
export const chromiumPath = (): string => {
  const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].filter(
    (p): p is string => !!p,
  );
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      "No Chromium for the console's end-to-end tests: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH",
    );
  }
  return found;
};

export const launch = (): Promise<Browser> =>
  chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });

/** Where screenshots go, for review after a run (git ignores it). */
export const screenshotDir = (): string => {
  const dir = fileURLToPath(new URL("../test-results/screenshots/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  return dir;
};
