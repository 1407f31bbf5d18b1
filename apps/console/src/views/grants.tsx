import type { AdminGrantView, AuditPage, GrantDetail } from "@perishable/protocol";
import { useMemo, useState } from "preact/hooks";
import { type Api, ApiError } from "../lib/api.js";
import { usePolling } from "../lib/poll.js";
import { spendLine, topSpenders, usd, used } from "../lib/spend.js";
import { duration, shortId } from "../lib/time.js";
import { Confirm } from "./confirm.js";
import { TextField } from "./fields.js";
import { cutClause, LiveList } from "./live-list.js";
import { WhoFacts } from "./who-facts.js";

interface Props {
  readonly api: Api;
  readonly onAuthError: () => void;
}

/** Live grants, grouped by root and drawn as lineage trees; a selected grant's details beside them. */
export const GrantsView = ({ api, onAuthError }: Props) => {
  const [grants, setGrants] = useState<AdminGrantView[]>([]);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [agent, setAgent] = useState("");
  const [scope, setScope] = useState("");
  const [search, setSearch] = useState("");
  const [selected, setSelected] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());

  // Poll every second: a revocation made anywhere shows within a second.
  usePolling(
    async (alive) => {
      setNow(Date.now());
      try {
        const list = await api.grants();
        if (!alive()) return;
        setGrants(list.grants);
        setMore(list.next !== null);
        setError(null);
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) onAuthError();
        else if (alive()) setError(e instanceof ApiError ? e.message : "the broker cannot be reached");
      }
    },
    1000,
    [api],
  );

  const visible = useMemo(
    () =>
      grants.filter(
        (g) =>
          (agent === "" || g.agent.includes(agent)) &&
          (scope === "" || g.scopes.some((s) => s.includes(scope))),
      ),
    [grants, agent, scope],
  );
  const trees = useMemo(() => groupByRoot(visible), [visible]);

  const find = async (event: Event) => {
    event.preventDefault();
    const id = search.trim();
    if (id.startsWith("tk_")) {
      try {
        setSelected((await api.token(id)).grantId);
      } catch {
        setError(`no live token ${id}`);
      }
    } else if (id.startsWith("gr_")) setSelected(id);
  };

  return (
    <div class="split">
      <section class="panel" aria-label="Lineage trees">
        <form class="filters" onSubmit={find}>
          <TextField label="Filter by agent" placeholder="agent" value={agent} onValue={setAgent} />
          <TextField label="Filter by scope" placeholder="scope" value={scope} onValue={setScope} />
          <TextField
            label="Find a grant or token id"
            placeholder="gr_… or tk_…"
            value={search}
            onValue={setSearch}
          />
          <button type="submit">Find</button>
        </form>
        {error && <p class="error">{error}</p>}
        <p class="count">
          {visible.length} live grant{visible.length === 1 ? "" : "s"} in {trees.length} lineage
          {trees.length === 1 ? "" : "s"}
          {more && " (the first 1,000 of more: find by id, or narrow with the CLI's grants ls)"}
        </p>
        <TopSpenders grants={visible} onSelect={setSelected} />
        <ul class="trees" aria-label="Grants by lineage">
          {trees.map((root) => (
            <Node key={root.grant.grantId} node={root} now={now} selected={selected} onSelect={setSelected} />
          ))}
        </ul>
      </section>
      <section class="panel detail" aria-label="Selected grant">
        {selected ? (
          <Detail api={api} id={selected} now={now} onGone={() => setSelected(null)} />
        ) : (
          <p class="hint">Select a grant to see its lineage and recent events.</p>
        )}
      </section>
    </div>
  );
};

/** The lineages that spent the most, with their roots' spend: a click selects the root. */
const TopSpenders = ({
  grants,
  onSelect,
}: {
  grants: readonly AdminGrantView[];
  onSelect: (id: string) => void;
}) => {
  const top = topSpenders(grants);
  if (top.length === 0) return null;
  return (
    <section class="top-spenders" aria-labelledby="h-top">
      <h3 id="h-top">Top spenders</h3>
      <ol>
        {top.map((g) => (
          <li key={g.grantId}>
            <button type="button" class="link" onClick={() => onSelect(g.grantId)}>
              {g.agent} <code>{shortId(g.grantId)}</code>
            </button>{" "}
            {spendLine(g.spend)}
          </li>
        ))}
      </ol>
    </section>
  );
};

