// Errors of the cluster backend. The HTTP layer turns anything that is not a BackendRejection into a 500
// whose body hides the details; these keep them (and their cause) for the log.

/** The token stream of a request broke: a lost message, silence past the idle timeout, or a node restart. */
export class TokenStreamError extends Error {
  override readonly name = 'TokenStreamError';
  constructor(
    readonly kind: 'gap' | 'idle' | 'node-restarted' | 'prefill-lost' | 'node-draining',
    readonly requestId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The decode node ended a request with finishReason 'error' or 'cancelled'. */
export class DecodeNodeError extends Error {
  override readonly name = 'DecodeNodeError';
  constructor(
    readonly nodeId: string,
    readonly requestId: string,
    readonly finishReason: 'error' | 'cancelled',
    message: string,
  ) {
    super(message);
  }
}

/** The prefill job could not be queued (Redis unreachable or too slow for the reservation's lease). */
export class PrefillEnqueueError extends Error {
  override readonly name = 'PrefillEnqueueError';
}
