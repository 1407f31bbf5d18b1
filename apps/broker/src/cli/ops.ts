import {
  type AdminClient,
  type AuditPage,
  neutralize,
  type RevocationSelector,
  TokenResponse,
  terminalJson,
} from "@perishable/protocol";
import { type Command, InvalidArgumentError, Option } from "commander";
import { adminApi, apiClient, CliError, EXIT, keyFromEnv } from "./client.js";
import { auditLine, drawTree, GRANT_HEADER, grantRow, relative, table } from "./format.js";
import { registerHelper } from "./helper.js";

export interface OpsIo {
  readonly env: NodeJS.ProcessEnv;
  readonly out: (text: string) => void;
}

const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("a positive whole number");
  return n;
};
const dollars = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("an amount of US dollars, e.g. 2.50");
  return n;
};
/** --budget-usd and --budget-tokens as the request's budget (empty when neither is given). */
const budgetOf = (o: { budgetUsd?: number; budgetTokens?: number }) => ({
  ...(o.budgetUsd === undefined ? {} : { usd: o.budgetUsd }),
  ...(o.budgetTokens === undefined ? {} : { tokens: o.budgetTokens }),
});
const isoTime = (value: string): string => {
  if (Number.isNaN(Date.parse(value)))
    throw new InvalidArgumentError("an ISO-8601 time, e.g. 2026-11-22T10:00:00Z");
  return new Date(value).toISOString();
};

const urlOption = (env: NodeJS.ProcessEnv) =>
  new Option("--url <url>", "the broker (default: $PERISHABLE_URL or http://127.0.0.1:8420)").default(
    env.PERISHABLE_URL ?? "http://127.0.0.1:8420",
  );
const jsonOption = new Option("--json", "print JSON for scripts instead of a table");

/** What every operator command needs: where to print, the admin client, and `--json` printing. */
interface OpsContext {
  readonly env: NodeJS.ProcessEnv;
  readonly out: (text: string) => void;
  readonly admin: (url: string) => AdminClient;
  readonly print: (json: boolean, value: unknown, human: () => string) => void;
}

/** The operator's commands: they talk to a running broker with keys from the environment. */
export const registerOps = (program: Command, io: OpsIo): void => {
  const { env, out } = io;
  const ctx: OpsContext = {
    env,
    out,
    admin: (url: string) => adminApi(url, keyFromEnv(env, "PERISHABLE_ADMIN_KEY")),
    print: (json, value, human) =>
      out(
        json ? terminalJson(JSON.stringify(value, null, 2)) : human().split("\n").map(neutralize).join("\n"),
      ),
  };
  for (const register of [registerIssue, registerRevoke, registerGrants, registerAudit])
    register(program, ctx);
};

