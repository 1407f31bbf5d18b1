import type { RevocationSelector } from "@perishable/protocol";
import { useState } from "preact/hooks";
import { type Api, ApiError } from "../lib/api.js";
import { Confirm } from "./confirm.js";

type Pending = {
  title: string;
  body: string;
  label: string;
  typeToConfirm?: string;
  run: () => Promise<string>;
};

/** Revoke a grant, a token, everything a selector matches, or everything: each shows what it will do first. */
export const RevokeView = ({ api }: { api: Api }) => {
  const [grant, setGrant] = useState("");
  const [token, setToken] = useState("");
  const [agent, setAgent] = useState("");
  const [scope, setScope] = useState("");
  const [after, setAfter] = useState("");
  const [before, setBefore] = useState("");
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
  const selector = (): RevocationSelector | undefined => {
    const s: Record<string, string> = {};
    if (agent.trim()) s.agent = agent.trim();
    if (scope.trim()) s.scope = scope.trim();
    if (after) s.issuedAfter = new Date(after).toISOString();
    if (before) s.issuedBefore = new Date(before).toISOString();
    return Object.keys(s).length > 0 ? (s as RevocationSelector) : undefined;
  };
  const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

  return (
    <div class="revoke">
      <section class="panel" aria-labelledby="revoke-grant">
        <h2 id="revoke-grant">A grant and its subtree</h2>
        <input
          placeholder="gr_…"
          aria-label="Grant id"
          value={grant}
          onInput={(e) => setGrant((e.target as HTMLInputElement).value.trim())}
        />
        <button
          type="button"
          class="danger"
          disabled={!grant}
          onClick={() =>
            guard(async () => {
              const detail = await api.grant(grant);
              const n = 1 + detail.subtree.filter((g) => g.status === "live").length;
              setPending({
                title: "Revoke grant",
                body: `${detail.grant.agent} (${grant}) and everything below it: ${plural(n, "grant")}.`,
                label: `Revoke ${plural(n, "grant")}`,
                run: async () => `${plural((await api.revokeGrant(grant)).revoked, "grant")} revoked`,
              });
            })
          }
        >
          Revoke…
        </button>
      </section>
      <section class="panel" aria-labelledby="revoke-token">
        <h2 id="revoke-token">One token</h2>
        <input
          placeholder="tk_…"
          aria-label="Token id"
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value.trim())}
        />
        <button
          type="button"
          class="danger"
          disabled={!token}
          onClick={() =>
            guard(async () => {
              const t = await api.token(token);
              setPending({
                title: "Revoke token",
                body: `Token ${token} of grant ${t.grantId} (${t.status}). The grant's other tokens keep working.`,
                label: "Revoke 1 token",
                run: async () => `${plural((await api.revokeToken(token)).tokens ?? 0, "token")} revoked`,
              });
            })
          }
        >
          Revoke…
        </button>
      </section>
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
              const { revoked } = await api.preview(s);
              setPending({
                title: "Revoke by selector",
                body: `${plural(revoked, "live grant")} match ${JSON.stringify(s)} now (with their subtrees). Tokens issued while it runs are refused too.`,
                label: `Revoke ${plural(revoked, "grant")}`,
                run: async () => `${plural((await api.revoke(s)).revoked, "grant")} revoked`,
              });
            })
          }
        >
          Preview and revoke…
        </button>
      </section>
      <section class="panel kill" aria-labelledby="kill-switch">
        <h2 id="kill-switch">Kill switch</h2>
        <p>Revokes every grant of every agent, on every broker node, at once.</p>
        <button
          type="button"
          class="danger"
          onClick={() =>
            guard(async () => {
              const { revoked } = await api.preview({ all: true });
              setPending({
                title: "Revoke everything",
                body: `${plural(revoked, "live grant")} will be revoked. Every agent loses its authority now.`,
                label: "Revoke everything",
                typeToConfirm: "REVOKE ALL",
                run: async () => `${plural((await api.revoke({ all: true })).revoked, "grant")} revoked`,
              });
            })
          }
        >
          Revoke everything…
        </button>
      </section>
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
          onConfirm={() => guard(async () => setResult(await pending.run()))}
        >
          <p>{pending.body}</p>
          <p>It cannot be undone.</p>
        </Confirm>
      )}
    </div>
  );
};
