/** A gate the mock upstream waits at after its first streamed chunk, opened by the test. */
export class Gate {
  #armed = false;
  #open: (() => void) | undefined;

  /** The next stream will wait after its first chunk until `release()`. */
  arm(): void {
    this.#armed = true;
  }

  release(): void {
    this.#armed = false;
    this.#open?.();
    this.#open = undefined;
  }

  readonly wait = (): Promise<void> => {
    if (!this.#armed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#open = resolve;
    });
  };
}
