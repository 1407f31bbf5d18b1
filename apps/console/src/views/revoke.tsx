import type { RevocationResult, RevocationSelector } from "@perishable/protocol";
import { useState } from "preact/hooks";
import { type Api, ApiError } from "../lib/api.js";
import { Confirm } from "./confirm.js";
import { TextField } from "./fields.js";

type Pending = {
  title: string;
  body: string;
  label: string;
  typeToConfirm?: string;
  run: () => Promise<string>;
};

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

/** What a preview says a revocation will cut (nothing when the broker does not say). */
const cuts = (connections: number | undefined) =>
  connections ? `; ${plural(connections, "live connection")} open now (streams, WebSockets) will be cut` : "";

const cutLine = (connections: number | undefined) =>
  connections === undefined ? "" : `; ${plural(connections, "live connection")} cut`;

/** What a revocation did, on the status line. */
const outcome = (r: RevocationResult) => `${plural(r.revoked, "grant")} revoked${cutLine(r.connections)}`;

/** Revoke a grant, a token, everything a selector matches, or everything: each shows what it will do first. */
export const RevokeView = ({ api }: { api: Api }) => {
  const [grant, setGrant] = useState("");
  const [token, setToken] = useState("");
  const [pending, setPending] = useState<Pending | null>(null);
  const [result, setResult] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const guard = async (fn: () => Promise<void>) => {
    setError(null);
    try {
      await fn();
    } catch (e) {
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
    }
  };

  return (
    <div class="revoke">
      <IdPanel
        id="revoke-grant"
        title="A grant and its subtree"
        label="Grant id"
        placeholder="gr_…"
        value={grant}
        onValue={setGrant}
        onRevoke={() =>
          guard(async () => {
            const detail = await api.grant(grant);
            const n = 1 + detail.subtree.filter((g) => g.status === "live").length;
            setPending({
              title: "Revoke grant",
              body: `${detail.grant.agent} (${grant}) and everything below it: ${plural(n, "grant")}${cuts(detail.live?.connections.length)}.`,
              label: `Revoke ${plural(n, "grant")}`,
              run: async () => outcome(await api.revokeGrant(grant)),
            });
          })
        }
      />
      <IdPanel
        id="revoke-token"
        title="One token"
        label="Token id"
        placeholder="tk_…"
        value={token}
        onValue={setToken}
        onRevoke={() =>
          guard(async () => {
            const t = await api.token(token);
            setPending({
              title: "Revoke token",
              body: `Token ${token} of grant ${t.grantId} (${t.status}). The grant's other tokens keep working.`,
              label: "Revoke 1 token",
              run: async () => {
                const r = await api.revokeToken(token);
                return `${plural(r.tokens ?? 0, "token")} revoked${cutLine(r.connections)}`;
              },
            });
          })
        }
      />
      <SelectorPanel api={api} guard={guard} propose={setPending} />
      <KillPanel api={api} guard={guard} propose={setPending} />
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {result && (
        <p class="notice" role="status">
          {result}
        </p>
      )}
      {pending && (
        <Confirm
          title={pending.title}
          confirmLabel={pending.label}
          {...(pending.typeToConfirm ? { typeToConfirm: pending.typeToConfirm } : {})}
          onClose={() => setPending(null)}
          onConfirm={() =>
            guard(async () => {
              // The last outcome goes first: a status on screen is always this action's.
              setResult(null);
              setResult(await pending.run());
            })
          }
        >
          <p>{pending.body}</p>
          <p>It cannot be undone.</p>
        </Confirm>
      )}
    </div>
  );
};

/** One id to revoke by: a field and the button that asks for confirmation. */
const IdPanel = (props: {
  id: string;
  title: string;
  label: string;
  placeholder: string;
  value: string;
  onValue: (value: string) => void;
  onRevoke: () => void;
}) => (
  <section class="panel" aria-labelledby={props.id}>
    <h2 id={props.id}>{props.title}</h2>
    <TextField
      label={props.label}
      placeholder={props.placeholder}
      value={props.value}
      onValue={props.onValue}
      trim
    />
    <button type="button" class="danger" disabled={!props.value} onClick={props.onRevoke}>
      Revoke…
    </button>
  </section>
);

/** What a panel needs from the view: the API, the error guard, and the confirmation to show. */
interface PanelProps {
  readonly api: Api;
  readonly guard: (fn: () => Promise<void>) => Promise<void>;
  readonly propose: (pending: Pending) => void;
}

/** Everything a selector matches (agent, scope, time window), after a dry run. */
const SelectorPanel = ({ api, guard, propose }: PanelProps) => {
  const [agent, setAgent] = useState("");
  const [scope, setScope] = useState("");
  const [after, setAfter] = useState("");
  const [before, setBefore] = useState("");
  const selector = (): RevocationSelector | undefined => {
    const s: Record<string, string> = {};
    if (agent.trim()) s.agent = agent.trim();
    if (scope.trim()) s.scope = scope.trim();
    if (after) s.issuedAfter = new Date(after).toISOString();
    if (before) s.issuedBefore = new Date(before).toISOString();
    return Object.keys(s).length > 0 ? (s as RevocationSelector) : undefined;
  };
  return (
    <section class="panel" aria-labelledby="revoke-selector">
      <h2 id="revoke-selector">Everything that matches</h2>
      <div class="grid">
        <label>
          agent <input value={agent} onInput={(e) => setAgent((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          scope <input value={scope} onInput={(e) => setScope((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          issued after{" "}
          <input
            type="datetime-local"
            value={after}
            onInput={(e) => setAfter((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          issued before{" "}
          <input
            type="datetime-local"
            value={before}
            onInput={(e) => setBefore((e.target as HTMLInputElement).value)}
          />
        </label>
      </div>
      <button
        type="button"
        class="danger"
        disabled={!selector()}
        onClick={() =>
          guard(async () => {
            const s = selector()!;
            const { revoked, connections } = await api.preview(s);
            propose({
              title: "Revoke by selector",
              body: `${plural(revoked, "live grant")} match ${JSON.stringify(s)} now (with their subtrees)${cuts(connections)}. Tokens issued while it runs are refused too.`,
              label: `Revoke ${plural(revoked, "grant")}`,
              run: async () => outcome(await api.revoke(s)),
            });
          })
        }
      >
        Preview and revoke…
      </button>
    </section>
  );
};

/** Every grant of every agent, with REVOKE ALL typed to confirm. */
const KillPanel = ({ api, guard, propose }: PanelProps) => (
  <section class="panel kill" aria-labelledby="kill-switch">
    <h2 id="kill-switch">Kill switch</h2>
    <p>Revokes every grant of every agent, on every broker node, at once.</p>
    <button
      type="button"
      class="danger"
      onClick={() =>
        guard(async () => {
          const { revoked, connections } = await api.preview({ all: true });
          propose({
            title: "Revoke everything",
            body: `${plural(revoked, "live grant")} will be revoked${cuts(connections)}. Every agent loses its authority now.`,
            label: "Revoke everything",
            typeToConfirm: "REVOKE ALL",
            run: async () => outcome(await api.revoke({ all: true })),
          });
        })
      }
    >
      Revoke everything…
    </button>
  </section>
);
