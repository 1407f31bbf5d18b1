import { redact } from "@perishable/protocol";
import { caseVariant } from "./json-keys.js";

/**
 * The tools a request body declares to the model, and the ones it forces, as names a scope's
 * `tools` globs are matched against. Named tools (function and custom tools) by their name;
 * every other tool is a built-in or server tool, matched by its `type` as written
 * (`web_search_20250305`), whatever name it also carries. Tools mentioned in the conversation
 * (assistant tool calls, tool results, `tool_use` blocks) are history, not declarations.
 *
 *   OpenAI chat       tools[].function.name, tools[].custom.name, legacy functions[].name;
 *                     tool_choice {type:"function", function:{name}}, {type:"custom", custom:{name}},
 *                     {type:"allowed_tools", allowed_tools:{tools:[…]}}; function_call {name}
 *   OpenAI Responses  tools[].name of function/custom tools, tools[].type of the rest;
 *                     tool_choice {type:"function", name}, {type:<built-in>}, allowed_tools
 *   Anthropic         tools[].name without a type or with type "custom", tools[].type of the rest;
 *                     tool_choice {type:"tool", name}
 * `auto`, `none`, `required` and `any` force nothing.
 */
export type ToolNames =
  | { readonly ok: true; readonly declared: readonly string[]; readonly forced: readonly string[] }
  /** The body's tools cannot be read one way only: a 400, whatever the scope. */
  | { readonly ok: false; readonly malformed: string };

const NAMED = new Set(["function", "custom"]);
const NOTHING_FORCED = new Set(["auto", "none", "required", "any"]);

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

class Malformed extends Error {}
const malformed = (message: string): never => {
  throw new Malformed(message);
};

const checked = (o: Json, where: string): Json => {
  const variant = caseVariant(o);
  if (variant !== undefined)
    malformed(`${where} has keys that differ only in case (${variant.slice(0, 64)})`);
  return o;
};

const nameOf = (value: unknown, where: string): string =>
  typeof value === "string" && value.length > 0 ? value : malformed(`${where} must be a non-empty string`);

/** One tool definition → the name its scope entry must match. */
const declaredName = (tool: unknown, i: number, list: string): string => {
  if (!isObject(tool)) return malformed(`${list}[${i}] must be an object`);
  checked(tool, `${list}[${i}]`);
  const type = tool.type;
  if (type !== undefined && typeof type !== "string") return malformed(`${list}[${i}].type must be a string`);
  if (type === undefined || NAMED.has(type)) {
    const inner = type === undefined ? undefined : tool[type];
    if (isObject(inner))
      return nameOf(checked(inner, `${list}[${i}].${type}`).name, `${list}[${i}].${type}.name`);
    return nameOf(tool.name, `${list}[${i}].name`);
  }
  return type;
};

/** A forced choice → the names it forces (none for auto/none/required/any). */
const forcedNames = (choice: unknown, where: string): string[] => {
  if (choice === undefined || choice === null) return [];
  if (typeof choice === "string") return NOTHING_FORCED.has(choice) ? [] : [choice];
  if (!isObject(choice)) return malformed(`${where} must be a string or an object`);
  checked(choice, where);
  const type = choice.type;
  if (type === undefined) return [nameOf(choice.name, `${where}.name`)]; // legacy function_call {name}
  if (typeof type !== "string") return malformed(`${where}.type must be a string`);
  if (NOTHING_FORCED.has(type)) return [];
  if (type === "allowed_tools") {
    const allowed = isObject(choice.allowed_tools) ? choice.allowed_tools : choice;
    const tools = allowed.tools;
    if (!Array.isArray(tools)) return malformed(`${where}.allowed_tools.tools must be an array`);
    return tools.map((t, i) => declaredName(t, i, `${where}.allowed_tools.tools`));
  }
  if (type === "tool" || NAMED.has(type)) {
    const inner = choice[type];
    if (isObject(inner)) return [nameOf(checked(inner, `${where}.${type}`).name, `${where}.${type}.name`)];
    return [nameOf(choice.name, `${where}.name`)];
  }
  return [type];
};

/** Every tool a body declares or forces; a malformed `tools`, `functions` or choice is reported. */
export const toolNames = (body: Json): ToolNames => {
  try {
    const declared: string[] = [];
    for (const list of ["tools", "functions"] as const) {
      const value = body[list];
      if (value === undefined || value === null) continue;
      if (!Array.isArray(value)) return { ok: false, malformed: `${list} must be an array` };
      for (const [i, tool] of value.entries())
        declared.push(
          list === "functions"
            ? nameOf(
                isObject(tool) ? checked(tool, `functions[${i}]`).name : undefined,
                `functions[${i}].name`,
              )
            : declaredName(tool, i, list),
        );
    }
    const forced = [
      ...forcedNames(body.tool_choice, "tool_choice"),
      ...forcedNames(body.function_call, "function_call"),
    ];
    return { ok: true, declared, forced };
  } catch (error) {
    if (error instanceof Malformed) return { ok: false, malformed: error.message };
    throw error;
  }
};

/** The first declared or forced tool no glob allows, as the denial names it (redacted), or undefined. */
export const disallowedTool = (
  names: { declared: readonly string[]; forced: readonly string[] },
  allowed: readonly RegExp[],
): string | undefined => {
  const pass = (name: string) => allowed.some((re) => re.test(name));
  const declared = names.declared.find((n) => !pass(n));
  if (declared !== undefined) return `tool ${JSON.stringify(redact(declared.slice(0, 100)))} is not allowed`;
  const forced = names.forced.find((n) => !pass(n));
  if (forced !== undefined)
    return `tool_choice forces ${JSON.stringify(redact(forced.slice(0, 100)))}, which is not allowed`;
  return undefined;
};
