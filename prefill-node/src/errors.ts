// The prefill node's errors, one class per thing the job processor does differently about them:
//   RequestGoneError    the request no longer wants KV (cancelled, or the decode node dropped it): the job
//                       ends quietly as completed, nothing is retried and no prefill-failed is sent
//   PrefillRefusedError retrying cannot help (bad job for this model, deadline passed, layout refused): the
//                       job fails at once without retry (BullMQ UnrecoverableError) and prefill-failed is sent
//   KvSendError         the network or the decode node failed (ack timeout, no responders, a malformed reply):
//                       BullMQ retries with the job's backoff; the last attempt sends prefill-failed
// Anything else (a GPU error) is treated like KvSendError.

export class PrefillNodeError extends Error {
  override readonly name: string = 'PrefillNodeError';
}

/** Why a request is gone: the gateway's cancel broadcast, or the decode node's refusal. */
export type GoneReason = 'cancelled' | 'no-reservation';

export class RequestGoneError extends PrefillNodeError {
  override readonly name = 'RequestGoneError';

  constructor(
    readonly requestId: string,
    readonly reason: GoneReason,
    /** Where it was learnt: the prefill-cancel broadcast or the decode node subject that refused. */
    readonly source: string,
    message: string,
  ) {
    super(message);
  }
}

export class PrefillRefusedError extends PrefillNodeError {
  override readonly name = 'PrefillRefusedError';
}

export class KvSendError extends PrefillNodeError {
  override readonly name = 'KvSendError';

  constructor(readonly subject: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
