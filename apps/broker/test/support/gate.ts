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

/**
 * Holds every stream the mock starts, after its first chunk, while armed (armed at first);
 * `release()` lets all of them go on and disarms it until `arm()`.
 */
export class HoldAll {
  #held: (() => void)[] = [];
  #armed = true;
  readonly wait = (): Promise<void> =>
    this.#armed ? new Promise((resolve) => this.#held.push(resolve)) : Promise.resolve();
  get waiting(): number {
    return this.#held.length;
  }
  release(): void {
    this.#armed = false;
    for (const open of this.#held.splice(0)) open();
  }
  arm(): void {
    this.#armed = true;
  }
}
