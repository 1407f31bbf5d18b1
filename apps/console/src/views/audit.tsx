import type { AuditPage } from "@perishable/protocol";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "../lib/api.js";
import { usePolling } from "../lib/poll.js";
import { shortId } from "../lib/time.js";
import { TextField } from "./fields.js";

const TYPES = ["", "issued", "refreshed", "delegated", "used", "denied", "expired", "revoked"];
const KEEP = 500;

/** The audit trail as it happens: polls with the cursor every second; denials stand out with their rule. */
export const AuditView = ({ api }: { api: Api }) => {
  const [events, setEvents] = useState<AuditPage["events"]>([]);
  const [type, setType] = useState("");
  const [agent, setAgent] = useState("");
  const [grant, setGrant] = useState("");
  const [paused, setPaused] = useState(false);
  const cursor = useRef<string | null>(null);

  // A new filter starts the tail over (this effect runs before the polling one restarts); while
  // paused, polls do nothing, and resuming goes on from the cursor.
  useEffect(() => {
    cursor.current = null;
    setEvents([]);
  }, [api, type, agent, grant]);
  usePolling(
    async (alive) => {
      if (paused) return;
      const page = await api.audit({
        type: type || undefined,
        agent: agent || undefined,
        grantId: grant || undefined,
        limit: cursor.current ? "500" : "100",
        after: cursor.current ?? undefined,
      });
      if (!alive()) return;
      // An empty trail has no cursor yet: then everything from its beginning is new.
      cursor.current = page.next ?? cursor.current ?? "0";
      if (page.events.length > 0)
        setEvents((old) => [...page.events.slice().reverse(), ...old].slice(0, KEEP));
    },
    1000,
    [api, type, agent, grant, paused],
  );

  return (
    <section class="panel wide" aria-label="Audit trail">
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <select
          aria-label="Event type"
          value={type}
          onChange={(e) => setType((e.target as HTMLSelectElement).value)}
        >
          {TYPES.map((t) => (
            <option key={t} value={t}>
              {t || "all types"}
            </option>
          ))}
        </select>
        <TextField label="Filter by agent" placeholder="agent" value={agent} onValue={setAgent} />
        <TextField label="Filter by grant" placeholder="gr_…" value={grant} onValue={setGrant} trim />
        <button type="button" onClick={() => setPaused(!paused)} aria-pressed={paused}>
          {paused ? "Resume" : "Pause"}
        </button>
      </form>
      <table class="audit">
        <thead>
          <tr>
            <th scope="col">time</th>
            <th scope="col">event</th>
            <th scope="col">agent</th>
            <th scope="col">grant</th>
            <th scope="col">what</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.id} class={e.type === "denied" ? "denied" : undefined} data-type={e.type}>
              <td class="when">{e.at.slice(11, 23)}</td>
              <td>
                <span class={`type ${e.type}`}>{e.type}</span>
              </td>
              <td>{e.agent ?? "-"}</td>
              <td>
                <code title={e.grantId ?? ""}>{shortId(e.grantId)}</code>
              </td>
              <td>{describe(e)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {events.length === 0 && <p class="hint">Waiting for events…</p>}
    </section>
  );
};

/** ` · tools/call get_issue`: what an MCP message did. */
const mcpText = (mcp: { method: string; tool?: string } | undefined): string =>
  mcp ? ` · ${mcp.method}${mcp.tool ? ` ${mcp.tool}` : ""}` : "";

/** Who the lineage acts for, after every event's own words. */
const describe = (e: AuditPage["events"][number]): string =>
  `${describeEvent(e)}${e.onBehalfOf ? ` · for ${e.onBehalfOf}` : ""}`;

const describeEvent = (e: AuditPage["events"][number]): string => {
  switch (e.type) {
    case "used":
      return `${e.method} ${e.upstream}${e.path}${mcpText(e.mcp)} → ${e.status} in ${e.totalMs} ms${e.model ? ` · ${e.model}` : ""}${e.usage?.total_tokens ? ` · ${e.usage.total_tokens} tokens` : ""}`;
    case "denied":
      return `${e.code} — ${e.rule}${mcpText(e.mcp)}${e.path ? ` (${e.method} ${e.upstream ?? ""}${e.path})` : ""}`;
    case "revoked":
      return `by ${e.by}: ${e.count} revoked${e.selector ? ` ${JSON.stringify(e.selector)}` : ""}`;
    case "expired":
      return e.reason === "grant" ? "the grant reached its end" : "its holder stopped refreshing";
    case "refreshed":
      return `until ${e.expiresAt}`;
    case "delegated":
      return `${e.scopes.join(", ")}${e.parentGrantId ? ` from ${shortId(e.parentGrantId)}` : ""}`;
    case "issued":
      return `${e.scopes.join(", ")}${e.identity ? ` · identity ${e.identity.subject}` : ""}`;
    case "upstream_key_rotated":
      return `the ${e.upstream} key was read again from its file and changed`;
  }
};
