import { defineConfig } from "vite";

/** The console is served by the broker under /console/; everything it loads comes from there. */
export default defineConfig({
  base: "/console/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true, assetsInlineLimit: 0, sourcemap: false, target: "es2022" },
});
