// kv-chunk: prefill → decode node (request/reply: the kv-ack is the flow control), latent KV rows of one
// layer for a token range inside one page of the request's page list. kv-ack: stored, or refused.
//
// Invariants a decoded chunk satisfies (see `check`): layoutKey names a layout whose dtype, pageSize and
// rowBytes are the chunk's; pageIndex = floor(tokenStart / pageSize) and the range [tokenStart,
// tokenStart + tokenCount) ends inside that page; rows = tokenCount rows of rowBytes (the page layout's row
// bytes); scales = tokenCount f32 LE scales for fp8_e4m3, empty otherwise; checksum = CRC-32 of rows then
// scales. So a receiver can copy rows to byte (tokenStart mod pageSize)·rowBytes of its page as they are.
import { crc32 } from '@node-rs/crc32';
import { z } from 'zod';
import type { KvDtype } from '../../kv/kv-dtype.js';
import { bytes, kvDtype, layoutKey, positiveU32, text, u32, wireId } from '../fields.js';
import { parseLatentLayoutKey } from '../layout-key.js';
import { compact, WIRE_VERSION, type Envelope, type Fields, type MessageSpec } from './spec.js';

export interface KvChunk extends Envelope<'kv-chunk'> {
  readonly requestId: string;
  readonly layer: number;
  /** Index in the sequence's page list (not a decode-node page id: the receiver maps it). */
  readonly pageIndex: number;
  /** First token of the chunk, counted from the start of the sequence. */
  readonly tokenStart: number;
  readonly tokenCount: number;
  /** Tokens per page, as in layoutKey. */
  readonly pageSize: number;
  readonly layoutKey: string;
  readonly dtype: KvDtype;
  /** Bytes per row, as in layoutKey (sent so a reader can size buffers without parsing the key). */
  readonly rowBytes: number;
  /** tokenCount · rowBytes bytes. May alias the received message's bytes. */
  readonly rows: Uint8Array;
  /** tokenCount · 4 bytes (f32 LE) for fp8_e4m3, else empty. */
  readonly scales: Uint8Array;
  /** CRC-32 (u32) of rows then scales. */
  readonly checksum: number;
}

export const KV_ACK_REFUSALS = ['no-reservation', 'out-of-range', 'incompatible', 'cancelled'] as const;
export type KvAckRefusal = (typeof KV_ACK_REFUSALS)[number];

export interface KvAck extends Envelope<'kv-ack'> {
  readonly requestId: string;
  readonly layer: number;
  readonly pageIndex: number;
  readonly tokenStart: number;
  readonly ok: boolean;
  /** Present exactly when !ok. */
  readonly reason?: KvAckRefusal;
  /** For people: what was wrong (no payload contents). */
  readonly detail?: string;
}

/** CRC-32 of rows then scales, as a u32. */
export function kvChunkChecksum(rows: Uint8Array, scales: Uint8Array): number {
  return crc32(scales, crc32(rows));
}

/** A kv-chunk with its checksum computed. To split a page to fit max_payload, see kvChunkMessages. */
export function kvChunkMessage(f: Omit<Fields<KvChunk>, 'checksum'>): KvChunk {
  return { v: WIRE_VERSION, type: 'kv-chunk', ...f, checksum: kvChunkChecksum(f.rows, f.scales) };
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
    pageIndex: u32,
    tokenStart: u32,
    tokenCount: positiveU32,
    pageSize: positiveU32,
    layoutKey,
    dtype: kvDtype,
    rowBytes: positiveU32,
    rows: bytes,
    scales: bytes,
    checksum: u32,
  }),
  check(m) {
    const layout = parseLatentLayoutKey(m.layoutKey)!; // the schema checked it parses
    if (m.dtype !== layout.dtype) return { reason: 'invalid', detail: `dtype ${m.dtype} but layoutKey ${m.layoutKey}` };
    if (m.pageSize !== layout.pageSize) return { reason: 'invalid', detail: `pageSize ${m.pageSize} but layoutKey ${m.layoutKey}` };
    if (m.rowBytes !== layout.rowBytes) return { reason: 'size', detail: `rowBytes ${m.rowBytes} but ${layout.rowBytes} in ${m.layoutKey}` };
    const slot = m.tokenStart % m.pageSize;
    if (Math.floor(m.tokenStart / m.pageSize) !== m.pageIndex) {
      return { reason: 'size', detail: `tokenStart ${m.tokenStart} is not in page ${m.pageIndex} of ${m.pageSize} tokens` };
    }
    if (slot + m.tokenCount > m.pageSize) {
      return { reason: 'size', detail: `tokens [${m.tokenStart}, ${m.tokenStart + m.tokenCount}) cross the end of page ${m.pageIndex} of ${m.pageSize} tokens` };
    }
    if (m.rows.byteLength !== m.tokenCount * m.rowBytes) {
      return { reason: 'size', detail: `rows ${m.rows.byteLength} bytes, expected ${m.tokenCount} × ${m.rowBytes}` };
    }
    if (m.scales.byteLength !== m.tokenCount * layout.scaleBytes) {
      return { reason: 'size', detail: `scales ${m.scales.byteLength} bytes, expected ${m.tokenCount} × ${layout.scaleBytes} for ${m.dtype}` };
    }
    return undefined;
  },
  verify(m) {
    const crc = kvChunkChecksum(m.rows, m.scales);
    return crc === m.checksum ? undefined : { reason: 'checksum', detail: `CRC-32 ${crc.toString(16)} but ${m.checksum.toString(16)} sent` };
  },
  describe: (m) => ({
    type: m.type, requestId: m.requestId, layer: m.layer, pageIndex: m.pageIndex, tokenStart: m.tokenStart,
    tokenCount: m.tokenCount, layoutKey: m.layoutKey, rowsBytes: m.rows.byteLength, scalesBytes: m.scales.byteLength,
  }),
};

export const kvAckSpec: MessageSpec<KvAck> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION),
    type: z.literal('kv-ack'),
    requestId: wireId,
    layer: u32,
    pageIndex: u32,
    tokenStart: u32,
    ok: z.boolean(),
    reason: z.enum(KV_ACK_REFUSALS).optional(),
    detail: text(1000).optional(),
  }),
  check: (m) => (m.ok === (m.reason === undefined) ? undefined : { reason: 'invalid', detail: m.ok ? `ok with reason ${m.reason}` : 'not ok and no reason' }),
  describe: (m) => ({
    type: m.type, requestId: m.requestId, layer: m.layer, pageIndex: m.pageIndex, tokenStart: m.tokenStart,
    ok: m.ok, reason: m.reason, detail: m.detail,
  }),
};
