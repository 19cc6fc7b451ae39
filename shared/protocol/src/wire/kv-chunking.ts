// Cutting a request's latent pages into kv-chunk messages that fill NATS's max_payload, and placing a
// received chunk back into pages. A KvChunkQueue holds the layers a prefill has handed over and not yet
// sent; each chunk cut from it takes as many whole pages as fit (25 fp8_e4m3 or 14 bf16 pages of 64 tokens
// in 1 MiB at DeepSeek shapes), from the tail of one layer on into the next ones when they are queued too,
// so chunks fill max_payload whatever the prompt length. Only when one page does not fit max_payload are
// chunks runs of tokens (filled across page and layer ends). A chunk is encoded in one pass into one buffer
// (a sender hands in buffers of acknowledged chunks): the msgpack header, then each run's page bytes copied
// straight into place (one copy of the data, no intermediate message), then the CRC-32 of that data region.
// The bytes are exactly what encodeMessage would give for the same message (tested).
import { latentLayoutKey, pagePieces, pagesFor, runBytes, tokenPlace, type LatentKvLayout, type LatentPagePiece } from '../kv/latent-layout.js';
import { packr } from './codec.js';
import { WireError, WireUsageError } from './errors.js';
import { U32_MAX, wireId } from './fields.js';
import { kvChunkChecksum, kvChunkRuns, MAX_KV_CHUNK_RUNS, type KvChunk, type KvRun } from './messages/kv-chunk.js';
import { WIRE_VERSION } from './messages/spec.js';

/** One layer's latent KV for tokens [0, tokens) of a request, as the prefill reads it back. */
export interface KvLayerPages {
  readonly requestId: string;
  readonly layer: number;
  readonly layout: LatentKvLayout;
  /** Rows in the pages (the prompt's tokens). */
  readonly tokens: number;
  /** pagesFor(layout, tokens) contiguous pages in the layout's bytes (at least that many bytes). */
  readonly pages: Uint8Array;
}

export interface EncodedKvChunk {
  /** The chunk; its data is a view into `bytes`. */
  readonly message: KvChunk;
  /** encodeMessage(message): what to publish; byteLength <= maxPayload. */
  readonly bytes: Uint8Array;
}

/** msgpack fixstr keys written after the header: `data` (then its bin) and `checksum` (then a uint). */
const DATA_KEY = Uint8Array.of(0xa4, ...Buffer.from('data'));
const CHECKSUM_KEY = Uint8Array.of(0xa8, ...Buffer.from('checksum'));
const WIDEST_BIN_HEADER = 5, WIDEST_U32 = 5;
const WIDEST_RUN = { layer: U32_MAX, tokenStart: U32_MAX, tokenCount: U32_MAX };

/** The header fields of a chunk (all but data and checksum), in wire order. */
function header(requestId: string, layoutKey: string, runs: readonly KvRun[]): object {
  const [first, ...more] = runs;
  const h = { v: WIRE_VERSION, type: 'kv-chunk', requestId, layer: first!.layer, layoutKey, tokenStart: first!.tokenStart, tokenCount: first!.tokenCount };
  return more.length > 0 ? { ...h, moreRuns: more } : h;
}

/**
 * Bytes of a chunk other than its data with `runs` runs, the first of layer `layer`, every other number at
 * its widest (an upper bound, within ~12 bytes for one run).
 */
function envelopeBytes(requestId: string, layoutKey: string, layer: number, runs: number): number {
  const widest = Array.from({ length: runs }, (_, i) => (i === 0 ? { ...WIDEST_RUN, layer } : WIDEST_RUN));
  return packr.pack(header(requestId, layoutKey, widest)).byteLength +
    DATA_KEY.byteLength + WIDEST_BIN_HEADER + CHECKSUM_KEY.byteLength + WIDEST_U32;
}

/**
 * Bytes of a one-run kv-chunk of this request and layer other than its data, with the widest encodings of
 * its numbers (u32 token range and checksum, bin32 header): at most ~12 bytes more than any real chunk's.
 */
export function kvChunkEnvelopeBytes(layout: LatentKvLayout, requestId: string, layer: number): number {
  return envelopeBytes(requestId, latentLayoutKey(layout), layer, 1);
}

function tooSmall(layout: LatentKvLayout, envelope: number, maxPayload: number): WireUsageError {
  return new WireUsageError(
    `kv-chunk of one row needs ${envelope + layout.tokenBytes} bytes (${layout.tokenBytes} a token + ${envelope} envelope) ` +
      `but maxPayload is ${maxPayload} (${latentLayoutKey(layout)}); raise the NATS server's max_payload`,
  );
}

