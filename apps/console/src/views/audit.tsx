import type { AuditPage } from "@perishable/protocol";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "../lib/api.js";
import { shortId } from "../lib/time.js";

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

  useEffect(() => {
    let stop = false;
    cursor.current = null;
    setEvents([]);
    const filter = { type: type || undefined, agent: agent || undefined, grantId: grant || undefined };
    const poll = async () => {
      if (paused) return;
      try {
        const page = await api.audit({
          ...filter,
          limit: cursor.current ? "500" : "100",
          after: cursor.current ?? undefined,
        });
        if (stop) return;
        // An empty trail has no cursor yet: then everything from its beginning is new.
        cursor.current = page.next ?? cursor.current ?? "0";
        if (page.events.length > 0)
          setEvents((old) => [...page.events.slice().reverse(), ...old].slice(0, KEEP));
      } catch {
        // keep the last view; the next poll tries again
      }
    };
    void poll();
    const timer = setInterval(poll, 1000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, [api, type, agent, grant, paused]);

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
        <input
          placeholder="agent"
          aria-label="Filter by agent"
          value={agent}
          onInput={(e) => setAgent((e.target as HTMLInputElement).value)}
        />
        <input
          placeholder="gr_…"
          aria-label="Filter by grant"
          value={grant}
          onInput={(e) => setGrant((e.target as HTMLInputElement).value.trim())}
        />
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

const describe = (e: AuditPage["events"][number]): string => {
  switch (e.type) {
    case "used":
      return `${e.method} ${e.upstream}${e.path} → ${e.status} in ${e.totalMs} ms${e.model ? ` · ${e.model}` : ""}${e.usage?.total_tokens ? ` · ${e.usage.total_tokens} tokens` : ""}`;
    case "denied":
      return `${e.code} — ${e.rule ?? ""}${e.path ? ` (${e.method} ${e.upstream ?? ""}${e.path})` : ""}`;
    case "revoked":
      return `by ${e.by}: ${e.count ?? 0} revoked${e.selector ? ` ${JSON.stringify(e.selector)}` : ""}`;
    case "expired":
      return e.reason === "grant" ? "the grant reached its end" : "its holder stopped refreshing";
    default:
      return `${(e.scopes ?? []).join(", ")}${e.parentGrantId ? ` from ${shortId(e.parentGrantId)}` : ""}${e.identity ? ` · identity ${e.identity.subject}` : ""}`;
  }
};
