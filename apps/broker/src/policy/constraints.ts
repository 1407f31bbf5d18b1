import { redact } from "@perishable/protocol";
import { disallowedTool, toolNames } from "./tools.js";

/** Body constraints of a scope, compiled. */
export interface BodyConstraints {
  /** Allowed `model` values (globs), or undefined for any. */
  readonly models?: readonly RegExp[];
  readonly modelGlobs?: readonly string[];
  /** Ceiling on the output-token fields, or undefined for none. */
  readonly maxTokens?: number;
  /** How many choices (`n`, `best_of`) one request may ask for at the full ceiling; default 1. */
  readonly maxChoices?: number;
  /** Tools a body may declare or force (globs), or undefined for any. */
  readonly tools?: readonly RegExp[];
  readonly toolGlobs?: readonly string[];
}

/** The fields different APIs use for the output-token limit (Chat, Completions, Anthropic, Responses). */
const TOKEN_FIELDS = ["max_tokens", "max_completion_tokens", "max_output_tokens"] as const;
export type OutputField = (typeof TOKEN_FIELDS)[number];

/** Fields that multiply output: each choice may use the whole limit. */
const CHOICE_FIELDS = ["n", "best_of"] as const;

/**
 * The output-limit field an endpoint reads, by the path's last segments: what the broker fills
 * in when a body states none. `null`: the endpoint produces no output (nothing to bound);
 * `undefined`: not an endpoint the broker knows, so the body must state its own limit.
 * Chat completions get `max_completion_tokens`, which every current OpenAI chat model accepts
 * (reasoning models refuse `max_tokens`).
 */
export const outputFieldOf = (path: string): OutputField | null | undefined => {
  if (path.endsWith("/chat/completions")) return "max_completion_tokens";
  if (path.endsWith("/completions")) return "max_tokens";
  if (path.endsWith("/responses")) return "max_output_tokens";
  if (path.endsWith("/v1/messages")) return "max_tokens";
  if (path.endsWith("/count_tokens")) return null;
  return undefined;
};

/** What the body check decided: refused with a reason, or allowed, with a limit to fill in. */
export type BodyVerdict =
  /** `malformed`: the body cannot be read one way only (a 400 whatever the scope). */
  | { readonly ok: false; readonly reason: string; readonly malformed?: boolean }
  | { readonly ok: true; readonly fill?: { readonly field: OutputField; readonly value: number } };

const PASS: BodyVerdict = Object.freeze({ ok: true });
const refuse = (reason: string): BodyVerdict => ({ ok: false, reason });

export const hasConstraints = (c: BodyConstraints): boolean =>
  c.models !== undefined || c.maxTokens !== undefined || c.tools !== undefined;

/**
 * Checks a parsed JSON body against a scope's constraints. A ceiling is a ceiling on what the
 * upstream will produce: a stated limit above it is refused; a body that states none would get
 * the upstream's default (often the model's maximum), so the ceiling is filled in, in the field
 * the endpoint reads (`output`). Choices multiply output: `n` × limit is held to the ceiling
 * times the scope's `maxChoices`.
 */
export const checkBodyConstraints = (
  body: unknown,
  c: BodyConstraints,
  output: OutputField | null | undefined,
): BodyVerdict => {
  if (body === null || typeof body !== "object" || Array.isArray(body))
    return refuse("the body must be a JSON object");
  const record = body as Record<string, unknown>;
  if (c.models) {
    const model = record.model;
    if (typeof model !== "string") return refuse("the body must name a model");
    if (!c.models.some((re) => re.test(model))) {
      return refuse(
        `model ${JSON.stringify(redact(model.slice(0, 100)))} is not allowed (allowed: ${c.modelGlobs?.join(", ")})`,
      );
    }
  }
  if (c.tools) {
    const names = toolNames(record);
    if (!names.ok) return { ok: false, reason: names.malformed, malformed: true };
    const refused = disallowedTool(names, c.tools);
    if (refused) return refuse(`${refused} (allowed: ${c.toolGlobs?.join(", ")})`);
  }
  return c.maxTokens === undefined ? PASS : checkCeiling(record, c.maxTokens, c.maxChoices ?? 1, output);
};

const checkCeiling = (
  record: Record<string, unknown>,
  ceiling: number,
  maxChoices: number,
  output: OutputField | null | undefined,
): BodyVerdict => {
  let choices = 1;
  for (const field of CHOICE_FIELDS) {
    const value = record[field];
    if (value === undefined || value === null) continue;
    if (!isCount(value) || value < 1) return refuse(`${field} must be a positive whole number`);
    choices = Math.max(choices, value);
  }
  // The most one choice may produce, so that all of them together stay within the allowance.
  const allowance = ceiling * maxChoices;
  const perChoice = Math.min(ceiling, Math.floor(allowance / choices));
  let stated: number | undefined;
  for (const field of TOKEN_FIELDS) {
    const value = record[field];
    if (value === undefined || value === null) continue;
    if (!isCount(value)) return refuse(`${field} must be a whole number`);
    if (value > ceiling) return refuse(`${field} ${value} is above the ceiling of ${ceiling}`);
    if (value > perChoice) {
      return refuse(
        `${choices} choices × ${field} ${value} is above the ceiling of ${ceiling} × ${maxChoices} (max_choices)`,
      );
    }
    stated = Math.max(stated ?? 0, value);
  }
  if (stated !== undefined || output === null) return PASS;
  if (output === undefined) return refuse(`the body must set max_tokens (at most ${ceiling})`);
  if (perChoice < 1) return refuse(`${choices} choices are more than the ceiling of ${ceiling} allows`);
  return { ok: true, fill: { field: output, value: perChoice } };
};

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= 0;
