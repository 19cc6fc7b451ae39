// How much one request may ask of the gateway before it is refused, and the defaults the env table shows.
import type { BodyLimits } from './read-json-body.js';

export const DEFAULT_LIMITS = {
  /** 4× English's ~4 bytes a token, and room for a client that \u-escapes non-ASCII (~12 bytes a CJK token). */
  bodyBytesPerToken: 16,
  /** JSON text gzips 3–10×; a 25 KB bomb inflating to 10 MB is 400×. */
  maxInflationRatio: 100,
  /** The machine this runs on usually has few cores, shared with NATS and Redis. */
  tokenizerThreads: 2,
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
} as const;

/** Room for the JSON around a prompt that fills the context (sampling fields, roles, stop strings). */
export const BODY_HEADROOM_BYTES = 64 * 1024;

/** The body limit: `maxBytes` as given, or derived from the model's context. */
export function bodyLimits(
  maxPositionEmbeddings: number,
  o: { readonly maxBytes?: number | undefined; readonly bytesPerToken?: number | undefined; readonly maxInflationRatio?: number | undefined } = {},
): BodyLimits {
  return Object.freeze({
    maxBytes: o.maxBytes ?? maxPositionEmbeddings * (o.bytesPerToken ?? DEFAULT_LIMITS.bodyBytesPerToken) + BODY_HEADROOM_BYTES,
    maxInflationRatio: o.maxInflationRatio ?? DEFAULT_LIMITS.maxInflationRatio,
  });
}
