import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { z } from "zod";

/**
 * The deploy files (Dockerfile, Compose, Kubernetes) against the config contract, without a
 * Docker engine: the Dockerfile's deploy step is run as it is written (pnpm deploy of the broker
 * with production dependencies only) and what it produces is the CLI that `config check`s the
 * config each file runs, with the environment and key files that file gives it.
 */
const root = fileURLToPath(new URL("../../../", import.meta.url));
const deploy = join(root, "deploy");
const read = (path: string) => readFileSync(join(root, path), "utf8");
let image: string;

/** `perishable config check` from the deployed image contents, with exactly this environment. */
const configCheck = (config: string, env: Record<string, string>) =>
  spawnSync(process.execPath, [join(image, "dist/bin.js"), "config", "check", "--config", config], {
    env: { PATH: process.env.PATH ?? "", ...env },
    encoding: "utf8",
  });

/** Every ${VAR} a config file uses. */
const variables = (file: string) =>
  [...readFileSync(file, "utf8").matchAll(/\$\{([A-Z_][A-Z0-9_]*)\}/g)].map((m) => m[1]!);

beforeAll(() => {
  image = join(mkdtempSync(join(tmpdir(), "perishable-image-")), "app");
  const deployed = spawnSync(
    "corepack",
    ["pnpm", "--filter", "@perishable/broker", "deploy", "--legacy", "--prod", image],
    { cwd: root, env: { ...process.env, COREPACK_INTEGRITY_KEYS: "0", CI: "true" }, encoding: "utf8" },
  );
  if (deployed.status !== 0) throw new Error(`pnpm deploy failed: ${deployed.stderr}`);
}, 120_000);

describe("the deploy files", () => {
  it("Dockerfile: two stages, the deployed broker and console, non-root, a /readyz healthcheck", () => {
    const text = read("Dockerfile");
    const stages = text.split(/^FROM /m).slice(1);
    expect(stages).toHaveLength(2);
    const runtime = stages[1]!;
    expect(runtime).toMatch(/^COPY --from=build \/out \/app$/m);
    expect(runtime).toMatch(/^USER node$/m);
    expect(runtime).toMatch(/^HEALTHCHECK [\s\S]*\/readyz/m);
    expect(runtime).toMatch(/^ENTRYPOINT \["node", "\/app\/dist\/bin.js"\]$/m);
    expect(runtime).toMatch(/^CMD \["start", "--config", "\/etc\/perishable\/config\/perishable.yaml"\]$/m);
    expect(stages[0]).toContain("deploy --legacy --prod /out");
    // What that step produced runs, and carries the console and no dev-only package.
    expect(existsSync(join(image, "dist/console/index.html"))).toBe(true);
    expect(existsSync(join(image, "node_modules/vitest"))).toBe(false);
    const help = spawnSync(process.execPath, [join(image, "dist/bin.js"), "--help"], { encoding: "utf8" });
    expect(help.stdout).toMatch(/start[\s\S]*mock/);
  });

  it("Compose: two brokers, Redis and the mock, and the config passes with the environment it sets", () => {
    const compose = parseYaml(read("deploy/compose.yaml"), { merge: true }) as {
      services: Record<
        string,
        { environment?: Record<string, string>; volumes?: string[]; command?: string[] }
      >;
    };
    expect(Object.keys(compose.services).sort()).toEqual(["broker-a", "broker-b", "mock", "redis"]);
    expect(compose.services.mock!.command).toEqual(["mock", "--host", "0.0.0.0", "--port", "9000"]);
    for (const name of ["broker-a", "broker-b"]) {
      const service = compose.services[name]!;
      expect(service.volumes).toEqual([
        "./config:/etc/perishable/config:ro",
        "./keys:/etc/perishable/keys:ro",
      ]);
      const env = service.environment!;
      for (const v of variables(join(deploy, "config/perishable.yaml"))) expect(env[v], v).toBeDefined();
      const checked = configCheck(join(deploy, "config/perishable.yaml"), env);
      expect(checked.stderr).toBe("");
      expect(checked.status).toBe(0);
      expect(checked.stdout).toContain("redis redis:6379");
    }
  });

  it("Kubernetes: the manifests have the shape they need, and the config passes with the Secret and env they give", () => {
    const kustomization = parseYaml(read("deploy/kustomization.yaml")) as {
      resources: string[];
      configMapGenerator: { name: string; files: string[] }[];
    };
    const Meta = z.object({
      apiVersion: z.string(),
      kind: z.string(),
      metadata: z.object({ name: z.string() }),
    });
    const docs = kustomization.resources.flatMap((file) =>
      parseAllDocuments(read(join("deploy", file))).map((d) => Meta.passthrough().parse(d.toJS())),
    );
    const find = (kind: string, name: string) =>
      docs.find((d) => d.kind === kind && d.metadata.name === name) as never;
    const secret = find("Secret", "perishable-keys") as { stringData: Record<string, string> };
    const deployment = z
      .object({
        spec: z.object({
          template: z.object({
            spec: z.object({
              securityContext: z.object({ runAsNonRoot: z.literal(true) }),
              containers: z.array(
                z.object({
                  args: z.array(z.string()),
                  readinessProbe: z.object({ httpGet: z.object({ path: z.literal("/readyz") }) }),
                  env: z.array(
                    z.object({
                      name: z.string(),
                      value: z.string().optional(),
                      valueFrom: z
                        .object({ secretKeyRef: z.object({ name: z.string(), key: z.string() }) })
                        .optional(),
                    }),
                  ),
                  volumeMounts: z.array(z.object({ name: z.string(), mountPath: z.string() })),
                }),
              ),
              volumes: z.array(z.record(z.string(), z.unknown())),
            }),
          }),
        }),
      })
      .parse(find("Deployment", "perishable"));
    const broker = deployment.spec.template.spec.containers[0]!;
    const mount = (name: string) => broker.volumeMounts.find((m) => m.name === name)!.mountPath;
    expect(broker.args).toEqual(["start", "--config", `${mount("config")}/perishable.yaml`]);
    expect(kustomization.configMapGenerator[0]!.files).toEqual(["config/perishable.yaml"]);

    // The pod's filesystem, as the kubelet lays it out: the ConfigMap's file and the key files.
    const pod = mkdtempSync(join(tmpdir(), "perishable-pod-"));
    mkdirSync(join(pod, "config"));
    mkdirSync(join(pod, "keys"));
    cpSync(join(deploy, "config/perishable.yaml"), join(pod, "config/perishable.yaml"));
    expect([mount("config"), mount("keys")]).toEqual(["/etc/perishable/config", "/etc/perishable/keys"]);
    for (const key of ["openai", "anthropic"]) writeFileSync(join(pod, "keys", key), secret.stringData[key]!);
    const env: Record<string, string> = {};
    for (const e of broker.env) {
      const ref = e.valueFrom?.secretKeyRef;
      if (ref) expect(secret.stringData[ref.key], ref.key).toBeDefined();
      env[e.name] = e.value ?? secret.stringData[ref!.key]!;
    }
    const checked = configCheck(join(pod, "config/perishable.yaml"), env);
    expect(checked.stderr).toBe("");
    expect(checked.status).toBe(0);
    expect(checked.stdout).not.toContain("REPLACE-ME");
  });
});
