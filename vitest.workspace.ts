import { defineProject } from "vitest/config";

/**
 * The one list of test projects. `vitest.config.ts` feeds it to `test.projects`.
 * Workspace packages resolve to their TypeScript sources through the `@perishable/source`
 * export condition, so tests never run against a stale build.
 */
const source = { conditions: ["@perishable/source"] };
const ssr = { resolve: { conditions: ["@perishable/source"], externalConditions: ["@perishable/source"] } };

export default [
  defineProject({
    resolve: source,
    ssr,
    test: { name: "protocol", root: "packages/protocol", include: ["src/**/*.test.ts", "test/**/*.test.ts"] },
  }),
  defineProject({
    resolve: source,
    ssr,
    test: {
      name: "sdk",
      root: "packages/sdk",
      include: ["src/**/*.test.ts", "test/**/*.test.ts"],
      globalSetup: ["../../packages/test-support/src/global-setup.ts"],
      testTimeout: 30_000,
      hookTimeout: 30_000,
    },
  }),
  defineProject({
    resolve: source,
    ssr,
    test: {
      name: "broker",
      root: "apps/broker",
      include: ["src/**/*.test.ts", "test/**/*.test.ts"],
      globalSetup: ["../../packages/test-support/src/global-setup.ts"],
      testTimeout: 20_000,
      hookTimeout: 30_000,
    },
  }),
  defineProject({
    resolve: source,
    ssr,
    test: { name: "console", root: "apps/console", include: ["test/**/*.test.ts"] },
  }),
  defineProject({
    resolve: source,
    ssr,
    test: { name: "examples", root: "examples", include: ["test/**/*.test.ts"], testTimeout: 30_000 },
  }),
  defineProject({
    resolve: source,
    ssr,
    test: {
      name: "e2e",
      root: "e2e",
      include: ["test/**/*.e2e.test.ts"],
      globalSetup: ["../packages/test-support/src/global-setup.ts"],
      testTimeout: 30_000,
      hookTimeout: 60_000,
    },
  }),
];
