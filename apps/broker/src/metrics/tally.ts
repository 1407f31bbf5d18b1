import type { Registry } from "prom-client";

/**
 * Counters and histograms for the series every proxied request touches. prom-client's own
 * validate the labels, hash them and look the series up on every `inc`/`observe`, even through a
 * child (3–5 % of the broker's CPU per request in a profile); here a series is an object the
 * caller keeps, an observation an add into an array, and prom-client only asks for the values at
 * scrape time (`get()`, the shape its registry prints).
 */
type Labels = Record<string, string | number>;
interface Value {
  readonly labels: Labels;
  readonly value: number;
  readonly metricName?: string;
}

abstract class Tally<S> {
  /** Written by prom-client's registry for OpenMetrics output: not readonly. */
  name: string;
  readonly help: string;
  abstract readonly type: "counter" | "histogram";
  readonly aggregator = "sum";
  readonly #labelNames: readonly string[];
  readonly #series = new Map<string, { labels: Labels; series: S }>();

  constructor(options: { name: string; help: string; labelNames?: readonly string[]; registry: Registry }) {
    this.name = options.name;
    this.help = options.help;
    this.#labelNames = options.labelNames ?? [];
    options.registry.registerMetric(this as never);
  }

  protected abstract create(): S;
  protected abstract values(labels: Labels, series: S): Value[];
  protected abstract zero(series: S): void;

  /** The series of these label values (in `labelNames` order), made once and kept. */
  labels(...values: string[]): S {
    if (values.length !== this.#labelNames.length)
      throw new Error(`${this.name}: ${this.#labelNames.length} label values expected`);
    const key = values.join("\0");
    let entry = this.#series.get(key);
    if (!entry) {
      const labels: Labels = {};
      this.#labelNames.forEach((name, i) => {
        labels[name] = values[i]!;
      });
      entry = { labels, series: this.create() };
      this.#series.set(key, entry);
    }
    return entry.series;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Value[] }> {
    const values: Value[] = [];
    for (const { labels, series } of this.#series.values()) values.push(...this.values(labels, series));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Zeroes every series in place: callers keep series objects. */
  reset(): void {
    for (const { series } of this.#series.values()) this.zero(series);
  }
}

export class CounterSeries {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class TallyCounter extends Tally<CounterSeries> {
  readonly type = "counter";
  protected create(): CounterSeries {
    return new CounterSeries();
  }
  protected values(labels: Labels, series: CounterSeries): Value[] {
    return [{ labels, value: series.value }];
  }
  protected zero(series: CounterSeries): void {
    series.value = 0;
  }
}

export class HistogramSeries {
  readonly #bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last one is above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]! += 1;
    this.sum += value;
    this.count += 1;
  }
}

export class TallyHistogram extends Tally<HistogramSeries> {
  readonly type = "histogram";
  readonly #bounds: readonly number[];

  constructor(options: {
    name: string;
    help: string;
    labelNames?: readonly string[];
    buckets: readonly number[];
    registry: Registry;
  }) {
    super(options);
    this.#bounds = [...options.buckets].sort((a, b) => a - b);
  }

  #plain: HistogramSeries | undefined;
  /** The series without labels (a histogram declared with none). */
  observe(value: number): void {
    this.#plain ??= this.labels();
    this.#plain.observe(value);
  }

  protected create(): HistogramSeries {
    return new HistogramSeries(this.#bounds);
  }

  protected values(labels: Labels, series: HistogramSeries): Value[] {
    const out: Value[] = [];
    let cumulative = 0;
    this.#bounds.forEach((le, i) => {
      cumulative += series.counts[i]!;
      out.push({ metricName: `${this.name}_bucket`, labels: { le, ...labels }, value: cumulative });
    });
    out.push({ metricName: `${this.name}_bucket`, labels: { le: "+Inf", ...labels }, value: series.count });
    out.push({ metricName: `${this.name}_sum`, labels, value: series.sum });
    out.push({ metricName: `${this.name}_count`, labels, value: series.count });
    return out;
  }

  protected zero(series: HistogramSeries): void {
    series.counts.fill(0);
    series.sum = 0;
    series.count = 0;
  }
}
