export interface RateLimit {
  readonly limit: number;
  readonly windowMs: number;
}

const UNITS: Readonly<Record<string, number>> = {
  s: 1_000,
  sec: 1_000,
  second: 1_000,
  seconds: 1_000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
};

const RATE = /^\s*(\d{1,9})\s*\/\s*(\d{1,6})?\s*([a-z]+)\s*$/;

/** Parses `100/minute`, `10/s`, `5000/1h`, `20/10m`. Returns undefined for anything else. */
export const parseRateLimit = (text: string): RateLimit | undefined => {
  const match = RATE.exec(text);
  if (!match) return undefined;
  const unit = UNITS[match[3]!];
  const limit = Number(match[1]);
  const count = match[2] === undefined ? 1 : Number(match[2]);
  if (unit === undefined || limit < 1 || count < 1) return undefined;
  return { limit, windowMs: unit * count };
};
