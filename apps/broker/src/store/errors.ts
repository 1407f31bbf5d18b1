/** Thrown (never returned) when the store cannot be reached: the broker fails closed with 503. */
export class StoreUnavailableError extends Error {
  constructor(message = "store unavailable", options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/** A revocation in force on the master whose replicas did not confirm it in time (its message is for the caller). */
export class UnreplicatedError extends StoreUnavailableError {
  constructor(message: string) {
    super(message);
    this.name = "UnreplicatedError";
  }
}