/** `token issue`: a root grant and its first token, with an issuer key. */
const registerIssue = (program: Command, { env, print, out }: OpsContext): void => {
  const token = program.command("token").description("tokens");
  registerHelper(token, { env, out, url: urlOption(env) });
  token
    .command("issue")
    .description("issue a root grant and its first token (issuer key from $PERISHABLE_ISSUER_KEY)")
    .requiredOption("-s, --scope <scope...>", "scopes to grant")
    .option("--ttl <seconds>", "token lifetime", positiveInt)
    .option("--lifetime <seconds>", "grant lifetime (notAfter)", positiveInt)
    .option("--agent <name>", "agent name")
    .option("--task <task>", "task label")
    .option("--on-behalf-of <who>", "who the grant acts for (user:alice)")
    .option("--max-uses <n>", "proxied calls allowed", positiveInt)
    .option("--budget-usd <dollars>", "what the grant and its sub-agents may spend, in US dollars", dollars)
    .option("--budget-tokens <n>", "…or in tokens (input + output)", positiveInt)
    .option("--max-concurrent <n>", "requests in flight at once", positiveInt)
    .addOption(urlOption(env))
    .addOption(jsonOption)
    .action(
      async (o: {
        scope: string[];
        ttl?: number;
        lifetime?: number;
        agent?: string;
        task?: string;
        onBehalfOf?: string;
        maxUses?: number;
        budgetUsd?: number;
        budgetTokens?: number;
        maxConcurrent?: number;
        url: string;
        json?: boolean;
      }) => {
        const budget = budgetOf(o);
        const issued = await apiClient(o.url, keyFromEnv(env, "PERISHABLE_ISSUER_KEY")).send(
          "POST",
          "/v1/tokens",
          TokenResponse,
          {
            scopes: o.scope,
            ...(o.ttl ? { ttl: o.ttl } : {}),
            ...(o.lifetime ? { lifetime: o.lifetime } : {}),
            ...(o.agent ? { agent: o.agent } : {}),
            ...(o.task ? { task: o.task } : {}),
            ...(o.onBehalfOf ? { onBehalfOf: o.onBehalfOf } : {}),
            ...(o.maxUses ? { maxUses: o.maxUses } : {}),
            ...(Object.keys(budget).length > 0 ? { budget } : {}),
            ...(o.maxConcurrent ? { maxConcurrent: o.maxConcurrent } : {}),
          },
        );
        print(!!o.json, issued, () =>
          table(
            ["FIELD", "VALUE"],
            [
              ["token", issued.token],
              ["token id", issued.tokenId],
              ["grant", issued.grantId],
              ["agent", issued.agent],
              ["scopes", issued.scopes.join(", ")],
              ...(issued.budget
                ? [
                    [
                      "budget",
                      [
                        issued.budget.usd === undefined ? "" : `$${issued.budget.usd}`,
                        issued.budget.tokens === undefined ? "" : `${issued.budget.tokens} tokens`,
                      ]
                        .filter(Boolean)
                        .join(", "),
                    ],
                  ]
                : []),
              ...(issued.maxConcurrent ? [["max concurrent", String(issued.maxConcurrent)]] : []),
              ["expires", `${issued.expiresAt} (${relative(issued.expiresAt)})`],
              ["not after", `${issued.notAfter} (${relative(issued.notAfter)})`],
            ],
          ),
        );
      },
    );
};

/** `revoke`: a grant, a token, or what a selector matches. */
const registerRevoke = (program: Command, { env, admin, print }: OpsContext): void => {
  program
    .command("revoke")
    .description("revoke a grant and its subtree, one token, or every grant a selector matches (admin)")
    .option("--grant <grantId>", "a grant and its whole subtree")
    .option("--token <tokenId>", "one token")
    .option("--agent <name>", "selector: grants of this agent")
    .option("--scope <scope>", "selector: grants holding this scope")
    .option("--root <grantId>", "selector: a whole lineage tree")
    .option("--on-behalf-of <who>", "selector: every lineage acting for this person or system")
    .option("--issued-after <time>", "selector: grants created after this time", isoTime)
    .option("--issued-before <time>", "selector: grants created before this time", isoTime)
    .option("--all", "selector: every grant (needs --yes)")
    .option("--yes", "confirm --all")
    .addOption(urlOption(env))
    .addOption(jsonOption)
    .action(async (o: Record<string, string | boolean | undefined> & { url: string }) => {
      const selector = {
        ...(o.agent ? { agent: o.agent } : {}),
        ...(o.scope ? { scope: o.scope } : {}),
        ...(o.root ? { rootGrantId: o.root } : {}),
        ...(o.onBehalfOf ? { onBehalfOf: o.onBehalfOf } : {}),
        ...(o.issuedAfter ? { issuedAfter: o.issuedAfter } : {}),
        ...(o.issuedBefore ? { issuedBefore: o.issuedBefore } : {}),
        ...(o.all ? { all: true } : {}),
      };
      const kinds = [o.grant, o.token, Object.keys(selector).length > 0 ? true : undefined].filter(
        Boolean,
      ).length;
      if (kinds !== 1)
        throw new CliError("name exactly one of --grant, --token, or selector flags", EXIT.usage);
      if (o.all && !o.yes) throw new CliError("--all revokes every grant: add --yes to confirm", EXIT.usage);
      const api = admin(o.url);
      const result = o.grant
        ? await api("revokeGrant", { params: { grantId: String(o.grant) } })
        : o.token
          ? await api("revokeToken", { params: { tokenId: String(o.token) } })
          : await api("revoke", { body: selector as RevocationSelector });
      print(!!o.json, result, () =>
        o.token
          ? `revoked ${result.tokens ?? 0} token`
          : `revoked ${result.revoked} grant${result.revoked === 1 ? "" : "s"}${result.tokens === undefined ? "" : ` and ${result.tokens} token${result.tokens === 1 ? "" : "s"}`}${result.ruleId ? ` (rule ${result.ruleId})` : ""}`,
      );
    });
};

