import { redact } from "@perishable/protocol";

/**
 * Waits for SIGTERM or SIGINT, then runs `stop` (graceful: in-flight streams finish) and exits
 * 0. A second signal while stopping exits at once with 130.
 */
export const runUntilSignal = (stop: () => Promise<void>): Promise<void> =>
  new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write(`perishable: ${signal} again, exiting now\n`);
        process.exit(130);
      }
      stopping = true;
      process.stderr.write(`perishable: ${signal}, finishing in-flight requests\n`);
      stop().then(
        () => {
          resolve();
          process.exit(0);
        },
        (error: unknown) => {
          process.stderr.write(`perishable: error while stopping: ${(error as Error).message}\n`);
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });

/**
 * A promise rejected with nobody to catch it is a bug in the broker (or in a library it uses),
 * not a reason to drop every request in flight: Node's default ends the process. The long-running
 * commands log it instead — name and message through `redact()`, never request data — and carry on.
 */
export const guardUnhandledRejections = (write: (line: string) => void): void => {
  process.on("unhandledRejection", (reason: unknown) => {
    const error =
      reason instanceof Error
        ? { name: reason.name, message: redact(reason.message), stack: redact(reason.stack ?? "") }
        : { message: redact(String(reason)) };
    write(
      `${JSON.stringify({ level: 50, time: Date.now(), msg: "bug: unhandled promise rejection (the broker keeps serving)", err: error })}\n`,
    );
  });
};
