import { inspect } from "node:util";

/**
 * A configured secret (upstream credential, issuer or admin key, broker hashing secret).
 * It cannot leak by accident: it prints, inspects and serialises as "[secret]"; the value
 * comes out only through `reveal()`, which the few places that need it call explicitly.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
    Object.freeze(this);
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return "[secret]";
  }

  toJSON(): string {
    return "[secret]";
  }

  [inspect.custom](): string {
    return "[secret]";
  }
}
