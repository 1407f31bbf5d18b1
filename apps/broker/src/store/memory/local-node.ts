import type { Cut, LiveInfo, LiveQuery, NodeReport, NodeWork } from "../types.js";

/** The memory store's one node: what the node bus does across nodes, done in-process. */
export class LocalNode {
  readonly #work = new Set<NodeWork>();

  serve(work: NodeWork): () => void {
    this.#work.add(work);
    return () => this.#work.delete(work);
  }

  /** Cuts what is live of a revocation → how many connections. */
  cut(cut: Cut): number {
    let n = 0;
    for (const work of this.#work) n += work.cut(cut);
    return n;
  }

  async live(query: LiveQuery): Promise<NodeReport<LiveInfo>> {
    const answers = await Promise.all([...this.#work].map((work) => work.live(query)));
    return { answers: answers.flat(), nodes: 1, missing: 0 };
  }
}
