// Cutting one layer's latent pages into kv-chunk messages that fill NATS's max_payload, and placing a
// received chunk back into pages. A chunk holds as many whole pages as fit (several pages a message at
// DeepSeek shapes: 25 fp8_e4m3 or 14 bf16 pages of 64 tokens in 1 MiB); only when one page does not fit is
// a page cut into token runs. A run of whole pages is the prefill's page bytes as they are, so its data is a
// view, not a copy; msgpack encoding is then the header plus one block copy.
import { latentLayoutKey, pagePieces, pagesFor, runBytes, type LatentKvLayout, type LatentPagePiece } from '../kv/latent-layout.js';
import { encodeMessage, packr } from './codec.js';
import { WireUsageError } from './errors.js';
import { U32_MAX } from './fields.js';
import { kvChunkMessage, type KvChunk } from './messages/kv-chunk.js';
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
  readonly message: KvChunk;
  /** encodeMessage(message): what to publish; byteLength <= maxPayload. */
  readonly bytes: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** msgpack's bin header: bin8/bin16/bin32 by length; an empty bin takes 2 bytes, the widest 5. */
const EMPTY_BIN_HEADER = 2, WIDEST_BIN_HEADER = 5;

/**
 * Bytes of a kv-chunk of this request and layer other than its data, with the widest encodings of its
 * numbers (u32 token range and checksum, bin32 header): at most ~12 bytes more than any real chunk's.
 */
export function kvChunkEnvelopeBytes(layout: LatentKvLayout, requestId: string, layer: number): number {
  const widest = {
    v: WIRE_VERSION, type: 'kv-chunk', requestId, layer, layoutKey: latentLayoutKey(layout),
    tokenStart: U32_MAX, tokenCount: U32_MAX, data: EMPTY, checksum: U32_MAX,
  };
  return packr.pack(widest).byteLength - EMPTY_BIN_HEADER + WIDEST_BIN_HEADER;
}

/**
 * Tokens a kv-chunk of this request and layer carries within maxPayload: whole pages when one fits, else as
 * many tokens as fit. Sized with kvChunkEnvelopeBytes, so every chunk fits without trial encodings.
 */
export function kvChunkTokens(layout: LatentKvLayout, requestId: string, layer: number, maxPayload: number): number {
  if (!Number.isInteger(maxPayload) || maxPayload < 1) throw new WireUsageError(`maxPayload ${maxPayload} must be a positive integer`);
  const envelope = kvChunkEnvelopeBytes(layout, requestId, layer);
  const tokens = Math.floor((maxPayload - envelope) / layout.tokenBytes);
  if (tokens < 1) {
    throw new WireUsageError(
      `kv-chunk of one row needs ${envelope + layout.tokenBytes} bytes (${layout.tokenBytes} a token + ${envelope} envelope) ` +
        `but maxPayload is ${maxPayload} (${latentLayoutKey(layout)}); raise the NATS server's max_payload`,
    );
  }
  return tokens >= layout.pageSize ? tokens - (tokens % layout.pageSize) : tokens;
}

/**
 * The kv-chunks of one layer, in token order, each encoded and <= maxPayload (take it from maxPayloadOf(nc)).
 * Lazy, so a sender encodes a chunk only when its window lets it go. Throws WireUsageError if a single
 * token does not fit, RangeError if `pages` is shorter than the tokens need.
 */
export function* kvChunkMessages(src: KvLayerPages, maxPayload: number): Generator<EncodedKvChunk> {
  const { layout, tokens, requestId, layer } = src;
  const need = pagesFor(layout, tokens) * layout.pageBytes;
  if (src.pages.byteLength < need) throw new RangeError(`kvChunkMessages: ${src.pages.byteLength} page bytes for ${tokens} tokens, need ${need}`);
  const per = kvChunkTokens(layout, requestId, layer, maxPayload);
  const layoutKey = latentLayoutKey(layout);
  for (let tokenStart = 0; tokenStart < tokens; tokenStart += per) {
    const tokenCount = Math.min(per, tokens - tokenStart);
    const message = kvChunkMessage({ requestId, layer, layoutKey, tokenStart, tokenCount, data: runData(layout, src.pages, tokenStart, tokenCount) });
    const bytes = encodeMessage(message);
    if (bytes.byteLength > maxPayload) throw new Error(`kvChunkMessages: sized ${tokenCount} tokens wrongly (${bytes.byteLength} > ${maxPayload})`);
    yield { message, bytes };
  }
}

/**
 * A run's data out of contiguous pages: a view when the run's bytes lie together there (whole pages, or a
 * layout without scales), else its pieces copied into page-piece order (a page's first or last part, with
 * scales).
 */
export function runData(layout: LatentKvLayout, pages: Uint8Array, tokenStart: number, tokenCount: number): Uint8Array {
  const pieces = pagePieces(layout, tokenStart, tokenCount);
  const first = pieces[0]!;
  if (layout.scaleBytes === 0 || pieces.every((p) => p.tokens === layout.pageSize)) {
    const start = first.pageIndex * layout.pageBytes + first.pageRowsOffset;
    return pages.subarray(start, start + runBytes(layout, tokenCount));
  }
  const out = new Uint8Array(runBytes(layout, tokenCount));
  for (const p of pieces) {
    const base = p.pageIndex * layout.pageBytes;
    out.set(pages.subarray(base + p.pageRowsOffset, base + p.pageRowsOffset + p.rowsBytes), p.dataOffset);
    out.set(pages.subarray(base + p.pageScalesOffset, base + p.pageScalesOffset + p.scalesBytes), p.dataOffset + p.rowsBytes);
  }
  return out;
}

/** One page's part of a received chunk: where it goes and its bytes (views into the chunk's data). */
export interface KvChunkPiece extends LatentPagePiece {
  readonly rows: Uint8Array;
  readonly scales: Uint8Array;
}

/** Where a decoded chunk's bytes go, page by page (`layout` is the one its layoutKey names). */
export function kvChunkPieces(layout: LatentKvLayout, m: KvChunk): KvChunkPiece[] {
  return pagePieces(layout, m.tokenStart, m.tokenCount).map((p) => ({
    ...p,
    rows: m.data.subarray(p.dataOffset, p.dataOffset + p.rowsBytes),
    scales: m.data.subarray(p.dataOffset + p.rowsBytes, p.dataOffset + p.rowsBytes + p.scalesBytes),
  }));
}