/** `grants ls` and `grants tree`. */
const registerGrants = (program: Command, { env, admin, print }: OpsContext): void => {
  const grants = program.command("grants").description("live grants (admin)");
  grants
    .command("ls")
    .description("list live grants")
    .option("--agent <name>")
    .option("--scope <scope>")
    .option("--root <grantId>")
    .option("--limit <n>", "at most this many", positiveInt, 1000)
    .addOption(urlOption(env))
    .addOption(jsonOption)
    .action(
      async (o: {
        agent?: string;
        scope?: string;
        root?: string;
        limit: number;
        url: string;
        json?: boolean;
      }) => {
        const list = await admin(o.url)("listGrants", {
          query: { limit: o.limit, agent: o.agent, scope: o.scope, root: o.root },
        });
        print(!!o.json, list, () =>
          list.grants.length === 0
            ? "no live grants"
            : table(
                GRANT_HEADER,
                list.grants.map((g) => grantRow(g)),
              ),
        );
      },
    );
  grants
    .command("tree <grantId>")
    .description("draw a grant's lineage tree, from its root")
    .addOption(urlOption(env))
    .addOption(jsonOption)
    .action(async (grantId: string, o: { url: string; json?: boolean }) => {
      const api = admin(o.url);
      const asked = await api("grant", { params: { grantId } });
      const rootId = asked.ancestors[0]?.grantId ?? asked.grant.grantId;
      const root =
        rootId === asked.grant.grantId ? asked : await api("grant", { params: { grantId: rootId } });
      print(!!o.json, root, () => drawTree(root.grant, root.subtree, grantId));
    });
};

/** `audit tail [-f]`. */
const registerAudit = (program: Command, { env, out, admin }: OpsContext): void => {
  program
    .command("audit")
    .description("the audit trail (admin)")
    .command("tail")
    .description("the latest audit events; -f keeps following")
    .option("-f, --follow", "keep printing new events until interrupted")
    .option("--type <type>")
    .option("--agent <name>")
    .option("--grant <grantId>")
    .option("--root <grantId>")
    .option("-n, --limit <n>", "how many of the latest to show", positiveInt, 20)
    .option("--interval <ms>", "polling interval with -f", positiveInt, 1000)
    .addOption(urlOption(env))
    .addOption(jsonOption)
    .action(
      async (o: {
        follow?: boolean;
        type?: string;
        agent?: string;
        grant?: string;
        root?: string;
        limit: number;
        interval: number;
        url: string;
        json?: boolean;
      }) => {
        const api = admin(o.url);
        const filters = { type: o.type, agent: o.agent, grantId: o.grant, root: o.root };
        const show = (page: AuditPage) => {
          for (const event of page.events)
            out(o.json ? terminalJson(JSON.stringify(event)) : auditLine(event));
        };
        const page = await api("audit", { query: { ...filters, limit: o.limit } });
        show(page);
        // An empty trail has no cursor yet: then everything from its beginning is new.
        let after = page.next ?? "0";
        while (o.follow) {
          await new Promise((resolve) => setTimeout(resolve, o.interval));
          const next = await api("audit", { query: { ...filters, limit: 1000, after } });
          show(next);
          after = next.next ?? after;
        }
      },
    );
};
