import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, createApi } from "./lib/api.js";
import { AuditView } from "./views/audit.js";
import { GrantsView } from "./views/grants.js";
import { HealthView } from "./views/health.js";
import { RevokeView } from "./views/revoke.js";

const KEY = "perishable.adminKey";
const TABS = ["Grants", "Audit", "Revoke", "Health"] as const;
type Tab = (typeof TABS)[number];

/**
 * The console. The admin key lives in this tab's session storage (never in a URL, never in a
 * cookie) and goes out only in the Authorization header of calls to this same broker.
 */
export const App = () => {
  const [key, setKey] = useState<string | null>(() => sessionStorage.getItem(KEY));
  const [tab, setTab] = useState<Tab>("Grants");
  const api = useMemo(() => (key ? createApi(key) : null), [key]);
  const signOut = () => {
    sessionStorage.removeItem(KEY);
    setKey(null);
  };
  if (!api) {
    return (
      <Login
        onKey={(k) => {
          sessionStorage.setItem(KEY, k);
          setKey(k);
        }}
      />
    );
  }
  return (
    <div class="shell">
      <header class="top">
        <h1>perishable</h1>
        <nav aria-label="Views">
          {TABS.map((t) => (
            <button
              key={t}
              type="button"
              class={t === tab ? "tab active" : "tab"}
              aria-current={t === tab ? "page" : undefined}
              onClick={() => setTab(t)}
            >
              {t}
            </button>
          ))}
        </nav>
        <button type="button" class="quiet" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main>
        {tab === "Grants" && <GrantsView api={api} onAuthError={signOut} />}
        {tab === "Audit" && <AuditView api={api} />}
        {tab === "Revoke" && <RevokeView api={api} />}
        {tab === "Health" && <HealthView api={api} />}
      </main>
    </div>
  );
};

const Login = ({ onKey }: { onKey: (key: string) => void }) => {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => document.getElementById("admin-key")?.focus(), []);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await createApi(value.trim()).grants();
      onKey(value.trim());
    } catch (e) {
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : "the broker cannot be reached");
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="login" onSubmit={submit}>
      <h1>perishable console</h1>
      <label for="admin-key">Admin key</label>
      <input
        id="admin-key"
        type="password"
        autocomplete="off"
        spellcheck={false}
        value={value}
        onInput={(e) => setValue((e.target as HTMLInputElement).value)}
      />
      <button type="submit" disabled={busy || value.trim() === ""}>
        Sign in
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <p class="hint">The key stays in this tab (session storage) and is sent only to this broker.</p>
    </form>
  );
};
