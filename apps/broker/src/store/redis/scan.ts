import { grantTree } from "@perishable/protocol";
import type { Redis } from "ioredis";
import type { RuleSubject } from "../../policy/revocation.js";
import { type Client, call } from "./client.js";
import { GRANT_FIELDS } from "./schema.js";

/** Grants read per SCAN step of a walk or a listing. */
export const SCAN_COUNT = 2_000;

/** Every key matching `pattern` on every master, a SCAN batch at a time (the one walk of the store). */
export async function* keyBatches(masters: readonly Redis[], pattern: string): AsyncGenerator<string[]> {
  for (const master of masters) {
    let cursor = "0";
    do {
      const [next, keys] = await call(() => master.scan(cursor, "MATCH", pattern, "COUNT", SCAN_COUNT));
      cursor = next;
      if (keys.length > 0) yield keys;
    } while (cursor !== "0");
  }
}

/** What a revocation rule looks at, for each grant key of a batch (those still there). */
export const ruleSubjects = async (
  redis: Client,
  keys: readonly string[],
): Promise<{ id: string; tree: string; notAfter: number; subject: RuleSubject }[]> => {
  const fields = await call(() =>
    Promise.all(
      keys.map((key) =>
        redis.hmget(key, ...GRANT_FIELDS("agent", "scopes", "rootId", "createdAt", "notAfter", "onBehalfOf")),
      ),
    ),
  );
  return fields.flatMap(([agent, scopes, root, ca, na, obo], i) => {
    const id = keys[i]!.slice(keys[i]!.lastIndexOf(":") + 1);
    const tree = grantTree(id);
    if (!root || !ca || !na || !tree) return [];
    const subject = {
      agent: agent ?? "",
      scopes: scopes ? scopes.split(",") : [],
      rootId: root,
      onBehalfOf: obo ?? undefined,
      createdAt: Number(ca),
    };
    return [{ id, tree, notAfter: Number(na), subject }];
  });
};
