import { useRef, useState } from "preact/hooks";
import type { Api } from "../lib/api.js";
import { buckets, parseMetrics, quantile, type Sample, sum } from "../lib/metrics.js";
import { usePolling } from "../lib/poll.js";

const POINTS = 60;

/** Requests per second, denials by code, credential age, broker overhead: from /metrics, every 2 s. */
export const HealthView = ({ api }: { api: Api }) => {
  const [samples, setSamples] = useState<Sample[]>([]);
  const [rates, setRates] = useState<number[]>([]);
  const [spendRates, setSpendRates] = useState<number[]>([]);
  const last = useRef<{ at: number; total: number; spent: number } | undefined>(undefined);
  usePolling(
    async (alive) => {
      const parsed = parseMetrics(await api.metrics());
      if (!alive()) return;
      const total = sum(parsed, "perishable_proxy_requests_total");
      const spent = sum(parsed, "perishable_spend_usd_total");
      const at = performance.now();
      const before = last.current;
      if (before) {
        const seconds = (at - before.at) / 1000;
        setRates((old) => [...old, Math.max(0, (total - before.total) / seconds)].slice(-POINTS));
        setSpendRates((old) => [...old, Math.max(0, ((spent - before.spent) / seconds) * 60)].slice(-POINTS));
      }
      last.current = { at, total, spent };
      setSamples(parsed);
    },
    2000,
    [api],
  );

  const denials = samples
    .filter((s) => s.name === "perishable_denials_total")
    .map((s) => ({ label: s.labels.code ?? "", value: s.value }));
  const ages = buckets(samples, "perishable_credential_age_seconds").map((b) => ({
    label: b.le === "+Inf" ? "more" : `≤ ${b.le} s`,
    value: b.count,
  }));
  const overhead = buckets(samples, "perishable_broker_overhead_seconds").map((b) => ({
    label: b.le === "+Inf" ? "more" : `≤ ${Number(b.le) * 1000} ms`,
    value: b.count,
  }));
  const ms = (v: number | undefined) =>
    v === undefined
      ? "-"
      : Number.isFinite(v)
        ? `${(v * 1000).toFixed(v < 0.001 ? 2 : 1)} ms`
        : "above the top bucket";
  const live = sum(samples, "perishable_live_grants");
  return (
    <div class="health">
      <section class="panel" aria-labelledby="h-rps">
        <h2 id="h-rps">Requests per second</h2>
        <p class="big">{rates.length ? rates.at(-1)!.toFixed(1) : "measuring…"}</p>
        <Sparkline values={rates} label="requests per second" />
        <p class="hint">{live} grants hold a live token</p>
      </section>
      <section class="panel" aria-labelledby="h-spend">
        <h2 id="h-spend">Spend per minute</h2>
        <p class="big">{spendRates.length ? `$${spendRates.at(-1)!.toFixed(4)}` : "measuring…"}</p>
        <Sparkline values={spendRates} label="US dollars a minute" />
        <p class="hint">
          ${sum(samples, "perishable_spend_usd_total").toFixed(4)} charged on this node since it started
        </p>
      </section>
      <section class="panel" aria-labelledby="h-denials">
        <h2 id="h-denials">Denials by code</h2>
        <Bars items={denials} empty="no denials yet" />
      </section>
      <section class="panel" aria-labelledby="h-age">
        <h2 id="h-age">Credential age at use</h2>
        <Bars items={ages} empty="no calls yet" />
      </section>
      <section class="panel" aria-labelledby="h-overhead">
        <h2 id="h-overhead">Broker overhead</h2>
        <p>
          p50 {ms(quantile(samples, "perishable_broker_overhead_seconds", 0.5))} · p99{" "}
          {ms(quantile(samples, "perishable_broker_overhead_seconds", 0.99))}
        </p>
        <Bars items={overhead} empty="no calls yet" />
      </section>
    </div>
  );
};

const Sparkline = ({ values, label }: { values: number[]; label: string }) => {
  const max = Math.max(1, ...values);
  const points = values
    .map((v, i) => `${(i / Math.max(1, POINTS - 1)) * 300},${60 - (v / max) * 56}`)
    .join(" ");
  return (
    <svg
      class="spark"
      viewBox="0 0 300 60"
      role="img"
      aria-label={`${label} over the last ${values.length * 2} seconds`}
    >
      <polyline points={points} fill="none" stroke="currentColor" stroke-width="2" />
    </svg>
  );
};

const Bars = ({ items, empty }: { items: { label: string; value: number }[]; empty: string }) => {
  const shown = items.filter((i) => i.value > 0);
  if (shown.length === 0) return <p class="hint">{empty}</p>;
  const max = Math.max(...shown.map((i) => i.value));
  return (
    <ul class="bars">
      {shown.map((i) => (
        <li key={i.label}>
          <span class="label">{i.label}</span>
          <span class="bar">
            <span class="fill" style={{ width: `${(i.value / max) * 100}%` }} />
          </span>
          <span class="value">{i.value}</span>
        </li>
      ))}
    </ul>
  );
};