function checkMaxPayload(maxPayload: number): void {
  if (!Number.isInteger(maxPayload) || maxPayload < 1) throw new WireUsageError(`maxPayload ${maxPayload} must be a positive integer`);
}

/**
 * Tokens a one-run kv-chunk of this request and layer carries within maxPayload: whole pages when one fits,
 * else as many tokens as fit. Sized with kvChunkEnvelopeBytes, so every chunk fits without trial encodings.
 */
export function kvChunkTokens(layout: LatentKvLayout, requestId: string, layer: number, maxPayload: number): number {
  checkMaxPayload(maxPayload);
  const envelope = kvChunkEnvelopeBytes(layout, requestId, layer);
  const tokens = Math.floor((maxPayload - envelope) / layout.tokenBytes);
  if (tokens < 1) throw tooSmall(layout, envelope, maxPayload);
  return tokens >= layout.pageSize ? tokens - (tokens % layout.pageSize) : tokens;
}

interface QueuedLayer {
  readonly layer: number;
  readonly pages: Uint8Array;
  /** First token not yet cut into a chunk. */
  next: number;
}

/**
 * A request's layers not yet sent, in layer order, cut into kv-chunks on demand: next() takes the next
 * chunk's worth from the head, over layer boundaries. The queue keeps a reference to each layer's pages
 * until they are cut (the caller must not reuse the buffer).
 */
export class KvChunkQueue {
  readonly layoutKey: string;
  private readonly layers: QueuedLayer[] = [];
  private lastLayer = -1;
  private tokensQueued = 0;
  private readonly envelopes = new Map<string, number>();

  /** Throws WireError('invalid') for a request id the wire refuses. */
  constructor(readonly requestId: string, readonly layout: LatentKvLayout, readonly tokens: number) {
    if (!wireId.safeParse(requestId).success) throw new WireError('invalid', `kv-chunk: requestId ${JSON.stringify(requestId.slice(0, 40))} is not a wire id`, 'kv-chunk');
    if (!Number.isInteger(tokens) || tokens < 1 || tokens > U32_MAX) throw new RangeError(`KvChunkQueue: tokens ${tokens} must be a positive u32`);
    this.layoutKey = latentLayoutKey(layout);
  }

  /** Page bytes queued and not yet cut into a chunk (data bytes, without envelopes). */
  get queuedBytes(): number {
    return this.tokensQueued * this.layout.tokenBytes;
  }

  get empty(): boolean {
    return this.layers.length === 0;
  }

  /** Queues one layer's pages (layers in increasing order). Throws RangeError if `pages` is too short. */
  push(layer: number, pages: Uint8Array): void {
    const need = pagesFor(this.layout, this.tokens) * this.layout.pageBytes;
    if (pages.byteLength < need) throw new RangeError(`kv-chunk pages: ${pages.byteLength} page bytes for ${this.tokens} tokens, need ${need}`);
    if (!Number.isInteger(layer) || layer <= this.lastLayer || layer > U32_MAX) throw new RangeError(`kv-chunk pages: layer ${layer} after layer ${this.lastLayer}`);
    this.lastLayer = layer;
    this.layers.push({ layer, pages, next: 0 });
    this.tokensQueued += this.tokens;
  }

  /** Drops everything queued (the sender stopped). */
  clear(): void {
    this.layers.length = 0;
    this.tokensQueued = 0;
  }

  /**
   * Cuts and encodes the next chunk, <= maxPayload: whole pages from the head layer on, continuing into the
   * next queued layers while whole pages fit; undefined when nothing is queued. Throws WireUsageError if a
   * single token does not fit.
   */
  next(maxPayload: number, alloc?: ChunkAllocator): EncodedKvChunk | undefined {
    checkMaxPayload(maxPayload);
    const { layout } = this;
    const runs: KvRun[] = [];
    const sources: Uint8Array[] = [];
    let tokensIn = 0;
    // a max_payload too small for one page: chunks are runs of tokens, filled across page and layer ends
    const tokenRuns = this.layers.length > 0 && this.envelope(this.layers[0]!.layer, 1) + layout.pageSize * layout.tokenBytes > maxPayload;
    for (let i = 0; i < this.layers.length && runs.length < MAX_KV_CHUNK_RUNS; i++) {
      const q = this.layers[i]!;
      const room = maxPayload - this.envelope(runs[0]?.layer ?? q.layer, runs.length + 1) - tokensIn * layout.tokenBytes;
      const fit = Math.floor(room / layout.tokenBytes);
      const avail = this.tokens - q.next;
      let take = Math.min(avail, fit);
      if (take < avail && !tokenRuns) {
        // the chunk is full with this run: it ends on a page boundary; less than a page of room is left empty
        if (take >= layout.pageSize) take -= (q.next + take) % layout.pageSize;
        else break;
      }
      if (take < 1) {
        if (runs.length > 0) break;
        throw tooSmall(layout, this.envelope(q.layer, 1), maxPayload);
      }
      runs.push({ layer: q.layer, tokenStart: q.next, tokenCount: take });
      sources.push(q.pages);
      tokensIn += take;
      if (take < avail) break;
    }
    if (runs.length === 0) return undefined;
    const chunk = encodeKvChunk(this.requestId, layout, this.layoutKey, runs, sources, alloc);
    // advance the queue past what the chunk took
    for (const r of runs) {
      const q = this.layers[0]!;
      q.next = r.tokenStart + r.tokenCount;
      if (q.next === this.tokens) this.layers.shift();
    }
    this.tokensQueued -= tokensIn;
    if (chunk.bytes.byteLength > maxPayload) throw new Error(`KvChunkQueue: sized ${tokensIn} tokens wrongly (${chunk.bytes.byteLength} > ${maxPayload})`);
    return chunk;
  }

