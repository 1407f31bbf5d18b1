import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface FoundRedis {
  readonly url: string;
  /** How it was found, for the log line at the start of a run. */
  readonly source: string;
  /** Stops what this run started (nothing, for a server that was already there). */
  readonly stop: () => Promise<void>;
}

const HOW_TO_GET_ONE = [
  "No Redis for the integration tests. Any one of these works:",
  "  - set REDIS_URL=redis://host:port",
  "  - run redis-server on 127.0.0.1:6379 (redis-server --daemonize yes --save '' --appendonly no)",
  "  - have a Docker engine running (testcontainers starts redis:7-alpine)",
  "  - install the redis-server binary (apt-get install redis-server; brew install redis)",
].join("\n");

/**
 * Finds the Redis the integration tests run against, in the order the style guide fixes:
 * REDIS_URL, a server on 127.0.0.1:6379, testcontainers where Docker runs, a `redis-server`
 * binary on a free port. Fails loudly, never skips.
 */
export const findRedis = async (env: NodeJS.ProcessEnv = process.env): Promise<FoundRedis> => {
  const nothing = async () => {};
  if (env.REDIS_URL) {
    const url = new URL(env.REDIS_URL);
    if (!(await pingRedis(url.hostname, Number(url.port || 6379)))) {
      throw new Error(`REDIS_URL is set but nothing answers PING at ${url.hostname}:${url.port || 6379}`);
    }
    return { url: env.REDIS_URL, source: "REDIS_URL", stop: nothing };
  }
  if (await pingRedis("127.0.0.1", 6379)) {
    return { url: "redis://127.0.0.1:6379", source: "the server on 127.0.0.1:6379", stop: nothing };
  }
  if (await dockerRuns()) {
    const container = await startContainer();
    if (container) return container;
  }
  if (await hasBinary("redis-server")) {
    const server = await startRedisServer();
    return { url: server.url, source: `redis-server on port ${server.port}`, stop: server.stop };
  }
  throw new Error(HOW_TO_GET_ONE);
};

/** True when something at host:port answers a RESP PING with PONG within the timeout. */
export const pingRedis = (host: string, port: number, timeoutMs = 1000): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection({ host, port });
    let answer = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on("error", () => done(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (data) => {
      answer += data.toString("latin1");
      if (answer.includes("\r\n")) done(answer.startsWith("+PONG"));
    });
  });

const run = (file: string, args: string[], timeoutMs: number): Promise<boolean> =>
  new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs }, (error) => resolve(!error));
  });

const dockerRuns = () => run("docker", ["info"], 5000);
const hasBinary = (name: string) => run(name, ["--version"], 5000);

const startContainer = async (): Promise<FoundRedis | undefined> => {
  try {
    const { GenericContainer, Wait } = await import("testcontainers");
    const container = await new GenericContainer("redis:7-alpine")
      .withExposedPorts(6379)
      .withWaitStrategy(Wait.forLogMessage("Ready to accept connections"))
      .start();
    const url = `redis://${container.getHost()}:${container.getMappedPort(6379)}`;
    return {
      url,
      source: "testcontainers (redis:7-alpine)",
      stop: async () => void (await container.stop()),
    };
  } catch {
    return undefined;
  }
};

/** A free TCP port on 127.0.0.1 (asked of the OS, then released). */
export const freePort = async (): Promise<number> => {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise((resolve) => server.close(resolve));
  return port;
};

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** Stops the server (SIGTERM; SIGKILL after 5 s). Safe to call twice. */
  stop(): Promise<void>;
  /** Starts it again on the same port (for fault tests). */
  start(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open, nothing answers. */
  pause(): void;
  /** Thaws it (SIGCONT). */
  resume(): void;
  /** The server's process id while it runs (for CPU accounting in benchmarks). */
  pid(): number | undefined;
  readonly [Symbol.asyncDispose]: () => Promise<void>;
}

export interface RedisServerOptions {
  readonly port?: number;
  readonly args?: readonly string[];
  /** Keep data across stop/start (an append-only file in a temporary directory). */
  readonly durable?: boolean;
  /** Pin the server to this CPU core (taskset), for benchmarks. */
  readonly cpu?: number;
}

/** The command line of a private server: nothing on disk unless durable, pinned when asked. */
const serverCommand = (port: number, options: RedisServerOptions, dir: string): [string, string[]] => {
  // The directory is the server's own: an append-only file when durable, and the RDB file a
  // replica's full sync writes (never into the cwd).
  const durable = options.durable ? ["--appendonly", "yes", "--appendfsync", "always"] : [];
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
    ...durable,
    ...(options.args ?? []),
  ];
  return options.cpu === undefined
    ? ["redis-server", args]
    : ["taskset", ["-c", String(options.cpu), "redis-server", ...args]];
};

/**
 * A private `redis-server` on a free port, with nothing on disk unless `durable`: for fault tests
 * (stop and restart it) and anything that must not touch the shared server.
 */
export const startRedisServer = async (options: RedisServerOptions = {}): Promise<RedisServer> => {
  const port = options.port ?? (await freePort());
  // Once: a durable server keeps its directory across stop/start.
  const dir = mkdtempSync(join(tmpdir(), "perishable-redis-"));
  const [command, args] = serverCommand(port, options, dir);
  let child: ChildProcess | undefined;
  const start = async () => {
    if (child) return;
    const proc = spawn(command, args, { stdio: "ignore" });
    child = proc;
    proc.once("exit", () => {
      if (child === proc) child = undefined;
    });
    const deadline = Date.now() + 10_000;
    while (!(await pingRedis("127.0.0.1", port, 200))) {
      if (Date.now() > deadline || !child) throw new Error(`redis-server did not start on port ${port}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const stop = async () => {
    const proc = child;
    if (!proc) return;
    child = undefined;
    const exited = once(proc, "exit");
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  await start();
  const signal = (name: NodeJS.Signals) => () => {
    child?.kill(name);
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      child?.kill("SIGCONT");
      await stop();
    },
    start,
    pause: signal("SIGSTOP"),
    pid: () => child?.pid,
    resume: signal("SIGCONT"),
    [Symbol.asyncDispose]: async () => {
      child?.kill("SIGCONT");
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
};
