import { randomBytes } from "node:crypto";
import type { RedisKeys } from "../keys.js";
import type { NodeReport, NodeWork } from "../types.js";
import { type Client, call, type ScriptedRedis } from "./client.js";

/** A node re-asks the members that have not answered this often (a lost message, a late subscriber). */
const RETRY_MS = 100;
/** A node counts itself stale this long before its lease ends on Redis's clock (drift between clocks). */
const MARGIN = 0.1;

/** A node's id: random, new at every start. */
export const newNodeId = (): string => `n_${randomBytes(8).toString("hex")}`;

/** What a node can be asked; `rule` is the store's own (a rule to load before anything is served). */
export interface Questions {
  cut: { q: Parameters<NodeWork["cut"]>[0]; a: number };
  live: { q: Parameters<NodeWork["live"]>[0]; a: Awaited<ReturnType<NodeWork["live"]>> };
  rule: { q: string; a: true };
}
type Kind = keyof Questions;
type Message =
  | { readonly t: "b"; readonly n: string; readonly s: number }
  | { readonly t: "q"; readonly id: string; readonly from: string; readonly kind: Kind; readonly q: unknown };

/**
 * What the store itself does for the bus: load a rule it was told of, forget what a revocation
 * ended (its node-local authority), reload and forget everything after a lapse.
 */
export interface StoreSide {
  rule(id: string): Promise<void>;
  cut(cut: Questions["cut"]["q"]): void;
  resync(): Promise<void>;
}

interface Pending {
  readonly answers: Map<string, unknown>;
  wake: () => void;
}

/**
 * The nodes of one deployment, and what they owe each other: every revocation and rule is applied
 * by every live node before the call that made it answers.
 *
 * - **Membership**: a sorted set of node id → lease end, on Redis's clock. A node renews its lease
 *   with a heartbeat it publishes on the bus channel, and only while it is fresh: while it heard its
 *   own last heartbeat back less than a lease ago. A node that stops hearing (its subscription
 *   dropped, Redis paused, the process stopped) stops renewing, and leaves the set when its lease ends.
 * - **Questions**: a node publishes a question (cut these grants and tokens, load this rule, report
 *   live connections) and collects an answer from every member, re-asking every 100 ms; it stops
 *   waiting for a member when that member's lease has ended — by then the member knows itself stale.
 * - **Staleness**: a node that goes stale may have missed messages. When it hears a heartbeat again
 *   it resyncs (`NodeWork.resync`: checks what is live against Redis, reloads rules) before it counts
 *   itself fresh; until then `staleSince` says since when, and the server fails closed on it.
 *
 * docs/consistency.md has the argument and the failure cases.
 */
export class NodeBus {
  readonly id: string;
  readonly #redis: ScriptedRedis;
  readonly #subscriber: Client;
  readonly #keys: RedisKeys;
  readonly #leaseMs: number;
  readonly #store: StoreSide;
  #work: NodeWork | undefined;
  readonly #pending = new Map<string, Pending>();
  /** Answers given lately, by question id: a question asked again gets the same answer. */
  readonly #given = new Map<string, Promise<unknown>>();
  /** Beats sent, by sequence number → when (performance.now). */
  readonly #sent = new Map<number, number>();
  #seq = 0;
  /** Fresh until this moment (performance.now); 0 while stale. */
  #freshUntil = 0;
  #staleSince: number | undefined = Date.now();
  #resyncing = false;
  /** Counts lapses: a resync that a lapse interrupted must not make the node fresh. */
  #lapses = 0;
  #timer: NodeJS.Timeout | undefined;
  #firstFresh: (() => void) | undefined;

  constructor(parts: {
    id: string;
    redis: ScriptedRedis;
    subscriber: Client;
    keys: RedisKeys;
    leaseMs: number;
    store: StoreSide;
  }) {
    this.id = parts.id;
    this.#redis = parts.redis;
    this.#subscriber = parts.subscriber;
    this.#keys = parts.keys;
    this.#leaseMs = parts.leaseMs;
    this.#store = parts.store;
  }

