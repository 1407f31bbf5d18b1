import type { Options } from "tsup";

/** One build recipe for every published package: ESM + declarations, Node 20 target. */
export const packageBuild = (entry: Record<string, string>, extra: Partial<Options> = {}): Options => ({
  entry,
  format: ["esm"],
  target: "node20",
  dts: true,
  sourcemap: true,
  clean: true,
  splitting: false,
  treeshake: true,
  ...extra,
});
