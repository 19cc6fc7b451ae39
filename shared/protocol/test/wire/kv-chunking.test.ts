// kvChunkMessages: pages split into the fewest kv-chunk messages that fit max_payload, reassembled bytes
// equal to the input, and a clear error when one row can't fit.
import test from 'ava';
import { latentKvLayout } from '@latentwire/protocol';
import {
  SUBJECT_TYPES, WireError, WireUsageError, decodeMessage, encodeMessage, kvChunkMessage, kvChunkMessages, kvChunkPlacement,
  type EncodedKvChunk, type KvPageSlice,
} from '../../src/wire/index.js';
import { pageSlice } from './samples.js';

// Buffer.equals, not t.deepEqual: ava's deep diff of 100 KB arrays takes seconds.
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

/** Decodes the chunks and writes them into a page buffer the way a decode node would; checks contiguity. */
function reassemble(slice: KvPageSlice, chunks: readonly EncodedKvChunk[]): { rows: Uint8Array; scales: Uint8Array } {
  const rowsOut = new Uint8Array(slice.rows.byteLength);
  const scalesOut = new Uint8Array(slice.scales.byteLength);
  const sliceSlot = slice.tokenStart % slice.pageSize;
  const scaleBytes = slice.scales.byteLength / slice.tokenCount;
  let next = slice.tokenStart;
  for (const c of chunks) {
    const m = decodeMessage(c.bytes, SUBJECT_TYPES.kv);
    if (m.tokenStart !== next) throw new Error(`chunk starts at ${m.tokenStart}, expected ${next}`);
    next += m.tokenCount;
    const p = kvChunkPlacement(m);
    rowsOut.set(m.rows, p.rowsOffset - sliceSlot * slice.rowBytes);
    scalesOut.set(m.scales, p.scalesOffset - slice.pageSize * slice.rowBytes - sliceSlot * scaleBytes);
  }
  if (next !== slice.tokenStart + slice.tokenCount) throw new Error(`chunks end at ${next}`);
  return { rows: rowsOut, scales: scalesOut };
}

const SLICES = {
  'fp8_e4m3 full page': pageSlice({ dtype: 'fp8_e4m3', pageSize: 64, tokenStart: 128, tokenCount: 64 }),
  'fp8_e4m3 page tail': pageSlice({ dtype: 'fp8_e4m3', pageSize: 64, tokenStart: 64 * 1000 + 23, tokenCount: 41, seed: 5 }),
  'bf16 full page, 33-token pages': pageSlice({ dtype: 'bf16', pageSize: 33, tokenStart: 0, tokenCount: 33, seed: 9 }),
  'f32 part of a 256-token page': pageSlice({ dtype: 'f32', pageSize: 256, tokenStart: 256 + 17, tokenCount: 200, seed: 13 }),
  'fp8_e5m2 full page, r=96': pageSlice({ dtype: 'fp8_e5m2', pageSize: 16, tokenStart: 16 * 7, tokenCount: 16, kvLoraRank: 96, seed: 17 }),
};

for (const [name, slice] of Object.entries(SLICES)) {
  test(`kv chunking - ${name}: reassembles exactly, each chunk <= maxPayload, fewest chunks`, (t) => {
    const tokenBytes = slice.rowBytes + slice.scales.byteLength / slice.tokenCount;
    const oneRow = kvChunkMessages({ ...slice, tokenCount: 1, rows: slice.rows.subarray(0, slice.rowBytes), scales: slice.scales.subarray(0, tokenBytes - slice.rowBytes) }, 1 << 20)[0]!.bytes.byteLength;
    // 1 row per chunk; 1 row + a few bytes; awkward sizes; NATS's 64 KiB and 1 MiB (all in one).
    for (const maxPayload of [oneRow, oneRow + tokenBytes - 1, 3 * tokenBytes + 300, 7777, 20_000, 65_536, 1 << 20]) {
      const chunks = kvChunkMessages(slice, maxPayload);
      const got = reassemble(slice, chunks);
      t.true(sameBytes(got.rows, slice.rows), `rows, maxPayload ${maxPayload}`);
      t.true(sameBytes(got.scales, slice.scales), `scales, maxPayload ${maxPayload}`);
      for (const c of chunks) {
        t.true(c.bytes.byteLength <= maxPayload, `${c.bytes.byteLength} > ${maxPayload}`);
        t.true(sameBytes(c.bytes, encodeMessage(c.message)));
      }
      if (maxPayload < oneRow + tokenBytes) t.is(chunks.length, slice.tokenCount, 'one row per chunk');
      if (maxPayload >= 1 << 20) t.is(chunks.length, 1);
      // Fewest: no chunk but the last could have taken one more token.
      for (const c of chunks.slice(0, -1)) {
        const m = c.message;
        const off = m.tokenStart - slice.tokenStart;
        const bigger = kvChunkMessage({
          ...m, tokenCount: m.tokenCount + 1,
          rows: slice.rows.subarray(off * slice.rowBytes, (off + m.tokenCount + 1) * slice.rowBytes),
          scales: slice.scales.subarray(off * (tokenBytes - slice.rowBytes), (off + m.tokenCount + 1) * (tokenBytes - slice.rowBytes)),
        });
        t.true(encodeMessage(bigger).byteLength > maxPayload, `chunk at ${m.tokenStart} could hold ${m.tokenCount + 1} tokens`);
      }
    }
  });
}

test('kv chunking - a row that cannot fit maxPayload is a clear WireUsageError', (t) => {
  const slice = SLICES['fp8_e4m3 full page'];
  const err = t.throws(() => kvChunkMessages(slice, 600), { instanceOf: WireUsageError });
  t.regex(err!.message, /kv-chunk of one row needs \d+ bytes \(rowBytes 640 \+ scales 4 \+ envelope\) but maxPayload is 600/);
  t.throws(() => kvChunkMessages(slice, 0), { instanceOf: WireUsageError, message: /maxPayload 0/ });
});

test('kv chunking - an inconsistent slice is refused before splitting', (t) => {
  const slice = SLICES['fp8_e4m3 full page'];
  const layout = latentKvLayout({ dtype: 'fp8_e4m3', kvLoraRank: 512, ropeDim: 64, pageSize: 64 });
  t.is(layout.rowBytes, slice.rowBytes);
  const crossing = { ...slice, tokenStart: slice.tokenStart + 1 }; // [129, 193) crosses the page end
  t.is(t.throws(() => kvChunkMessages(crossing, 65536), { instanceOf: WireError })?.reason, 'size');
  const short = { ...slice, rows: slice.rows.subarray(1) };
  t.is(t.throws(() => kvChunkMessages(short, 65536), { instanceOf: WireError })?.reason, 'size');
});
