// Splitting a page's rows into kv-chunk messages that fit NATS's max_payload, and placing a received chunk
// back into a page. Chunks are cut by token ranges, greedily as long as the encoded message (envelope
// included) stays <= maxPayload, which gives the fewest chunks since size grows with the token count.
import type { KvDtype } from '../kv/kv-dtype.js';
import { encodeMessage, packr, validateMessage } from './codec.js';
import { WireUsageError } from './errors.js';
import { U32_MAX } from './fields.js';
import { kvChunkChecksum, kvChunkMessage, type KvChunk } from './messages/kv-chunk.js';
import { WIRE_VERSION } from './messages/spec.js';

/** Rows of one layer for tokens [tokenStart, tokenStart + tokenCount), all inside page pageIndex. */
export interface KvPageSlice {
  readonly requestId: string;
  readonly layer: number;
  readonly pageIndex: number;
  readonly pageSize: number;
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly layoutKey: string;
  readonly dtype: KvDtype;
  readonly rowBytes: number;
  /** tokenCount · rowBytes bytes. */
  readonly rows: Uint8Array;
  /** tokenCount · 4 bytes for fp8_e4m3, else empty. */
  readonly scales: Uint8Array;
}

export interface EncodedKvChunk {
  readonly message: KvChunk;
  /** encodeMessage(message): what to publish; byteLength <= maxPayload. */
  readonly bytes: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** Encoded size of msgpack bin of `n` bytes (msgpackr picks bin8/bin16/bin32 by length). */
const binSize = (n: number) => n + (n < 0x100 ? 2 : n < 0x10000 ? 3 : 5);

/**
 * Splits a slice into the fewest kv-chunk messages whose encodings are each <= maxPayload (take it from
 * maxPayloadOf(nc)). Throws WireError if the slice is inconsistent (as a receiver would reject it) and
 * WireUsageError if a single row does not fit.
 */
export function kvChunkMessages(slice: KvPageSlice, maxPayload: number): EncodedKvChunk[] {
  if (!Number.isInteger(maxPayload) || maxPayload < 1) throw new WireUsageError(`maxPayload ${maxPayload} must be a positive integer`);
  const { rows, scales } = slice;
  const { requestId, layer, pageIndex, pageSize, layoutKey, dtype, rowBytes } = slice;
  const header = { requestId, layer, pageIndex, pageSize, layoutKey, dtype, rowBytes }; // exactly the schema's keys
  validateMessage({ v: WIRE_VERSION, type: 'kv-chunk', ...slice, checksum: 0 }); // sizes, range, layout
  const scaleBytes = scales.byteLength / slice.tokenCount;
  const tokenBytes = slice.rowBytes + scaleBytes;
  const part = (off: number, n: number) => ({
    rows: rows.subarray(off * slice.rowBytes, (off + n) * slice.rowBytes),
    scales: scales.subarray(off * scaleBytes, (off + n) * scaleBytes),
  });
  // Exact encoded size of the chunk of n tokens from slice offset off, computed without copying its rows.
  const sizeOf = (off: number, n: number, checksum: number) => {
    const head = { v: WIRE_VERSION, type: 'kv-chunk', ...header, tokenStart: slice.tokenStart + off, tokenCount: n, rows: EMPTY, scales: EMPTY, checksum };
    return packr.pack(head).byteLength - 2 * binSize(0) + binSize(n * slice.rowBytes) + binSize(n * scaleBytes);
  };

  const out: EncodedKvChunk[] = [];
  for (let off = 0; off < slice.tokenCount; ) {
    const remaining = slice.tokenCount - off;
    // Tokens that fit with the widest checksum encoding (5 bytes); the estimate is high by a few tokens at most.
    let n = Math.max(0, Math.min(remaining, Math.floor((maxPayload - sizeOf(off, 0, U32_MAX)) / tokenBytes)));
    while (n > 0 && sizeOf(off, n, U32_MAX) > maxPayload) n--;
    // A checksum that encodes shorter (rare) may leave room for one more token.
    while (n < remaining && sizeOf(off, n + 1, 0) <= maxPayload) {
      const p = part(off, n + 1);
      if (sizeOf(off, n + 1, kvChunkChecksum(p.rows, p.scales)) > maxPayload) break;
      n++;
    }
    if (n === 0) {
      throw new WireUsageError(
        `kv-chunk of one row needs ${sizeOf(off, 1, U32_MAX)} bytes (rowBytes ${slice.rowBytes} + scales ${scaleBytes} + envelope) ` +
          `but maxPayload is ${maxPayload} (${slice.layoutKey}); raise the NATS server's max_payload`,
      );
    }
    const message = kvChunkMessage({ ...header, tokenStart: slice.tokenStart + off, tokenCount: n, ...part(off, n) });
    const bytes = encodeMessage(message);
    if (bytes.byteLength > maxPayload) throw new Error(`kvChunkMessages: sized ${n} tokens wrongly (${bytes.byteLength} > ${maxPayload})`);
    out.push({ message, bytes });
    off += n;
  }
  return out;
}

/** Where a chunk's bytes go in its page, in bytes from the page's start (see latent-layout.ts). */
export interface KvChunkPlacement {
  /** tokenStart mod pageSize: the first slot written. */
  readonly slot: number;
  readonly rowsOffset: number;
  readonly scalesOffset: number;
}

export function kvChunkPlacement(m: KvChunk): KvChunkPlacement {
  const slot = m.tokenStart % m.pageSize;
  const scaleBytes = m.scales.byteLength / m.tokenCount;
  return { slot, rowsOffset: slot * m.rowBytes, scalesOffset: m.pageSize * m.rowBytes + slot * scaleBytes };
}
