import { neutralize } from "@perishable/protocol";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { newKey } from "../auth/secrets.js";
import { startBroker } from "../broker.js";
import { DEFAULTS } from "../config/defaults.js";
import { ConfigError, loadConfigFile } from "../config/load.js";
import type { BrokerConfig } from "../config/types.js";
import { startMockUpstream } from "../dev/mock-upstream.js";
import { describeStore } from "../store/open.js";
import { StoreUnavailableError } from "../store/types.js";
import { CliError, EXIT } from "./client.js";
import { runDev } from "./dev.js";
import { registerOps } from "./ops.js";
import { guardUnhandledRejections, runUntilSignal } from "./signals.js";

const port = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("a port number (0-65535)");
  return n;
};

const configPath = (given: string | undefined, env: NodeJS.ProcessEnv): string =>
  given ?? env.PERISHABLE_CONFIG ?? "perishable.yaml";

export const buildCli = (env: NodeJS.ProcessEnv = process.env): Command => {
  const program = new Command()
    .name("perishable")
    .description("Short-lived, scoped, revocable credentials for AI agents: the broker")
    .showHelpAfterError()
    .exitOverride();

  program
    .command("dev")
    .description("run a development broker: in-memory store, example upstreams, fresh keys printed once")
    .option("-p, --port <port>", "port to listen on", port, DEFAULTS.port)
    .action(async (opts: { port: number }) => {
      guardUnhandledRejections((line) => process.stderr.write(line));
      await runDev({ port: opts.port, env, out: (line) => process.stdout.write(`${line}\n`) });
    });

  program
    .command("start")
    .description("run the broker with a config file")
    .option("-c, --config <file>", "config file (default: $PERISHABLE_CONFIG or ./perishable.yaml)")
    .action(async (opts: { config?: string }) => {
      const config = loadConfigFile(configPath(opts.config, env), { env });
      guardUnhandledRejections((line) => process.stderr.write(line));
      const broker = await startBroker(config);
      // SIGHUP: read the upstream keys that come from files again (a rotation a watch missed), and
      // the config file: its scopes and prices are applied if the whole file is valid and fits.
      process.on("SIGHUP", () => {
        broker.server.keys.reload();
        try {
          broker.server.applyConfig(loadConfigFile(configPath(opts.config, env), { env }));
        } catch (error) {
          const problems = error instanceof ConfigError ? error.message : String(error);
          broker.server.app.log.error({ problems }, "config not reloaded: the old one keeps serving");
        }
      });
      await runUntilSignal(() => broker.close());
    });

  const configCommand = program.command("config").description("work with config files");
  configCommand
    .command("check")
    .description("validate a config file and print what it sets up (never a secret)")
    .option("-c, --config <file>", "config file (default: $PERISHABLE_CONFIG or ./perishable.yaml)")
    .action((opts: { config?: string }) => {
      const file = configPath(opts.config, env);
      const config = loadConfigFile(file, { env });
      process.stdout.write(`${file}: ok\n${summarize(config)}\n`);
    });

  registerOps(program, { env, out: (text) => process.stdout.write(`${text}\n`) });

  program
    .command("mock")
    .description(
      "run the built-in mock upstream (OpenAI- and Anthropic-shaped answers) for demos: no real provider is called",
    )
    .option("-p, --port <port>", "port to listen on", port, 9000)
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .action(async (opts: { port: number; host: string }) => {
      const mock = await startMockUpstream({ host: opts.host, port: opts.port, record: false });
      process.stdout.write(`mock upstream on ${mock.url}\n`);
      await runUntilSignal(() => mock.close());
    });

  program
    .command("keygen")
    .description("print a new random key (for an issuer, an admin or the broker secret)")
    .option("--prefix <prefix>", "prefix for the key", "key")
    .action((opts: { prefix: string }) => {
      process.stdout.write(`${newKey(opts.prefix)}\n`);
    });

  return program;
};

const summarize = (config: BrokerConfig): string =>
  [
    `  listen     ${config.listen.host}:${config.listen.port}`,
    `  store      ${describeStore(config)}`,
    `  upstreams  ${[...config.upstreams.values()].map((u) => `${u.name} (${u.origin}${u.basePath})`).join(", ")}`,
    `  scopes     ${[...config.scopes.keys()].join(", ")}`,
    `  issuers    ${config.issuers.map((i) => `${i.name} (${i.kind === "oidc" ? `OIDC ${i.issuer}` : "key"}) [${[...i.scopes].join(", ")}]`).join(", ") || "none"}`,
    `  admins     ${config.admins.map((a) => a.name).join(", ") || "none"}`,
    `  prices     ${[...config.prices].map(([u, p]) => `${u} (${p.map((x) => x.glob).join(", ")})`).join(", ") || "none (under a budget, model calls are refused)"}; budget lease ${config.budgets.leaseMs / 1000}s`,
    `  limits     default_ttl ${config.limits.defaultTtl / 1000}s, max_ttl ${config.limits.maxTtl / 1000}s, max_lifetime ${config.limits.maxLifetime / 1000}s, max_depth ${config.limits.maxDepth}`,
  ].join("\n");

/** Runs the CLI; resolves to the exit code (long-running commands exit from their signal handler). */
export const main = async (
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> => {
  try {
    await buildCli(env).parseAsync([...argv], { from: "user" });
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (error instanceof CliError) {
      process.stderr.write(`perishable: ${neutralize(error.message)}\n`);
      return error.exitCode;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`perishable: invalid config\n${error.message}\n`);
      return EXIT.usage;
    }
    if (error instanceof StoreUnavailableError) {
      process.stderr.write(`perishable: cannot start: ${error.message}\n`);
      return EXIT.failed;
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE" || code === "EACCES") {
      process.stderr.write(`perishable: cannot listen: ${(error as Error).message}\n`);
      return EXIT.failed;
    }
    process.stderr.write(`perishable: ${(error as Error).message ?? String(error)}\n`);
    return EXIT.failed;
  }
};
