import { startDevBroker } from "@perishable/broker";
import { connect, redact } from "@perishable/sdk";
import { fmt, percentile, type SectionReport } from "../lib/report.js";

const LINES = {
  "a log line without secrets":
    "2026-11-22T10:00:00.000Z INFO agent=planner step=3 called tool search with 3 results in 120 ms",
  "a line with a prs_ token": `POST /proxy/openai/v1/chat/completions authorization: Bearer prs_0123456789_${"Ab3_x".repeat(8)}xyz status=200`,
  "a 4 KiB JSON body with two keys": JSON.stringify({
    model: "gpt-4o-mini",
    key: "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234",
    messages: Array.from({ length: 30 }, (_, i) => ({
      role: "user",
      content: `message number ${i} with some words in it to make it longer`,
    })),
    anthropic: "sk-ant-api03-AbCdEfGhIjKlMnOp-qrstu",
  }),
};

/** redact() throughput, and what session.fetch adds to a plain fetch of the same broker route. */
export const sdkBench = async (): Promise<SectionReport> => {
  const rows: string[][] = [];
  for (const [label, line] of Object.entries(LINES)) {
    for (let i = 0; i < 20_000; i++) redact(line); // warm up
    const n = 200_000;
    const start = performance.now();
    for (let i = 0; i < n; i++) redact(line);
    const seconds = (performance.now() - start) / 1000;
    rows.push([
      `redact(): ${label} (${line.length} chars)`,
      `${fmt(n / seconds / 1e6, 2)} M lines/s`,
      `${fmt((seconds / n) * 1e6, 2)} µs/line`,
    ]);
  }

  const dev = await startDevBroker({
    configure: (doc) => {
      doc.log = { level: "error" };
    },
  });
  try {
    const session = await connect({
      broker: dev.url,
      credential: dev.issuerKey,
      scopes: ["models:read"],
      ttl: 600,
    });
    const url = `${dev.url}/proxy/openai/v1/models`;
    const plain = () => fetch(url, { headers: { authorization: `Bearer ${session.token}` } });
    const wrapped = () => session.fetch("/proxy/openai/v1/models");
    const times = { plain: [] as number[], wrapped: [] as number[] };
    // Interleaved rounds, so that the machine's noise falls on both alike.
    for (let round = 0; round < 10; round++) {
      for (const [name, fn] of [
        ["plain", plain],
        ["wrapped", wrapped],
      ] as const) {
        for (let i = 0; i < 300; i++) {
          const t = performance.now();
          const response = await fn();
          await response.arrayBuffer();
          if (round > 0) times[name].push(performance.now() - t);
        }
      }
    }
    session.close();
    const p50 = (name: "plain" | "wrapped") => percentile(times[name], 50) * 1000;
    rows.push(
      ["plain fetch through the broker, p50", `${fmt(p50("plain"), 0)} µs`, ""],
      [
        "session.fetch through the broker, p50",
        `${fmt(p50("wrapped"), 0)} µs`,
        `+${fmt(p50("wrapped") - p50("plain"), 0)} µs`,
      ],
    );
  } finally {
    await dev.close();
  }
  return {
    id: "sdk",
    title: "SDK: redact() and session.fetch",
    command: "corepack pnpm bench sdk",
    header: ["measure", "value", "per call"],
    rows,
    notes: [
      "redact() makes one pass with one regular expression over the text, whatever the number of credential shapes.",
      "session.fetch vs fetch: the same GET through a dev broker (memory store, mock upstream), 2,700 calls each in interleaved rounds.",
    ],
  };
};
