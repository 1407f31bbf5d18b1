import type { z } from "zod";

/** One thing wrong with a config file, with where it is. */
export interface ConfigProblem {
  /** Dotted path into the file (`scopes.llm:complete.upstream`), or "" for the file itself. */
  readonly path: string;
  readonly message: string;
}

/** Thrown when a config cannot be used; carries every problem found, not just the first. */
export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];

  constructor(source: string, problems: readonly ConfigProblem[]) {
    super(
      `${source}: ${problems.length} problem${problems.length === 1 ? "" : "s"}\n${problems
        .map((p) => `  - ${p.path ? `${p.path}: ` : ""}${p.message}`)
        .join("\n")}`,
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Where every section's resolver reports what is wrong: all problems are collected, then reported at once. */
export class Problems {
  readonly list: ConfigProblem[] = [];

  add(path: string, message: string): void {
    this.list.push({ path, message });
  }

  /** zod's issues, under a path prefix (`issuers[0]`), skipping paths already reported. */
  addIssues(issues: readonly z.core.$ZodIssue[], under = "", skip: ReadonlySet<string> = new Set()): void {
    for (const issue of issues) {
      const problem = issueToProblem(issue, under);
      if (!skip.has(problem.path)) this.list.push(problem);
    }
  }

  get empty(): boolean {
    return this.list.length === 0;
  }
}

/** `issuers[0].key`: the same form the interpolation and cross-checks use. */
const formatPath = (path: readonly PropertyKey[]): string =>
  path.reduce<string>(
    (out, part) =>
      typeof part === "number" ? `${out}[${part}]` : out ? `${out}.${String(part)}` : String(part),
    "",
  );

const issueToProblem = (issue: z.core.$ZodIssue, under = ""): ConfigProblem => {
  const inner = formatPath(issue.path);
  const path =
    under && inner ? (inner.startsWith("[") ? `${under}${inner}` : `${under}.${inner}`) : under || inner;
  if (issue.code === "unrecognized_keys") {
    return { path, message: `unknown key${issue.keys.length > 1 ? "s" : ""}: ${issue.keys.join(", ")}` };
  }
  if (issue.code === "invalid_type" && issue.input === undefined) return { path, message: "is required" };
  return { path, message: issue.message };
};