  /** Envelope bytes of a chunk of `runs` runs whose first is of `layer` (cached: a few keys a request). */
  private envelope(layer: number, runs: number): number {
    const key = `${layer}/${runs}`;
    let e = this.envelopes.get(key);
    if (e === undefined) {
      if (this.envelopes.size >= 256) this.envelopes.clear();
      this.envelopes.set(key, (e = envelopeBytes(this.requestId, this.layoutKey, layer, runs)));
    }
    return e;
  }
}

/**
 * Where an encoded chunk is written: `bytes` bytes of memory the caller owns until the chunk is sent (a
 * sender may hand out buffers of acknowledged chunks again). Default: a fresh allocation.
 */
export type ChunkAllocator = (bytes: number) => Uint8Array;

const allocate: ChunkAllocator = (n) => Buffer.allocUnsafe(n);

/**
 * Encodes a chunk of `runs` (run i's bytes read from sources[i], a layer's contiguous pages) into one buffer
 * of its exact size: what encodeMessage(kvChunkMessage(...)) gives, with one copy of the page bytes.
 */
export function encodeKvChunk(
  requestId: string, layout: LatentKvLayout, layoutKey: string, runs: readonly KvRun[], sources: readonly Uint8Array[], alloc: ChunkAllocator = allocate,
): EncodedKvChunk {
  const dataBytes = runs.reduce((n, r) => n + runBytes(layout, r.tokenCount), 0);
  const head = packr.pack(header(requestId, layoutKey, runs));
  // msgpackr writes an object's map header as map16 (0xde + u16 count) or a fixmap: either gets 2 entries more
  const map16 = head[0] === 0xde;
  if (!map16 && ((head[0]! & 0xf0) !== 0x80 || (head[0]! & 0x0f) > 13)) throw new Error(`encodeKvChunk: unexpected map header 0x${head[0]!.toString(16)}`);
  const binHeader = dataBytes < 0x100 ? 2 : dataBytes < 0x10000 ? 3 : 5;
  const dataAt = head.byteLength + DATA_KEY.byteLength + binHeader;
  const out = alloc(dataAt + dataBytes + CHECKSUM_KEY.byteLength + WIDEST_U32);
  out.set(head, 0);
  if (map16) writeBE(out, 1, ((head[1]! << 8) | head[2]!) + 2, 2);
  else out[0] = head[0]! + 2;
  let at = head.byteLength;
  out.set(DATA_KEY, at);
  at += DATA_KEY.byteLength;
  if (binHeader === 2) { out[at] = 0xc4; out[at + 1] = dataBytes; }
  else if (binHeader === 3) { out[at] = 0xc5; writeBE(out, at + 1, dataBytes, 2); }
  else { out[at] = 0xc6; writeBE(out, at + 1, dataBytes, 4); }
  at = dataAt;
  for (let i = 0; i < runs.length; i++) at = copyRun(layout, sources[i]!, runs[i]!.tokenStart, runs[i]!.tokenCount, out, at);
  const data = out.subarray(dataAt, at);
  const checksum = kvChunkChecksum(data);
  out.set(CHECKSUM_KEY, at);
  at += CHECKSUM_KEY.byteLength;
  const sum = packr.pack(checksum); // a uint at its shortest, as encodeMessage writes it
  out.set(sum, at);
  at += sum.byteLength;
  const bytes = out.subarray(0, at);
  const [first, ...more] = runs;
  const message: KvChunk = {
    v: WIRE_VERSION, type: 'kv-chunk', requestId, layer: first!.layer, layoutKey, tokenStart: first!.tokenStart, tokenCount: first!.tokenCount,
    ...(more.length > 0 ? { moreRuns: more } : {}), data, checksum,
  };
  return { message, bytes };
}

