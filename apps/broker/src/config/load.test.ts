import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfigFile, parseConfig } from "./load.js";

const example = readFileSync(new URL("../../perishable.example.yaml", import.meta.url), "utf8");
const env = {
  OPENAI_API_KEY: "sk-test-openai-0123456789",
  ANTHROPIC_API_KEY: "sk-ant-test-0123456789",
  PERISHABLE_ISSUER_KEY: "pik_issuer-key-0123456789abcdef",
  PERISHABLE_ADMIN_KEY: "pak_admin-key-0123456789abcdef",
  PERISHABLE_SECRET: "sec_broker-secret-0123456789abcdefghij",
};

const problemsOf = (text: string, environment: Record<string, string> = env) => {
  try {
    parseConfig(text, { env: environment });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
};

const minimal = (extra = "") => `
upstreams:
  openai: { base_url: https://api.openai.com, auth: { header: authorization, value: "Bearer x" } }
scopes:
  llm:complete: { upstream: openai, endpoints: [/v1/chat/completions], methods: [POST] }
${extra}`;

describe("config", () => {
  it("loads the example config shipped with the broker", () => {
    const config = parseConfig(example, { env });
    expect([...config.upstreams.keys()]).toEqual(["openai", "anthropic"]);
    expect(config.scopes.get("llm:complete")).toMatchObject({
      upstream: "openai",
      rate: { limit: 100, windowMs: 60_000 },
      hasConstraints: true,
    });
    expect(config.issuers[0]).toMatchObject({ name: "orchestrator", maxTtl: 600_000 });
    expect(config.upstreams.get("anthropic")?.headers).toEqual([["anthropic-version", "2023-06-01"]]);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("keeps secrets out of anything printable", () => {
    const config = parseConfig(example, { env });
    const printed = JSON.stringify(config, (_k, v) =>
      v instanceof Map ? [...v] : v instanceof Set ? [...v] : v,
    );
    for (const value of Object.values(env)) expect(printed).not.toContain(value);
    expect(config.upstreams.get("openai")?.auth?.value.reveal()).toBe(`Bearer ${env.OPENAI_API_KEY}`);
  });

  it("is frozen all the way down, Maps and Sets included", () => {
    const config = parseConfig(minimal());
    expect(Object.isFrozen(config.limits)).toBe(true);
    expect(() => (config.scopes as Map<string, unknown>).set("x", {})).toThrow(TypeError);
    const scope = [...config.scopes.values()][0]!;
    expect(() => (scope.methods as Set<string>).add("DELETE")).toThrow(TypeError);
    expect(() => (config.upstreams as Map<string, unknown>).delete("openai")).toThrow(TypeError);
    expect(config.scopes.size).toBeGreaterThan(0);
  });

  it("applies defaults", () => {
    const config = parseConfig(minimal());
    expect(config.listen).toEqual({
      host: "127.0.0.1",
      port: 8420,
      headersTimeoutMs: 20_000,
      requestTimeoutMs: 300_000,
    });
    expect(config.limits).toEqual({
      defaultTtl: 300_000,
      maxTtl: 3_600_000,
      maxLifetime: 86_400_000,
      maxDepth: 4,
      maxChildren: 100,
    });
    expect(config.store.redis).toBeUndefined();
    expect(config.upstreams.get("openai")?.timeouts).toEqual({
      connectMs: 10_000,
      headersMs: 300_000,
      bodyMs: 300_000,
    });
  });

  it("reports every problem with its path, not just the first", () => {
    const problems = problemsOf(`
listen: { port: 99999 }
upstreams:
  openai: { base_url: ftp://x, auth: { header: "bad header", value: "v" }, colour: blue }
scopes:
  llm:complete: { upstream: nowhere, endpoints: [chat], methods: [FETCH], rate_limit: lots }
issuers:
  - { name: o, key: short, scopes: [llm:complete] }
`);
    const paths = problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "listen.port",
        "upstreams.openai.base_url",
        "upstreams.openai.auth.header",
        "upstreams.openai",
        "scopes.llm:complete.endpoints[0]",
        "scopes.llm:complete.methods[0]",
        "scopes.llm:complete.rate_limit",
        "issuers[0].key",
      ]),
    );
    expect(problems.find((p) => p.path === "upstreams.openai")?.message).toBe("unknown key: colour");
  });

  it("checks references between sections", () => {
    const problems = problemsOf(
      minimal(`
issuers:
  - { name: o, key: ${"k".repeat(24)}, scopes: [llm:complete, llm:nothing], max_ttl: 7200 }
admins:
  - { name: o, key: ${"k".repeat(24)} }
`),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: "issuers[0].scopes[1]", message: "no scope named llm:nothing" },
        { path: "issuers[0].max_ttl", message: "7200 is above limits.max_ttl (3600)" },
        { path: "admins[0].name", message: "duplicate name o" },
        {
          path: "admins[0].key",
          message: "the same key is already used by issuer o; every key must be unique",
        },
      ]),
    );
    expect(problemsOf(minimal().replace("upstream: openai,", "upstream: azure,"))).toEqual([
      { path: "scopes.llm:complete.upstream", message: "no upstream named azure (have: openai)" },
    ]);
  });

  it("validates OIDC issuers: asymmetric algorithms only, https (or loopback), rules within the issuer's ceiling", () => {
    const problems = problemsOf(
      minimal(`
issuers:
  - name: ci
    oidc: { issuer: "http://idp.example", audience: perishable, algorithms: [HS256, none] }
    scopes: [llm:complete]
  - name: k8s
    oidc: { issuer: "https://kubernetes.default.svc", audience: [] , color: red }
    scopes: [llm:complete]
  - name: gh
    oidc: { issuer: "https://token.actions.githubusercontent.com", audience: perishable }
    scopes: [llm:complete]
    max_ttl: 300
    rules:
      - { claims: { repository: "acme/*" }, scopes: [llm:complete, llm:embed], max_ttl: 600 }
      - { claims: {} }
`),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: "issuers[0].oidc.issuer", message: "must be https (http only on 127.0.0.1 / localhost)" },
        {
          path: "issuers[0].oidc.algorithms[0]",
          message: "an asymmetric JWS algorithm (HMAC and none are refused)",
        },
        {
          path: "issuers[0].oidc.algorithms[1]",
          message: "an asymmetric JWS algorithm (HMAC and none are refused)",
        },
        { path: "issuers[1].oidc", message: "unknown key: color" },
        { path: "issuers[2].rules[1].claims", message: "at least one claim" },
      ]),
    );
    const good = parseConfig(
      minimal(`
issuers:
  - name: gh
    oidc: { issuer: "https://token.actions.githubusercontent.com", audience: perishable }
    scopes: [llm:complete]
    max_ttl: 300
    rules:
      - { claims: { repository: "acme/*", ref: [refs/heads/main, "refs/tags/v*"] }, max_ttl: 120 }
`),
    );
    const issuer = good.issuers[0];
    expect(issuer).toMatchObject({
      kind: "oidc",
      agentClaim: "sub",
      clockSkewSeconds: 30,
      jwksUri: undefined,
      maxTtl: 300_000,
    });
    expect(issuer?.kind === "oidc" && issuer.algorithms).not.toContain("HS256");
    expect(issuer?.kind === "oidc" && issuer.rules[0]).toMatchObject({
      maxTtl: 120_000,
      scopes: new Set(["llm:complete"]),
    });
    expect(
      problemsOf(
        minimal(`
issuers:
  - name: gh
    oidc: { issuer: "https://idp.example", audience: a }
    scopes: [llm:complete]
    rules: [{ claims: { sub: x }, scopes: [llm:embed] }]
`),
      ),
    ).toEqual([
      { path: "issuers[0].rules[0].scopes[0]", message: "llm:embed is not among the issuer's scopes" },
    ]);
  });

  it("requires a broker secret with Redis", () => {
    expect(problemsOf(minimal("store: { redis: redis://127.0.0.1:6379 }"))).toEqual([
      expect.objectContaining({ path: "secret" }),
    ]);
  });

  it("waits for one replica behind Sentinel unless told otherwise, and for none on one server; not on a Cluster", () => {
    const secret = "secret: 0123456789abcdef0123456789abcdef\n";
    const store = (text: string) => parseConfig(minimal(`${secret}store: ${text}`)).store;
    expect(store("{ sentinel: { nodes: [redis://127.0.0.1:26379], name: m } }")).toMatchObject({
      waitReplicas: 1,
      waitTimeoutMs: 1_000,
    });
    expect(
      store("{ sentinel: { nodes: [redis://127.0.0.1:26379], name: m }, wait_replicas: 2 }").waitReplicas,
    ).toBe(2);
    expect(store("{ redis: redis://127.0.0.1:6379 }").waitReplicas).toBe(0);
    expect(
      problemsOf(minimal(`${secret}store: { cluster: [redis://127.0.0.1:7000], wait_replicas: 1 }`)),
    ).toEqual([expect.objectContaining({ path: "store.wait_replicas" })]);
  });

  it("interpolates ${VAR} and ${file:path}, and names what is missing without showing values", () => {
    const dir = mkdtempSync(join(tmpdir(), "perishable-config-"));
    writeFileSync(join(dir, "key.txt"), "  pik_from-a-file-0123456789abcdef\n");
    const file = join(dir, "perishable.yaml");
    writeFileSync(
      file,
      minimal(`
issuers:
  - { name: o, key: "\${file:key.txt}", scopes: [llm:complete] }
admins:
  - { name: a, key: "\${ADMIN}" }
`).replace('"Bearer x"', () => '"Bearer ${OPENAI} and $${LITERAL}"'),
    );
    const config = loadConfigFile(file, { env: { OPENAI: "sk-1", ADMIN: "pak_admin-0123456789abcdef" } });
    const issuer = config.issuers[0];
    expect(issuer?.kind === "key" && issuer.key.reveal()).toBe("pik_from-a-file-0123456789abcdef");
    expect(config.upstreams.get("openai")?.auth?.value.reveal()).toBe("Bearer sk-1 and ${LITERAL}");

    let caught: unknown;
    try {
      loadConfigFile(file, { env: { OPENAI: "sk-1" } });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).problems).toEqual([
      { path: "admins[0].key", message: "environment variable ADMIN is not set" },
    ]);
    writeFileSync(file, minimal('admins: [{ name: a, key: "${file:missing.txt}" }]'));
    expect(() => loadConfigFile(file, { env: {} })).toThrow(
      /admins\[0\].key: cannot read file missing.txt \(ENOENT\)/,
    );
  });

  it("reports YAML errors without quoting the file", () => {
    const problems = problemsOf('upstreams: { openai: "sk-live-secret-value\n  : [');
    expect(problems).toHaveLength(problems.length);
    expect(problems[0]?.message).toMatch(/^YAML:/);
    expect(JSON.stringify(problems)).not.toContain("sk-live-secret-value");
    expect(problemsOf("a: 1\na: 2")[0]?.message).toMatch(/YAML/);
    expect(problemsOf("- 1")[0]?.message).toBe("the file must hold a YAML mapping");
  });

  it("refuses a missing file with a clear message", () => {
    expect(() => loadConfigFile("/nonexistent/perishable.yaml")).toThrow(/cannot read \(ENOENT\)/);
  });
});
