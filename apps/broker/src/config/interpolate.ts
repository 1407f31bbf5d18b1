import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";

export interface InterpolationContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Relative `${file:…}` paths resolve against this directory (the config file's). */
  readonly baseDir: string;
}

export interface InterpolationProblem {
  readonly path: string;
  readonly message: string;
}

const PLACEHOLDER = /\$\$\{|\$\{([^}]*)\}/g;
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Replaces `${VAR}` with an environment variable and `${file:path}` with a file's trimmed
 * content in every string value of a parsed YAML document (keys are left alone). `$${` stands
 * for a literal `${`. Substitution happens after parsing, so a value can never inject YAML.
 * Problems are collected with their paths; messages name the variable or file, never a value.
 */
export const interpolate = (
  value: unknown,
  ctx: InterpolationContext,
  problems: InterpolationProblem[],
  path = "",
): unknown => {
  if (typeof value === "string") return interpolateString(value, ctx, problems, path);
  if (Array.isArray(value)) return value.map((item, i) => interpolate(item, ctx, problems, `${path}[${i}]`));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value)) {
      out[key] = interpolate(child, ctx, problems, path ? `${path}.${key}` : key);
    }
    return out;
  }
  return value;
};

/**
 * A value written with `${file:…}` in it, kept so it can be read again when its file changes
 * (a rotated key): the template, the files it reads, and the environment variables it uses as
 * they were at load (environment does not change under a running process).
 */
export interface Rereadable {
  readonly template: string;
  readonly baseDir: string;
  readonly files: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

export const rereadable = (template: unknown, ctx: InterpolationContext): Rereadable | undefined => {
  if (typeof template !== "string" || !template.includes("${file:")) return undefined;
  const files: string[] = [];
  const env: Record<string, string> = {};
  for (const [, inner] of template.matchAll(PLACEHOLDER)) {
    const ref = (inner ?? "").trim();
    if (ref.startsWith("file:")) {
      const file = ref.slice("file:".length).trim();
      if (file) files.push(isAbsolute(file) ? file : resolve(ctx.baseDir, file));
    } else if (ref && ctx.env[ref] !== undefined) env[ref] = ctx.env[ref]!;
  }
  return { template, baseDir: ctx.baseDir, files, env };
};

/** Reads a kept value again: the value, or the problems (which name files, never values). */
export const reread = (source: Rereadable): { value: string; problems: readonly InterpolationProblem[] } => {
  const problems: InterpolationProblem[] = [];
  const value = interpolateString(
    source.template,
    { env: source.env, baseDir: source.baseDir },
    problems,
    "",
  );
  return { value, problems };
};

const interpolateString = (
  input: string,
  ctx: InterpolationContext,
  problems: InterpolationProblem[],
  path: string,
): string =>
  input.replace(PLACEHOLDER, (match, inner: string | undefined) => {
    if (match === "$${") return "${";
    const ref = (inner ?? "").trim();
    if (ref.startsWith("file:")) {
      const file = ref.slice("file:".length).trim();
      if (!file) {
        problems.push({ path, message: "${file:} needs a path" });
        return "";
      }
      const full = isAbsolute(file) ? file : resolve(ctx.baseDir, file);
      try {
        return readFileSync(full, "utf8").trim();
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code ?? "unreadable";
        problems.push({ path, message: `cannot read file ${file} (${reason})` });
        return "";
      }
    }
    if (!VAR_NAME.test(ref)) {
      problems.push({
        path,
        message: `\${${ref}} is not a valid placeholder: use \${NAME} or \${file:path}`,
      });
      return "";
    }
    const found = ctx.env[ref];
    if (found === undefined || found === "") {
      problems.push({ path, message: `environment variable ${ref} is not set` });
      return "";
    }
    return found;
  });
