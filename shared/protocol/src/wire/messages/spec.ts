// What each message type module provides to the codec: its schema (field types and ranges), cross-field
// checks, a receipt-only verification (checksums), and its redacted log form.
import type { z } from 'zod';
import type { WireRejectReason } from '../errors.js';

/** The wire format version, sent as `v` in every envelope. A change a v1 peer would misread bumps it. */
export const WIRE_VERSION = 2 as const;

/** The envelope every message shares. */
export interface Envelope<T extends string> {
  readonly v: typeof WIRE_VERSION;
  readonly type: T;
}

/** A constructor's argument: the message without its envelope. */
export type Fields<M> = Omit<M, 'v' | 'type'>;

/** A field-level complaint from `check`/`verify`; the codec turns it into a WireError naming the type. */
export interface Problem {
  readonly reason: Extract<WireRejectReason, 'invalid' | 'size' | 'checksum'>;
  readonly detail: string;
}

/** A flat, redacted description for logs: ids, counts and sizes, never payload bytes or token ids (undefined = absent). */
export type MessageDescription = Readonly<Record<string, string | number | boolean | undefined>>;

export interface MessageSpec<M> {
  readonly schema: z.ZodType<M>;
  /** Cross-field consistency, run on encode and on decode after the schema passed. */
  readonly check?: (m: M) => Problem | undefined;
  /** Run on decode only, after `check`: what the sender computed once (the kv-chunk checksum). */
  readonly verify?: (m: M) => Problem | undefined;
  readonly describe: (m: M) => MessageDescription;
}

/** Drops undefined-valued keys so optional fields are absent on the wire (msgpack has no undefined). */
export function compact<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}