interface TreeNode {
  readonly grant: AdminGrantView;
  readonly children: TreeNode[];
}

/** Roots with their live descendants; a child whose parent is not listed starts its own group. */
const groupByRoot = (grants: readonly AdminGrantView[]): TreeNode[] => {
  const nodes = new Map(grants.map((g) => [g.grantId, { grant: g, children: [] as TreeNode[] }]));
  const roots: TreeNode[] = [];
  for (const node of nodes.values()) {
    const parent = node.grant.parentGrantId ? nodes.get(node.grant.parentGrantId) : undefined;
    if (parent) parent.children.push(node);
    else roots.push(node);
  }
  const order = (a: TreeNode, b: TreeNode) => a.grant.createdAt.localeCompare(b.grant.createdAt);
  for (const node of nodes.values()) node.children.sort(order);
  return roots.sort(order);
};

const Node = ({
  node,
  now,
  selected,
  onSelect,
}: {
  node: TreeNode;
  now: number;
  selected: string | null;
  onSelect: (id: string) => void;
}) => {
  const g = node.grant;
  const life = Date.parse(g.notAfter) - Date.parse(g.createdAt);
  const left = Math.max(0, Date.parse(g.notAfter) - now);
  const tokenLeft = g.tokenExpiresAt ? Math.max(0, Date.parse(g.tokenExpiresAt) - now) : 0;
  return (
    <li>
      <button
        type="button"
        class={selected === g.grantId ? "grant selected" : "grant"}
        aria-current={selected === g.grantId ? "true" : undefined}
        onClick={() => onSelect(g.grantId)}
        data-grant={g.grantId}
      >
        <span class="agent">{g.agent}</span>
        <span class="depth" title="depth">
          d{g.depth}
        </span>
        <span class="scopes">
          {g.scopes.map((s) => (
            <span key={s} class="chip">
              {s}
            </span>
          ))}
        </span>
        {g.spend && (
          <span class="spend" title={spendLine(g.spend) ?? ""}>
            {usd(g.spend.usd.spent)}
            {g.spend.usd.limit !== null && <span class="of"> / {usd(g.spend.usd.limit)}</span>}
          </span>
        )}
        <span class="time" title={`grant ends in ${duration(left)}; token expires in ${duration(tokenLeft)}`}>
          <span class="bar">
            <span class="fill" style={{ width: `${life > 0 ? Math.min(100, (left / life) * 100) : 0}%` }} />
          </span>
          {duration(left)}
        </span>
      </button>
      {node.children.length > 0 && (
        <ul aria-label={`delegated by ${g.agent}`}>
          {node.children.map((child) => (
            <Node key={child.grant.grantId} node={child} now={now} selected={selected} onSelect={onSelect} />
          ))}
        </ul>
      )}
    </li>
  );
};

