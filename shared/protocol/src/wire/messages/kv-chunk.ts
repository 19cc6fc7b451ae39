// kv-chunk: prefill → decode node (request/reply: the kv-ack is the flow control), latent KV for one or
// more runs of tokens, each run one layer's tokens [tokenStart, tokenStart + tokenCount) over as many pages
// of the request's page list as it spans, sized to fill NATS's max_payload (kv-chunking.ts). kv-ack: stored,
// or refused.
//
// The chunk carries its layout's key and nothing the key already says (no dtype, page size or row bytes to
// cross-check): the key names the latent layout, whose pagePieces() says where every byte goes. `data` is
// ONE msgpack bin field, so a message is a small map plus the page bytes, written straight into the message's
// buffer (kv-chunking.ts), and decoding it gives a view into the received bytes (no copy): the schema checks
// the small header fields and that `data` is bytes, `check` its length, `verify` its CRC-32 (SIMD,
// @node-rs/crc32).
//
// Runs: the first is (layer, tokenStart, tokenCount); `moreRuns`, present only when a chunk spans layers,
// lists the rest, in order (each after the one before: a later layer, or later tokens of the same layer).
// A sender packs the tail of one layer with the start of the next when both are ready, so chunks fill
// max_payload whatever the prompt length. A chunk of one run is the chunk of before, byte for byte; a peer
// that predates moreRuns drops the unknown field and refuses a multi-run chunk as 'size' (its data is longer
// than its first run), never misplacing it.
//
// Invariants a decoded chunk satisfies: layoutKey names a layout of this version; every run is non-empty
// and within u32, the runs are in (layer, token) order without overlap, at most MAX_KV_CHUNK_RUNS of them;
// data = (Σ tokenCount) · layout.tokenBytes bytes: for each run in order, for each page it touches, that
// part's rows then its scales (a run of whole pages is those pages' bytes); checksum = CRC-32 of data.
import { crc32 } from '@node-rs/crc32';
import { z } from 'zod';
import { bytes, layoutKey, positiveU32, text, u32, U32_MAX, wireId } from '../fields.js';
import { parseLatentLayoutKey } from '../layout-key.js';
import { compact, WIRE_VERSION, type Envelope, type Fields, type MessageSpec } from './spec.js';

/** One layer's tokens [tokenStart, tokenStart + tokenCount) of a request. */
export interface KvRun {
  readonly layer: number;
  /** First token of the run, counted from the start of the sequence (page tokenStart / pageSize holds it). */
  readonly tokenStart: number;
  readonly tokenCount: number;
}

/** Runs a kv-chunk may carry (a chunk spans at most this many layers). */
export const MAX_KV_CHUNK_RUNS = 1024;

export interface KvChunk extends Envelope<'kv-chunk'> {
  readonly requestId: string;
  /** The first run: its layer and tokens. */
  readonly layer: number;
  readonly layoutKey: string;
  readonly tokenStart: number;
  readonly tokenCount: number;
  /** The runs after the first, in order; absent for a chunk of one run. */
  readonly moreRuns?: readonly KvRun[];
  /** Σ tokenCount · tokenBytes bytes: each run's in page-piece order. May alias the received message's bytes. */
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

/**
 * A kv-chunk with its checksum computed, its keys in wire order. To cut pages into chunks that fit
 * max_payload, see KvChunkQueue / kvChunkMessages.
 */
export function kvChunkMessage(f: Omit<Fields<KvChunk>, 'checksum'>): KvChunk {
  const { requestId, layer, layoutKey, tokenStart, tokenCount, moreRuns, data } = f;
  const head = { v: WIRE_VERSION, type: 'kv-chunk' as const, requestId, layer, layoutKey, tokenStart, tokenCount };
  const checksum = kvChunkChecksum(data);
  return moreRuns && moreRuns.length > 0 ? { ...head, moreRuns, data, checksum } : { ...head, data, checksum };
}

/** Every run of a chunk, the first included, in order. */
export function kvChunkRuns(m: Pick<KvChunk, 'layer' | 'tokenStart' | 'tokenCount' | 'moreRuns'>): KvRun[] {
  const first = { layer: m.layer, tokenStart: m.tokenStart, tokenCount: m.tokenCount };
  return m.moreRuns ? [first, ...m.moreRuns] : [first];
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
    moreRuns: z.array(z.object({ layer: u32, tokenStart: u32, tokenCount: positiveU32 })).min(1).max(MAX_KV_CHUNK_RUNS - 1).optional(),
    data: bytes,
    checksum: u32,
  }),
  check(m) {
    const layout = parseLatentLayoutKey(m.layoutKey)!; // the schema checked it parses
    let tokens = 0, prev: KvRun | undefined;
    for (const r of kvChunkRuns(m)) {
      if (r.tokenStart + r.tokenCount > U32_MAX) return { reason: 'size', detail: `layer ${r.layer} tokens [${r.tokenStart}, +${r.tokenCount}) pass u32` };
      if (prev && !(r.layer > prev.layer || (r.layer === prev.layer && r.tokenStart >= prev.tokenStart + prev.tokenCount))) {
        return { reason: 'invalid', detail: `run layer ${r.layer} token ${r.tokenStart} is not after layer ${prev.layer} tokens [${prev.tokenStart}, ${prev.tokenStart + prev.tokenCount})` };
      }
      tokens += r.tokenCount;
      prev = r;
    }
    if (m.data.byteLength !== tokens * layout.tokenBytes) {
      return { reason: 'size', detail: `data ${m.data.byteLength} bytes, expected ${tokens} × ${layout.tokenBytes} for ${m.layoutKey}` };
    }
    return undefined;
  },
  verify(m) {
    const crc = kvChunkChecksum(m.data);
    return crc === m.checksum ? undefined : { reason: 'checksum', detail: `CRC-32 ${crc.toString(16)} but ${m.checksum.toString(16)} sent` };
  },
  describe: (m) => ({
    type: m.type, requestId: m.requestId, layer: m.layer, tokenStart: m.tokenStart, tokenCount: m.tokenCount,
    runs: 1 + (m.moreRuns?.length ?? 0), lastLayer: m.moreRuns?.at(-1)?.layer ?? m.layer,
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
