// Why the scheduler turned a request away. `retryable` separates back-pressure (try later or elsewhere,
// e.g. HTTP 429/503) from requests that can never be served as sent.

export type RejectionReason =
  | 'queue-full' // the waiting queue is at its bound
  | 'no-pages' // not enough free pages right now for a reservation
  | 'too-large' // prompt + max_tokens needs more pages than the whole pool
  | 'duplicate-id' // a live sequence or reservation already has this id
  | 'no-reservation' // commit without a live reservation (never made, cancelled, or its lease expired)
  | 'reservation-too-small'; // commit needs more pages than were reserved

const RETRYABLE: ReadonlySet<RejectionReason> = new Set(['queue-full', 'no-pages']);

export class SchedulerRejection extends Error {
  override readonly name = 'SchedulerRejection';

  constructor(readonly reason: RejectionReason, message: string) {
    super(message);
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.reason);
  }
}
