// kvChunkMessages: a layer's pages cut into kv-chunks of as many whole pages as fit max_payload (token runs
// only when a page does not fit), reassembled bytes equal to the input, page bytes sent as views (no copy)
// where they lie together, and a clear error when one token cannot fit.
import test from 'ava';
import {
  SUBJECT_TYPES, WireUsageError, decodeMessage, encodeMessage, kvChunkEnvelopeBytes, kvChunkMessages, kvChunkPieces, kvChunkTokens,
  parseLatentLayoutKey, type EncodedKvChunk, type KvLayerPages,
} from '../../src/wire/index.js';
import { layerPages } from './samples.js';

// Buffer.equals, not t.deepEqual: ava's deep diff of 100 KB arrays takes seconds.
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

/** Decodes the chunks and writes them into zeroed pages as a decode node would; checks the runs are contiguous. */
function reassemble(src: KvLayerPages, chunks: readonly EncodedKvChunk[]): Uint8Array {
  const out = new Uint8Array(src.pages.byteLength);
  let next = 0;
  for (const c of chunks) {
    const m = decodeMessage(c.bytes, SUBJECT_TYPES.kv);
    if (m.tokenStart !== next) throw new Error(`chunk starts at ${m.tokenStart}, expected ${next}`);
    next += m.tokenCount;
    const layout = parseLatentLayoutKey(m.layoutKey)!;
    for (const p of kvChunkPieces(layout, m)) {
      out.set(p.rows, p.pageIndex * layout.pageBytes + p.pageRowsOffset);
      out.set(p.scales, p.pageIndex * layout.pageBytes + p.pageScalesOffset);
    }
  }
  if (next !== src.tokens) throw new Error(`chunks end at ${next}, not ${src.tokens}`);
  return out;
}

const LAYERS = {
  'fp8_e4m3, whole pages': layerPages({ dtype: 'fp8_e4m3', pageSize: 64, tokens: 64 * 30 }),
  'fp8_e4m3, a partial last page': layerPages({ dtype: 'fp8_e4m3', pageSize: 64, tokens: 64 * 7 + 23, seed: 5 }),
  'bf16, 33-token pages': layerPages({ dtype: 'bf16', pageSize: 33, tokens: 100, seed: 9 }),
  'f32, 256-token pages': layerPages({ dtype: 'f32', pageSize: 256, tokens: 517, seed: 13 }),
  'fp8_e5m2, r=96': layerPages({ dtype: 'fp8_e5m2', pageSize: 16, tokens: 16 * 7 + 1, kvLoraRank: 96, seed: 17 }),
};

for (const [name, src] of Object.entries(LAYERS)) {
  test(`kv chunking - ${name}: reassembles exactly, each chunk <= maxPayload, as full as whole pages allow`, (t) => {
    const { layout } = src;
    const envelope = kvChunkEnvelopeBytes(layout, src.requestId, src.layer);
    const oneToken = envelope + layout.tokenBytes; // the least maxPayload that works
    t.true([...kvChunkMessages({ ...src, tokens: 1 }, oneToken)][0]!.bytes.byteLength <= oneToken);
    // 1 token a chunk; awkward sizes; a page and a bit; NATS's 64 KiB and 1 MiB.
    for (const maxPayload of [oneToken, oneToken + layout.tokenBytes - 1, 3 * layout.tokenBytes + 300, 7777, layout.pageBytes + 500, 65_536, 1 << 20]) {
      const chunks = [...kvChunkMessages(src, maxPayload)];
      t.true(sameBytes(reassemble(src, chunks), src.pages), `bytes, maxPayload ${maxPayload}`);
      const per = kvChunkTokens(layout, src.requestId, src.layer, maxPayload);
      t.is(chunks.length, Math.ceil(src.tokens / per));
      for (const c of chunks) {
        t.true(c.bytes.byteLength <= maxPayload, `${c.bytes.byteLength} > ${maxPayload}`);
        t.true(sameBytes(c.bytes, encodeMessage(c.message)));
      }
      if (per >= layout.pageSize) {
        // whole pages a chunk, and one page more would not fit
        t.is(per % layout.pageSize, 0);
        t.true(envelope + (per + layout.pageSize) * layout.tokenBytes > maxPayload, `${per} tokens at ${maxPayload}`);
      } else {
        // within a page: one token more would not fit (the envelope bound is within 12 bytes of the real one)
        t.true(envelope + (per + 1) * layout.tokenBytes > maxPayload, `${per} tokens at ${maxPayload}`);
        t.true(chunks[0]!.bytes.byteLength > envelope - 12 + per * layout.tokenBytes);
      }
      if (maxPayload < oneToken + layout.tokenBytes) t.is(chunks.length, src.tokens, 'one token per chunk');
    }
  });
}

test('kv chunking - at 1 MiB a DeepSeek fp8_e4m3 chunk is 25 whole pages, its data a view of the prefill bytes', (t) => {
  const src = LAYERS['fp8_e4m3, whole pages'];
  const chunks = [...kvChunkMessages(src, 1 << 20)];
  t.deepEqual(chunks.map((c) => c.message.tokenCount), [25 * 64, 5 * 64]);
  t.true(chunks[0]!.bytes.byteLength > 0.98 * (1 << 20));
  for (const c of chunks) t.is(c.message.data.buffer, src.pages.buffer); // no copy before encoding
  // A partial last page with scales has its rows and scales apart in the page: that chunk's data is copied.
  const tail = [...kvChunkMessages(LAYERS['fp8_e4m3, a partial last page'], 1 << 20)];
  t.is(tail.length, 1);
  t.not(tail[0]!.message.data.buffer, LAYERS['fp8_e4m3, a partial last page'].pages.buffer);
});

test('kv chunking - a token that cannot fit maxPayload is a clear WireUsageError', (t) => {
  const src = LAYERS['fp8_e4m3, whole pages'];
  const err = t.throws(() => [...kvChunkMessages(src, 600)], { instanceOf: WireUsageError });
  t.regex(err!.message, /kv-chunk of one row needs \d+ bytes \(644 a token \+ \d+ envelope\) but maxPayload is 600/);
  t.throws(() => [...kvChunkMessages(src, 0)], { instanceOf: WireUsageError, message: /maxPayload 0/ });
});

test('kv chunking - pages shorter than the tokens need are refused before sending', (t) => {
  const src = LAYERS['fp8_e4m3, whole pages'];
  t.throws(() => [...kvChunkMessages({ ...src, pages: src.pages.subarray(1) }, 65_536)], { instanceOf: RangeError, message: /page bytes for 1920 tokens/ });
});