/** An unsigned big-endian integer of `width` bytes. */
function writeBE(out: Uint8Array, at: number, value: number, width: number): void {
  for (let i = width - 1; i >= 0; i--, value = Math.floor(value / 256)) out[at + i] = value & 0xff;
}

/** Copies a run's bytes from a layer's contiguous pages to out[at...] in page-piece order; returns the end. */
function copyRun(layout: LatentKvLayout, pages: Uint8Array, tokenStart: number, tokenCount: number, out: Uint8Array, at: number): number {
  const contiguous = contiguousRun(layout, pages, tokenStart, tokenCount);
  if (contiguous) {
    out.set(contiguous, at);
    return at + contiguous.byteLength;
  }
  for (const p of pagePieces(layout, tokenStart, tokenCount)) {
    const base = p.pageIndex * layout.pageBytes;
    out.set(pages.subarray(base + p.pageRowsOffset, base + p.pageRowsOffset + p.rowsBytes), at + p.dataOffset);
    out.set(pages.subarray(base + p.pageScalesOffset, base + p.pageScalesOffset + p.scalesBytes), at + p.dataOffset + p.rowsBytes);
  }
  return at + runBytes(layout, tokenCount);
}

/** A run's bytes as a view of the pages when they lie together there (whole pages, or no scales), else undefined. */
function contiguousRun(layout: LatentKvLayout, pages: Uint8Array, tokenStart: number, tokenCount: number): Uint8Array | undefined {
  const wholePages = tokenStart % layout.pageSize === 0 && (tokenCount % layout.pageSize === 0);
  if (layout.scaleBytes !== 0 && !wholePages) return undefined;
  const { pageIndex, slot } = tokenPlace(layout, tokenStart);
  const start = pageIndex * layout.pageBytes + slot * layout.rowBytes;
  return pages.subarray(start, start + runBytes(layout, tokenCount));
}

/**
 * The kv-chunks of one layer, in token order, each encoded and <= maxPayload (take it from maxPayloadOf(nc)).
 * Lazy, so a sender encodes a chunk only when its window lets it go. Throws WireUsageError if a single
 * token does not fit, RangeError if `pages` is shorter than the tokens need.
 */
export function* kvChunkMessages(src: KvLayerPages, maxPayload: number): Generator<EncodedKvChunk> {
  checkMaxPayload(maxPayload);
  const q = new KvChunkQueue(src.requestId, src.layout, src.tokens);
  q.push(src.layer, src.pages);
  for (let c = q.next(maxPayload); c; c = q.next(maxPayload)) yield c;
}

/**
 * A run's data out of contiguous pages: a view when the run's bytes lie together there (whole pages, or a
 * layout without scales), else its pieces copied into page-piece order (a page's first or last part, with
 * scales).
 */
export function runData(layout: LatentKvLayout, pages: Uint8Array, tokenStart: number, tokenCount: number): Uint8Array {
  const view = contiguousRun(layout, pages, tokenStart, tokenCount);
  if (view) return view;
  const out = new Uint8Array(runBytes(layout, tokenCount));
  copyRun(layout, pages, tokenStart, tokenCount, out, 0);
  return out;
}

/** One page's part of a received chunk: its layer, where it goes and its bytes (views into the chunk's data). */
export interface KvChunkPiece extends LatentPagePiece {
  readonly layer: number;
  readonly rows: Uint8Array;
  readonly scales: Uint8Array;
}

/**
 * Where a decoded chunk's bytes go, run by run and page by page (`layout` is the one its layoutKey names).
 * rows and scales are Uint8Array views built directly on the message's memory (cheaper than Buffer.subarray,
 * which a msgpackr-decoded `data` would otherwise use).
 */
export function kvChunkPieces(layout: LatentKvLayout, m: KvChunk): KvChunkPiece[] {
  const out: KvChunkPiece[] = [];
  const { buffer, byteOffset } = m.data;
  let base = 0;
  for (const r of kvChunkRuns(m)) {
    for (const p of pagePieces(layout, r.tokenStart, r.tokenCount)) {
      const at = base + p.dataOffset;
      out.push({
        pageIndex: p.pageIndex, slot: p.slot, tokens: p.tokens, dataOffset: at, rowsBytes: p.rowsBytes, scalesBytes: p.scalesBytes,
        pageRowsOffset: p.pageRowsOffset, pageScalesOffset: p.pageScalesOffset, layer: r.layer,
        rows: new Uint8Array(buffer, byteOffset + at, p.rowsBytes),
        scales: new Uint8Array(buffer, byteOffset + at + p.rowsBytes, p.scalesBytes),
      });
    }
    base += runBytes(layout, r.tokenCount);
  }
  return out;
}
