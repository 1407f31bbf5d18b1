import { redact } from "@perishable/protocol";

/** Body constraints of a scope, compiled. */
export interface BodyConstraints {
  /** Allowed `model` values (globs), or undefined for any. */
  readonly models?: readonly RegExp[];
  readonly modelGlobs?: readonly string[];
  /** Ceiling on the output-token fields, or undefined for none. */
  readonly maxTokens?: number;
}

/** The fields different APIs use for the output-token ceiling (Chat, Completions, Anthropic, Responses). */
const TOKEN_FIELDS = ["max_tokens", "max_completion_tokens", "max_output_tokens"] as const;

export const hasConstraints = (c: BodyConstraints): boolean =>
  c.models !== undefined || c.maxTokens !== undefined;

/**
 * Checks a parsed JSON body against a scope's constraints; returns the reason it fails, or
 * undefined when it passes. A ceiling is a ceiling: a body that does not state max_tokens would
 * get the upstream's default (often the model's maximum), so it is refused, not waved through.
 */
export const checkBodyConstraints = (body: unknown, c: BodyConstraints): string | undefined => {
  if (body === null || typeof body !== "object" || Array.isArray(body))
    return "the body must be a JSON object";
  const record = body as Record<string, unknown>;
  if (c.models) {
    const model = record.model;
    if (typeof model !== "string") return "the body must name a model";
    if (!c.models.some((re) => re.test(model))) {
      return `model ${JSON.stringify(redact(model.slice(0, 100)))} is not allowed (allowed: ${c.modelGlobs?.join(", ")})`;
    }
  }
  if (c.maxTokens !== undefined) {
    let stated = false;
    for (const field of TOKEN_FIELDS) {
      const value = record[field];
      if (value === undefined || value === null) continue;
      if (typeof value !== "number" || !Number.isInteger(value) || value < 0)
        return `${field} must be a whole number`;
      if (value > c.maxTokens) return `${field} ${value} is above the ceiling of ${c.maxTokens}`;
      stated = true;
    }
    if (!stated) return `the body must set max_tokens (at most ${c.maxTokens})`;
  }
  return undefined;
};
