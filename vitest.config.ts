import { defineConfig } from "vitest/config";
import projects from "./vitest.workspace.js";

export default defineConfig({
  test: {
    projects,
    // Integration suites start real servers; a hung one must not hang CI.
    teardownTimeout: 10_000,
  },
});
