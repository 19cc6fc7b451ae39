// heartbeat: decode node → everyone (the gateway routes by it). One every few seconds; `seq` lets a
// reader tell a restart (seq back near 0) or a lost beat from a late one.
// The optional fields (model, reservedPages, tokensOut, startedAt) feed the operators' cluster view only:
// a node that predates them still routes, and a receiver that predates them drops them (the schema strips
// unknown keys), so they need no wire version bump.
import { z } from 'zod';
import type { KvDtype } from '../../kv/kv-dtype.js';
import { kvDtype, label, layoutKey, msEpoch, positiveU32, u32, wireId } from '../fields.js';
import { parseLatentLayoutKey } from '../layout-key.js';
import { compact, WIRE_VERSION, type Envelope, type Fields, type MessageSpec } from './spec.js';

export interface Heartbeat extends Envelope<'heartbeat'> {
  readonly nodeId: string;
  /** modelFingerprint() of the checkpoint the node serves; prefill and decode must agree. */
  readonly fingerprint: string;
  /** latentLayoutKey() of the node's KV cache; kvDtype and pageSize must match it. */
  readonly layoutKey: string;
  readonly kvDtype: KvDtype;
  /** Tokens per page. */
  readonly pageSize: number;
  readonly totalPages: number;
  /** Pages neither in use nor reserved; <= totalPages. */
  readonly freePages: number;
  /** Sequences decoding now / waiting for a batch slot. */
  readonly running: number;
  readonly waiting: number;
  readonly maxBatch: number;
  /** Longest sequence (prompt + completion tokens) the node accepts. */
  readonly maxContext: number;
  /** The served model's name (its folder's name), for people; the fingerprint is what must match. */
  readonly model?: string;
  /** Of the pages not free, those held by leases awaiting a prefill's KV. */
  readonly reservedPages?: number;
  /** Completion tokens sent since the node started (its throughput is the difference between two beats). */
  readonly tokensOut?: number;
  /** When the node started (sender's clock, ms since the epoch). */
  readonly startedAt?: number;
  /** Per-node counter (wraps at 2^32). */
  readonly seq: number;
  /** Sender's clock, ms since the epoch. */
  readonly sentAt: number;
  /** The node is shutting down: it finishes what it runs and takes nothing new (absent = false). */
  readonly draining?: boolean;
}

export function heartbeatMessage(f: Fields<Heartbeat>): Heartbeat {
  return compact({ v: WIRE_VERSION, type: 'heartbeat', ...f });
}

export const heartbeatSpec: MessageSpec<Heartbeat> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION),
    type: z.literal('heartbeat'),
    nodeId: wireId,
    fingerprint: label,
    layoutKey,
    kvDtype,
    pageSize: positiveU32,
    totalPages: u32,
    freePages: u32,
    running: u32,
    waiting: u32,
    maxBatch: positiveU32,
    maxContext: positiveU32,
    model: label.optional(),
    reservedPages: u32.optional(),
    tokensOut: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    startedAt: msEpoch.optional(),
    seq: u32,
    sentAt: msEpoch,
    draining: z.boolean().optional(),
  }),
  check(m) {
    const layout = parseLatentLayoutKey(m.layoutKey)!; // the schema checked it parses
    if (m.kvDtype !== layout.dtype) return { reason: 'invalid', detail: `kvDtype ${m.kvDtype} but layoutKey ${m.layoutKey}` };
    if (m.pageSize !== layout.pageSize) return { reason: 'invalid', detail: `pageSize ${m.pageSize} but layoutKey ${m.layoutKey}` };
    if (m.freePages > m.totalPages) return { reason: 'invalid', detail: `freePages ${m.freePages} > totalPages ${m.totalPages}` };
    if (m.reservedPages !== undefined && m.reservedPages > m.totalPages - m.freePages) {
      return { reason: 'invalid', detail: `reservedPages ${m.reservedPages} > totalPages ${m.totalPages} - freePages ${m.freePages}` };
    }
    return undefined;
  },
  describe: (m) => ({
    type: m.type, nodeId: m.nodeId, seq: m.seq, layoutKey: m.layoutKey, fingerprint: m.fingerprint.slice(0, 12),
    freePages: m.freePages, totalPages: m.totalPages, running: m.running, waiting: m.waiting, draining: m.draining,
  }),
};
