import type { GrantDetail } from "@perishable/protocol";
import { duration, shortId } from "../lib/time.js";

/** What is open under a grant and its subtree, on every broker node. */
export const LiveList = ({ live, now }: { live: NonNullable<GrantDetail["live"]>; now: number }) => (
  <>
    <h3>
      Live connections ({live.connections.length}){" "}
      {live.missing > 0 && (
        <span class="hint">
          — {live.missing} node{live.missing === 1 ? "" : "s"} did not answer
        </span>
      )}
    </h3>
    {live.connections.length === 0 ? (
      <p class="hint">Nothing open on {live.nodes === 1 ? "the broker" : `${live.nodes} broker nodes`}.</p>
    ) : (
      <ul class="live">
        {live.connections.map((c) => (
          <li key={`${c.node}/${c.tokenId}/${c.openedAt}/${c.path}`}>
            <span class={`type ${c.kind}`}>{c.kind}</span> {c.upstream}
            {c.path} <code>{shortId(c.grantId)}</code> open {duration(now - Date.parse(c.openedAt))} on{" "}
            <code>{c.node}</code>
          </li>
        ))}
      </ul>
    )}
  </>
);

/** What a revocation's confirmation adds when connections are open under the grant. */
export const cutClause = (open: number): string =>
  open > 0
    ? `, and the ${open} connection${open === 1 ? "" : "s"} open under them now (streams, WebSockets) are cut`
    : "";
