import { Pool } from "undici";

/** A keep-alive client for one origin, for driving a broker from the bench. */
export const client = (origin: string, connections = 64) => {
  const pool = new Pool(origin, { connections, pipelining: 1 });
  const call = async (
    method: "GET" | "POST" | "DELETE",
    path: string,
    credential: string,
    body?: unknown,
  ) => {
    const response = await pool.request({
      method,
      path,
      headers: {
        authorization: `Bearer ${credential}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await response.body.text();
    return { status: response.statusCode, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  return { pool, call, close: () => pool.close() };
};

/** Runs `task(i)` for i in [0, n) with at most `concurrency` in flight. */
export const parallel = async (
  n: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<void> => {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) await task(next++);
    }),
  );
};
