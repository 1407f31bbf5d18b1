/** A command as MONITOR shows it, read for counting what a proxied request costs Redis. */
export interface Seen {
  /** Lower-case command name. */
  readonly command: string;
  /** Its first key (a script's KEYS[1]), if any. */
  readonly key: string | undefined;
  /**
   * True for what is not a client's request-path command: commands a script runs (MONITOR marks
   * them "lua") and every node's background work — rule reloads, expiry claims, batched audit
   * writes, heartbeats and node-bus messages.
   */
  readonly background: boolean;
}

/** Reads one MONITOR line (`monitor.on("monitor", (time, args, source) => …)`). */
export const seenCommand = (args: readonly string[], source: string): Seen => {
  const command = args[0]!.toLowerCase();
  const key = command === "evalsha" || command === "eval" ? args[3] : args[1];
  const background =
    source === "lua" || /:(rules|expiries|audit|nodes)$/.test(key ?? "") || command === "publish";
  return { command, key, background };
};
