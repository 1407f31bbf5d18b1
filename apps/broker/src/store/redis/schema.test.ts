import { describe, expect, it } from "vitest";
import { ANCESTOR_READ, GRANT, GRANT_READ, LUA_SCHEMA, SEGMENT, TOKEN, TOKEN_READ } from "./schema.js";
import * as SCRIPTS from "./scripts.js";

describe("the Redis data model", () => {
  it("stores every field under its own name", () => {
    for (const names of [GRANT, TOKEN, SEGMENT]) {
      const stored = Object.values(names);
      expect(new Set(stored).size).toBe(stored.length);
    }
  });

  it("gives the Lua the same names and read lists the TypeScript uses", () => {
    expect(LUA_SCHEMA).toContain(`notAfter = '${GRANT.notAfter}'`);
    expect(LUA_SCHEMA).toContain(`local TOKEN_READ = {${TOKEN_READ.map((n) => `'${TOKEN[n]}'`).join(", ")}}`);
    expect(LUA_SCHEMA).toContain(`local GRANT_READ = {${GRANT_READ.map((n) => `'${GRANT[n]}'`).join(", ")}}`);
    expect(LUA_SCHEMA).toContain(`agent = ${GRANT_READ.indexOf("agent") + 1}`);
    expect(ANCESTOR_READ.every((n) => n in GRANT)).toBe(true);
  });

  it("leaves no script naming a stored field or key segment by its literal", () => {
    const literals = new Set<string>([
      ...Object.values(GRANT),
      ...Object.values(TOKEN),
      ...Object.values(SEGMENT),
    ]);
    const named = (script: string) =>
      [...script.slice(LUA_SCHEMA.length).matchAll(/'([^'\n]*)'/g)]
        .map((m) => m[1]!)
        .filter((q) => literals.has(q));
    const scripts = Object.entries(SCRIPTS).filter(([, script]) => script.startsWith(LUA_SCHEMA));
    // Only the audit append (a stream, no grant or token) goes without the schema.
    expect(Object.keys(SCRIPTS).length - scripts.length).toBe(1);
    for (const [name, script] of scripts) expect(named(script), name).toEqual([]);
    expect(named(`${LUA_SCHEMA}redis.call('HGET', key, 'na')`)).toEqual(["na"]);
  });
});
