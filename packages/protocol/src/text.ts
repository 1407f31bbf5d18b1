import { redact } from "./redact.js";

/**
 * Characters that change what a terminal or a reader sees rather than being seen: C0 controls
 * (ANSI escapes start with ESC; CR rewrites a line; LF forges one), DEL, C1 controls, the line
 * and paragraph separators, and the bidirectional overrides and isolates that reorder text.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const UNSEEN = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const visible = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** Text with every control, separator and bidi character shown as a visible `\uXXXX` escape. */
export const neutralize = (text: string): string => text.replace(UNSEEN, visible);

/** Whether text has nothing `neutralize` would change (for validating claims and names). */
export const isPrintable = (text: string): boolean => {
  UNSEEN.lastIndex = 0;
  return !UNSEEN.test(text);
};

/**
 * What caller-supplied text becomes before it lands in an error message, an audit event or a
 * log line: credentials masked, controls made visible, length bounded. The one choke point.
 */
export const callerText = (text: string, max = 512): string => {
  const safe = redact(neutralize(text));
  return safe.length > max ? `${safe.slice(0, max)}…` : safe;
};

/** A parsed JSON value with every string in it neutralized (for views that print API data). */
export const neutralizeDeep = <T>(value: T): T => {
  if (typeof value === "string") return neutralize(value) as T;
  if (Array.isArray(value)) return value.map(neutralizeDeep) as T;
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [neutralize(k), neutralizeDeep(v)])) as T;
  }
  return value;
};

/**
 * JSON text safe for a terminal: JSON.stringify escapes C0 controls in strings but writes DEL,
 * C1 controls, separators and bidi characters raw. They are written as `\uXXXX` escapes here
 * (the same value to any JSON reader); structural newlines of pretty-printed output stay.
 */
export const terminalJson = (json: string): string =>
  json.replace(UNSEEN, (c) => (c === "\n" ? c : visible(c)));
