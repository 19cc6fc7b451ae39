// Wire errors. A `WireError` is a message refused on receipt (or, from `encodeMessage`, one a sender tried
// to send): its `reason` is the metric label every service counts it under, so the codes are a closed set.
// A `WireUsageError` is a sender's misuse that no peer is involved in: a row larger than the server's
// max_payload, an unknown max_payload, a subject built from a bad name.
import type { MessageType } from './message-types.js';

export const WIRE_REJECT_REASONS = [
  'malformed', // not msgpack, trailing bytes, or not a map at the top
  'version', // `v` missing or not WIRE_VERSION
  'unknown-type', // `type` missing or not a message type of this version
  'unexpected-type', // a known type that this subject does not carry
  'invalid', // a field of the wrong type, out of range, too long, or contradicting another field
  'size', // byte lengths or token ranges that disagree (rows vs tokenCount·rowBytes, a range crossing a page)
  'checksum', // kv-chunk bytes whose CRC-32 is not the one sent
] as const;
export type WireRejectReason = (typeof WIRE_REJECT_REASONS)[number];

export class WireError extends Error {
  override readonly name = 'WireError';

  /**
   * @param messageType the envelope's type when it was a known one, else undefined (never a raw string
   *   from the wire: it becomes a metric label).
   */
  constructor(
    readonly reason: WireRejectReason,
    message: string,
    readonly messageType?: MessageType,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class WireUsageError extends Error {
  override readonly name = 'WireUsageError';
}
