import type { z } from "zod";
import { BrokerError } from "../errors.js";

/** Reads a request body, query or params through a zod schema; a mismatch is a 400 naming the first problem's path. */
export const parseInput = <T>(schema: z.ZodType<T>, body: unknown): T => {
  const result = schema.safeParse(body ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const where = issue.path.length > 0 ? `${issue.path.map(String).join(".")}: ` : "";
  const what = issue.code === "unrecognized_keys" ? `unknown field ${issue.keys.join(", ")}` : issue.message;
  throw new BrokerError("bad_request", `${where}${what}`);
};