const Detail = ({ api, id, now, onGone }: { api: Api; id: string; now: number; onGone: () => void }) => {
  const [detail, setDetail] = useState<GrantDetail | null>(null);
  const [events, setEvents] = useState<AuditPage["events"]>([]);
  const [confirm, setConfirm] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  usePolling(
    async (alive) => {
      try {
        const [d, a] = await Promise.all([api.grant(id), api.audit({ grantId: id, limit: "20" })]);
        if (!alive()) return;
        setDetail(d);
        setEvents(a.events);
      } catch (e) {
        if (alive() && e instanceof ApiError && e.code === "not_found") onGone();
      }
    },
    2000,
    [api, id],
  );
  if (!detail) return <p class="hint">Loading {shortId(id)}…</p>;
  const g = detail.grant;
  const liveBelow = detail.subtree.filter((s) => s.status === "live").length;
  const open = detail.live?.connections ?? [];
  return (
    <div>
      <h2>
        {g.agent} <span class={`status ${g.status}`}>{g.status}</span>
      </h2>
      <dl class="facts">
        <dt>grant</dt>
        <dd>
          <code>{g.grantId}</code>
        </dd>
        <dt>scopes</dt>
        <dd>{g.scopes.join(", ")}</dd>
        <dt>issuer</dt>
        <dd>
          {g.issuer}
          {g.identity ? ` (identity ${g.identity.subject})` : ""}
        </dd>
        <WhoFacts grant={g} />
        <dt>ends</dt>
        <dd>
          in {duration(Date.parse(g.notAfter) - now)} ({g.notAfter})
        </dd>
        <dt>token expires</dt>
        <dd>{g.tokenExpiresAt ? `in ${duration(Date.parse(g.tokenExpiresAt) - now)}` : "-"}</dd>
        {g.spend && (
          <>
            <dt>spend</dt>
            <dd>
              {spendLine(g.spend)}
              {used(g.spend) !== null && (
                <span class="bar" title={`${Math.round(used(g.spend)! * 100)} % of the budget`}>
                  <span class="fill" style={{ width: `${used(g.spend)! * 100}%` }} />
                </span>
              )}
            </dd>
          </>
        )}
        {g.maxUses !== null && (
          <>
            <dt>uses</dt>
            <dd>
              {g.usesSpent} of {g.maxUses}
            </dd>
          </>
        )}
      </dl>
      <h3>Lineage</h3>
      <ol class="lineage">
        {detail.ancestors.map((a) => (
          <li key={a.grantId}>
            {a.agent} <code>{shortId(a.grantId)}</code>
          </li>
        ))}
        <li class="self">
          {g.agent} <code>{shortId(g.grantId)}</code>
        </li>
      </ol>
      {detail.live && <LiveList live={detail.live} now={now} />}
      <h3>Subtree ({detail.subtree.length})</h3>
      <ul class="subtree">
        {detail.subtree.map((s) => (
          <li key={s.grantId}>
            {"  ".repeat(s.depth - g.depth - 1)}↳ {s.agent} <code>{shortId(s.grantId)}</code>{" "}
            <span class={`status ${s.status}`}>{s.status}</span>
          </li>
        ))}
      </ul>
      {g.status === "live" && (
        <button type="button" class="danger" onClick={() => setConfirm(true)}>
          Revoke this grant{liveBelow > 0 ? ` and ${liveBelow} below it` : ""}
        </button>
      )}
      {message && <p class="notice">{message}</p>}
      <h3>Recent events</h3>
      <ul class="events">
        {events
          .slice()
          .reverse()
          .map((e) => (
            <li key={e.id} class={e.type === "denied" ? "denied" : undefined}>
              <span class="when">{e.at.slice(11, 19)}</span> <span class={`type ${e.type}`}>{e.type}</span>{" "}
              {e.type === "used"
                ? `${e.method} ${e.upstream}${e.path} → ${e.status}`
                : e.type === "denied"
                  ? `${e.code}: ${e.rule}`
                  : e.type === "revoked"
                    ? e.by
                    : ""}
            </li>
          ))}
      </ul>
      {confirm && (
        <Confirm
          title="Revoke grant"
          confirmLabel={`Revoke ${1 + liveBelow} grant${liveBelow > 0 ? "s" : ""}`}
          onClose={() => setConfirm(false)}
          onConfirm={async () => {
            const result = await api.revokeGrant(g.grantId);
            const cut = result.connections ?? 0;
            setMessage(
              `Revoked ${result.revoked} grant${result.revoked === 1 ? "" : "s"}; cut ${cut} live connection${cut === 1 ? "" : "s"}.`,
            );
          }}
        >
          <p>
            This revokes <strong>{g.agent}</strong> ({shortId(g.grantId)}) and the {liveBelow} live grant
            {liveBelow === 1 ? "" : "s"} below it: {1 + liveBelow} in all. Their next request is refused on
            every broker node{cutClause(open.length)}. It cannot be undone.
          </p>
        </Confirm>
      )}
    </div>
  );
};