  /** The channels this bus listens on (subscribed by the store, with the rules channel). */
  get channels(): string[] {
    return [this.#keys.bus(), this.#keys.answers(this.id)];
  }

  /** Starts beating; resolves once this node is fresh and a member. */
  async start(within: <T>(p: Promise<T>) => Promise<T>): Promise<void> {
    this.#subscriber.on("message", (channel: string, message: string) => this.#hear(channel, message));
    for (const event of ["close", "end", "reconnecting"]) this.#subscriber.on(event, () => this.#lapse());
    const fresh = new Promise<void>((resolve) => {
      this.#firstFresh = resolve;
    });
    this.#timer = setInterval(() => this.#beat(), Math.max(10, Math.floor(this.#leaseMs / 5)));
    this.#timer.unref();
    this.#beat();
    await within(fresh);
    // Fresh now: this beat puts the node in the member set.
    await within(this.#beatNow());
  }

  /** Leaves the member set: nobody waits for this node any more. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#redis.zrem(this.#keys.nodes(), this.id).catch(() => {});
  }

  serve(work: NodeWork): () => void {
    this.#work = work;
    return () => {
      if (this.#work === work) this.#work = undefined;
    };
  }

  /** True while this node hears every message (its last heartbeat came back within its lease). */
  get fresh(): boolean {
    return this.#freshUntil > performance.now();
  }

  /** Since when (epoch ms) this node may have missed messages, or undefined while it is fresh. */
  get staleSince(): number | undefined {
    if (this.#freshUntil > performance.now()) return undefined;
    this.#staleSince ??= Date.now() - Math.max(0, performance.now() - this.#freshUntil);
    return this.#staleSince;
  }

  /**
   * Asks every live node (this one too) and collects their answers: resolves when every member
   * answered or its lease ended (`missing` counts those), or after `capMs` at the most.
   */
  async ask<K extends Kind>(
    kind: K,
    q: Questions[K]["q"],
    capMs = 10 * this.#leaseMs,
  ): Promise<NodeReport<Questions[K]["a"]>> {
    const id = randomBytes(9).toString("base64url");
    const pending: Pending = { answers: new Map(), wake: () => {} };
    this.#pending.set(id, pending);
    const message = JSON.stringify({ t: "q", id, from: this.id, kind, q } satisfies Message);
    const started = performance.now();
    try {
      await call(() => this.#redis.prsShout(this.#keys.nodes(), this.#keys.bus(), message));
      let asked = performance.now();
      let waitingFor = new Set((await this.#members()).keys());
      for (;;) {
        for (const node of pending.answers.keys()) waitingFor.delete(node);
        if (waitingFor.size === 0 || performance.now() - started > capMs) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, RETRY_MS);
          pending.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        if ([...waitingFor].every((node) => pending.answers.has(node))) continue;
        // Still waiting: drop members whose lease ended, ask the others again.
        const members = await this.#members();
        waitingFor = new Set([...waitingFor].filter((node) => members.has(node)));
        if (waitingFor.size > 0 && performance.now() - asked >= RETRY_MS) {
          await call(() => this.#redis.prsShout(this.#keys.nodes(), this.#keys.bus(), message));
          asked = performance.now();
        }
      }
      const missing = [...waitingFor].filter((node) => !pending.answers.has(node)).length;
      return {
        answers: [...pending.answers.values()] as Questions[K]["a"][],
        nodes: pending.answers.size,
        missing,
      };
    } finally {
      this.#pending.delete(id);
    }
  }

  /** Members whose lease runs now, with the ms left of it (Redis's clock). */
  async #members(): Promise<Map<string, number>> {
    const reply = await call(() => this.#redis.prsMembers(this.#keys.nodes()));
    const members = new Map<string, number>();
    for (let i = 0; i + 1 < reply.length; i += 2) members.set(reply[i]!, Number(reply[i + 1]));
    return members;
  }

  #beat(): void {
    this.#beatNow().catch(() => {});
  }

  async #beatNow(): Promise<void> {
    const seq = ++this.#seq;
    const now = performance.now();
    this.#sent.set(seq, now);
    if (this.#sent.size > 64) this.#sent.delete(this.#sent.keys().next().value!);
    const fresh = this.#freshUntil > now && !this.#resyncing;
    const beat = JSON.stringify({ t: "b", n: this.id, s: seq } satisfies Message);
    await this.#redis.prsBeat(this.#keys.nodes(), this.id, fresh ? this.#leaseMs : 0, this.#keys.bus(), beat);
  }

  #hear(channel: string, raw: string): void {
    let message: Message | { id: string; node: string; a: unknown };
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    if (channel === this.#keys.answers(this.id) && "node" in message) {
      const pending = this.#pending.get(message.id);
      if (pending && !pending.answers.has(message.node)) {
        pending.answers.set(message.node, message.a);
        pending.wake();
      }
    } else if (channel === this.#keys.bus() && "t" in message) {
      if (message.t === "b" && message.n === this.id) this.#heard(message.s);
      else if (message.t === "q") this.#answer(message);
    }
  }

  /** Our own beat came back: everything published before it reached us too, unless we were stale. */
  #heard(seq: number): void {
    const sent = this.#sent.get(seq);
    if (sent === undefined) return;
    const until = sent + this.#leaseMs * (1 - MARGIN);
    if (this.#freshUntil > performance.now()) {
      this.#freshUntil = Math.max(this.#freshUntil, until);
      return;
    }
    if (this.#resyncing) return;
    // Stale: messages may have been missed. Check what is live against Redis, then count from this
    // beat — unless the subscription dropped again meanwhile (then messages may be missed again).
    this.#resyncing = true;
    const lapses = this.#lapses;
    void Promise.all([this.#store.resync(), this.#work?.resync()])
      .then(
        () => {
          if (this.#lapses !== lapses) return;
          this.#freshUntil = until;
          this.#staleSince = undefined;
          this.#firstFresh?.();
          this.#firstFresh = undefined;
        },
        () => {},
      )
      .finally(() => {
        this.#resyncing = false;
      });
  }

  #lapse(): void {
    this.#lapses += 1;
    if (this.#freshUntil === 0) return;
    this.#freshUntil = 0;
    this.#staleSince = Date.now();
  }

  #answer(message: Extract<Message, { t: "q" }>): void {
    let answer = this.#given.get(message.id);
    if (!answer) {
      answer = this.#compute(message.kind, message.q);
      this.#given.set(message.id, answer);
      if (this.#given.size > 256) this.#given.delete(this.#given.keys().next().value!);
    }
    void answer
      .then((a) => {
        const reply = JSON.stringify({ id: message.id, node: this.id, a });
        return this.#redis.publish(this.#keys.answers(message.from), reply);
      })
      .catch(() => this.#given.delete(message.id));
  }

  async #compute(kind: Kind, q: unknown): Promise<unknown> {
    switch (kind) {
      case "cut":
        this.#store.cut(q as Questions["cut"]["q"]);
        return this.#work?.cut(q as Questions["cut"]["q"]) ?? 0;
      case "live":
        return (await this.#work?.live(q as Questions["live"]["q"])) ?? [];
      case "rule":
        await this.#store.rule(q as string);
        return true;
    }
  }
}
