import { type Inputs, useEffect } from "preact/hooks";

/**
 * Runs `poll` now and then every `everyMs` while the component is mounted and `inputs` are the
 * same. `alive()` turns false once the effect is torn down, so a late answer is not applied to a
 * view that has moved on. A failed poll is left to the next one.
 */
export const usePolling = (
  poll: (alive: () => boolean) => Promise<void>,
  everyMs: number,
  inputs: Inputs,
): void => {
  useEffect(() => {
    let stopped = false;
    const alive = () => !stopped;
    const tick = () => {
      poll(alive).catch(() => {
        // the next poll tries again
      });
    };
    tick();
    const timer = setInterval(tick, everyMs);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, inputs);
};
