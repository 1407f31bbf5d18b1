/** One sample of Prometheus text: name, labels, value. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the Prometheus text exposition format (enough of it for the broker's own metrics). */
export const parseMetrics = (text: string): Sample[] => {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
};

export const sum = (
  samples: readonly Sample[],
  name: string,
  where: (l: Record<string, string>) => boolean = () => true,
) => samples.filter((s) => s.name === name && where(s.labels)).reduce((n, s) => n + s.value, 0);

/** A histogram's cumulative bucket counts, summed over its label sets, in order of `le`. */
const cumulative = (samples: readonly Sample[], name: string): { le: string; value: number }[] => {
  const byBound = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || s.labels.le === undefined) continue;
    byBound.set(s.labels.le, (byBound.get(s.labels.le) ?? 0) + s.value);
  }
  return [...byBound]
    .map(([le, value]) => ({ le, value }))
    .sort((a, b) => (a.le === "+Inf" ? 1 : b.le === "+Inf" ? -1 : Number(a.le) - Number(b.le)));
};

/** Cumulative histogram buckets → per-bucket counts, labelled by their upper bound. */
export const buckets = (samples: readonly Sample[], name: string): { le: string; count: number }[] => {
  const list = cumulative(samples, name);
  return list.map((b, i) => ({ le: b.le, count: b.value - (i > 0 ? list[i - 1]!.value : 0) }));
};

/** The value below which `q` of the observations fall (upper bound of the bucket it lands in). */
export const quantile = (samples: readonly Sample[], name: string, q: number): number | undefined => {
  const list = cumulative(samples, name);
  const total = list.at(-1)?.value ?? 0;
  if (total === 0) return undefined;
  const le = list.find((b) => b.value >= q * total)?.le;
  return le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le);
};
