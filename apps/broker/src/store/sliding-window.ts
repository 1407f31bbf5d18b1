/**
 * The rate limit's sliding window, as both stores decide it (the Lua in `scripts.ts` is the same
 * arithmetic): the previous window's count weighted by how much of it still overlaps, plus the
 * current window's. Pure, so the memory store's use of it is the readable spec of the script.
 */
export interface WindowCounts {
  /** Requests counted in the current window and the one before. */
  readonly current: number;
  readonly previous: number;
  readonly windowMs: number;
  /** How far into the current window `now` is (ms). */
  readonly into: number;
  readonly limit: number;
}

/** Undefined when one more request fits; else how long until it would (ms). */
export const windowWait = ({
  current,
  previous,
  windowMs,
  into,
  limit,
}: WindowCounts): number | undefined => {
  const estimate = (previous * (windowMs - into)) / windowMs + current;
  if (estimate + 1 <= limit) return undefined;
  return current + 1 > limit || previous === 0
    ? windowMs - into
    : Math.ceil(((estimate + 1 - limit) * windowMs) / previous);
};
