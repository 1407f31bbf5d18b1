import type { GrantView } from "@perishable/protocol";

/** Whom a grant acts for, who asked for it (token exchange) and the key it is bound to (DPoP). */
export const WhoFacts = ({ grant }: { grant: GrantView }) => (
  <>
    {grant.onBehalfOf ? (
      <>
        <dt>on behalf of</dt>
        <dd>{grant.onBehalfOf}</dd>
      </>
    ) : null}
    {grant.actor ? (
      <>
        <dt>asked by</dt>
        <dd>{grant.actor.subject}</dd>
      </>
    ) : null}
    {grant.cnf ? (
      <>
        <dt>bound to key</dt>
        <dd>
          <code>{grant.cnf.jkt}</code> (DPoP)
        </dd>
      </>
    ) : null}
  </>
);
