// kv-chunk: prefill → decode node (request/reply: the kv-ack is the flow control), latent KV of one layer
// for a run of tokens that may span several pages of the request's page list, sized to fill NATS's
// max_payload (kv-chunking.ts). kv-ack: stored, or refused.
//
// The chunk carries its layout's key and nothing the key already says (no dtype, page size or row bytes to
// cross-check): the key names the latent layout, whose pagePieces() says where every byte goes. `data` is
// ONE msgpack bin field, so a message is a small map plus one block copy to encode, and decoding it gives a
// view into the received bytes (no copy): the schema checks the small header fields and that `data` is
// bytes, `check` its length, `verify` its CRC-32 (SIMD, @node-rs/crc32).
//
// Invariants a decoded chunk satisfies: layoutKey names a layout of this version; the run [tokenStart,
// tokenStart + tokenCount) is non-empty and within u32; data = tokenCount · layout.tokenBytes bytes in
// page-piece order (for each page the run touches, its rows then its scales; a run of whole pages is those
// pages' bytes); checksum = CRC-32 of data. Compared with the one-page chunk of before (rows and scales
// fields, pageIndex, dtype, pageSize, rowBytes), a peer of either shape refuses the other's chunks as
// 'invalid' (the fields differ), never misreads them, so the wire version stays 1.
import { crc32 } from '@node-rs/crc32';
import { z } from 'zod';
import { bytes, layoutKey, positiveU32, text, u32, U32_MAX, wireId } from '../fields.js';
import { parseLatentLayoutKey } from '../layout-key.js';
import { compact, WIRE_VERSION, type Envelope, type Fields, type MessageSpec } from './spec.js';

export interface KvChunk extends Envelope<'kv-chunk'> {
  readonly requestId: string;
  readonly layer: number;
  readonly layoutKey: string;
  /** First token of the run, counted from the start of the sequence (page tokenStart / pageSize holds it). */
  readonly tokenStart: number;
  readonly tokenCount: number;
  /** tokenCount · tokenBytes bytes in page-piece order. May alias the received message's bytes. */
  readonly data: Uint8Array;
  /** CRC-32 (u32) of data. */
  readonly checksum: number;
}

export const KV_ACK_REFUSALS = ['no-reservation', 'out-of-range', 'incompatible', 'cancelled'] as const;
export type KvAckRefusal = (typeof KV_ACK_REFUSALS)[number];

export interface KvAck extends Envelope<'kv-ack'> {
  readonly requestId: string;
  readonly layer: number;
  /** The acknowledged chunk's tokenStart (with requestId and layer it names the chunk). */
  readonly tokenStart: number;
  readonly ok: boolean;
  /** Present exactly when !ok. */
  readonly reason?: KvAckRefusal;
  /** For people: what was wrong (no payload contents). */
  readonly detail?: string;
}

/** CRC-32 of a chunk's data, as a u32. */
export function kvChunkChecksum(data: Uint8Array): number {
  return crc32(data);
}

/** A kv-chunk with its checksum computed. To cut a layer's pages into chunks that fit max_payload, see kvChunkMessages. */
export function kvChunkMessage(f: Omit<Fields<KvChunk>, 'checksum'>): KvChunk {
  return { v: WIRE_VERSION, type: 'kv-chunk', ...f, checksum: kvChunkChecksum(f.data) };
}

export function kvAckMessage(f: Fields<KvAck>): KvAck {
  return compact({ v: WIRE_VERSION, type: 'kv-ack', ...f });
}

export const kvChunkSpec: MessageSpec<KvChunk> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION),
    type: z.literal('kv-chunk'),
    requestId: wireId,
    layer: u32,
    layoutKey,
    tokenStart: u32,
    tokenCount: positiveU32,
    data: bytes,
    checksum: u32,
  }),
  check(m) {
    const layout = parseLatentLayoutKey(m.layoutKey)!; // the schema checked it parses
    if (m.tokenStart + m.tokenCount > U32_MAX) return { reason: 'size', detail: `tokens [${m.tokenStart}, +${m.tokenCount}) pass u32` };
    if (m.data.byteLength !== m.tokenCount * layout.tokenBytes) {
      return { reason: 'size', detail: `data ${m.data.byteLength} bytes, expected ${m.tokenCount} × ${layout.tokenBytes} for ${m.layoutKey}` };
    }
    return undefined;
  },
  verify(m) {
    const crc = kvChunkChecksum(m.data);
    return crc === m.checksum ? undefined : { reason: 'checksum', detail: `CRC-32 ${crc.toString(16)} but ${m.checksum.toString(16)} sent` };
  },
  describe: (m) => ({
    type: m.type, requestId: m.requestId, layer: m.layer, tokenStart: m.tokenStart, tokenCount: m.tokenCount,
    layoutKey: m.layoutKey, dataBytes: m.data.byteLength,
  }),
};

export const kvAckSpec: MessageSpec<KvAck> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION),
    type: z.literal('kv-ack'),
    requestId: wireId,
    layer: u32,
    tokenStart: u32,
    ok: z.boolean(),
    reason: z.enum(KV_ACK_REFUSALS).optional(),
    detail: text(1000).optional(),
  }),
  check: (m) => (m.ok === (m.reason === undefined) ? undefined : { reason: 'invalid', detail: m.ok ? `ok with reason ${m.reason}` : 'not ok and no reason' }),
  describe: (m) => ({
    type: m.type, requestId: m.requestId, layer: m.layer, tokenStart: m.tokenStart, ok: m.ok, reason: m.reason, detail: m.detail,
  }),
};
