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
