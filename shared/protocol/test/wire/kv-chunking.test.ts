// kvChunkMessages: a layer's pages cut into kv-chunks of as many whole pages as fit max_payload (token runs
// only when a page does not fit), reassembled bytes equal to the input, page bytes copied once, straight
// into the message, and a clear error when one token cannot fit. KvChunkQueue: several layers' pages packed
// into chunks that span layers, each run placed in its own layer.
import test from 'ava';
import {
  KvChunkQueue, SUBJECT_TYPES, WireError, WireUsageError, decodeMessage, encodeMessage, kvChunkChecksum, kvChunkEnvelopeBytes, kvChunkMessage,
  kvChunkMessages, kvChunkPieces, kvChunkRuns, kvChunkTokens, parseLatentLayoutKey, type EncodedKvChunk, type KvLayerPages, type KvRun,
} from '../../src/wire/index.js';
import { packr } from '../../src/wire/codec.js';
import { pagesFor, type LatentKvLayout } from '../../src/kv/latent-layout.js';
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
      // per tokens a chunk; the last takes the rest of the layer, which may be up to a page more than per
      t.true(chunks.length <= Math.ceil(src.tokens / per), `${chunks.length} chunks of ${per}`);
      for (const c of chunks.slice(0, -1)) t.is(c.message.tokenCount, per);
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

test('kv chunking - at 1 MiB a DeepSeek fp8_e4m3 chunk is 25 whole pages, written straight into the message bytes', (t) => {
  const src = LAYERS['fp8_e4m3, whole pages'];
  const chunks = [...kvChunkMessages(src, 1 << 20)];
  t.deepEqual(chunks.map((c) => c.message.tokenCount), [25 * 64, 5 * 64]);
  t.true(chunks[0]!.bytes.byteLength > 0.98 * (1 << 20));
  // one copy of the page bytes: into the message's own buffer, which the message's data is a view of
  for (const c of chunks) {
    t.is(c.message.data.buffer, c.bytes.buffer);
    t.is(c.bytes.byteOffset, 0);
  }
  // A partial last page with scales has its rows and scales apart in the page: copied piece by piece.
  const partial = LAYERS['fp8_e4m3, a partial last page'];
  const tail = [...kvChunkMessages(partial, 1 << 20)];
  t.is(tail.length, 1);
  t.true(sameBytes(reassemble(partial, tail), partial.pages));
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

/** Decodes chunks of several layers and places each piece in its layer's pages (what a decode node does). */
function placeLayers(layout: LatentKvLayout, layers: number, tokens: number, chunks: readonly EncodedKvChunk[]): Uint8Array[] {
  const out = Array.from({ length: layers }, () => new Uint8Array(pagesFor(layout, tokens) * layout.pageBytes));
  for (const c of chunks) {
    const m = decodeMessage(c.bytes, SUBJECT_TYPES.kv);
    for (const p of kvChunkPieces(layout, m)) {
      out[p.layer]!.set(p.rows, p.pageIndex * layout.pageBytes + p.pageRowsOffset);
      out[p.layer]!.set(p.scales, p.pageIndex * layout.pageBytes + p.pageScalesOffset);
    }
  }
  return out;
}

for (const [name, tokens, pageSize, dtype] of [
  ['fp8_e4m3, 2048 tokens (32 pages a layer)', 2048, 64, 'fp8_e4m3'],
  ['fp8_e4m3, a partial last page', 64 * 7 + 23, 64, 'fp8_e4m3'],
  ['bf16, 100 tokens in 33-token pages', 100, 33, 'bf16'],
] as const) {
  test(`kv chunking - queue of 5 layers, ${name}: chunks span layers, fill maxPayload, and every run lands in its layer`, (t) => {
    const layers = Array.from({ length: 5 }, (_, l) => layerPages({ dtype, pageSize, tokens, layer: l, seed: 100 + l }));
    const { layout } = layers[0]!;
    for (const maxPayload of [65_536, 1 << 20, layout.pageBytes * 3 + 700]) {
      const q = new KvChunkQueue(layers[0]!.requestId, layout, tokens);
      for (const l of layers) q.push(l.layer, l.pages);
      t.is(q.queuedBytes, 5 * tokens * layout.tokenBytes);
      const chunks: EncodedKvChunk[] = [];
      for (let c = q.next(maxPayload); c; c = q.next(maxPayload)) chunks.push(c);
      t.true(q.empty);
      t.is(q.queuedBytes, 0);
      const placed = placeLayers(layout, 5, tokens, chunks);
      for (const l of layers) t.true(sameBytes(placed[l.layer]!, l.pages.subarray(0, placed[l.layer]!.byteLength)), `layer ${l.layer} at ${maxPayload}`);
      const total = 5 * tokens * layout.tokenBytes;
      const perChunk = kvChunkTokens(layout, layers[0]!.requestId, 0, maxPayload) * layout.tokenBytes;
      // as few chunks as whole pages allow: never more than the data over one-run chunks' whole pages, plus one
      t.true(chunks.length <= Math.ceil(total / perChunk) + 1, `${chunks.length} chunks of ${perChunk} B for ${total} B`);
      for (const c of chunks) {
        t.true(c.bytes.byteLength <= maxPayload);
        t.true(sameBytes(c.bytes, encodeMessage(c.message)), 'the same bytes as encodeMessage');
        const runs = kvChunkRuns(c.message);
        for (const r of runs.slice(0, -1)) t.is(r.tokenStart + r.tokenCount, tokens, 'a run before another ends its layer');
      }
      if (tokens * layout.tokenBytes < maxPayload / 2) t.true(chunks.some((c) => kvChunkRuns(c.message).length > 2), 'short layers: several a chunk');
      // a layer whose end leaves a chunk room for whole pages of the next one: that chunk spans layers
      const tail = tokens % (perChunk / layout.tokenBytes), room = perChunk / layout.tokenBytes - tail;
      if (tail > 0 && room >= Math.min(layout.pageSize, tokens)) t.true(chunks.some((c) => c.message.moreRuns !== undefined), `some chunk spans layers at ${maxPayload}`);
    }
  });
}

test('kv chunking - a queue sends what it has: one layer alone is cut as one-run chunks, the next layer joins the tail', (t) => {
  const tokens = 2048;
  const l0 = layerPages({ dtype: 'fp8_e4m3', pageSize: 64, tokens, layer: 0, seed: 1 });
  const l1 = layerPages({ dtype: 'fp8_e4m3', pageSize: 64, tokens, layer: 1, seed: 2 });
  const q = new KvChunkQueue(l0.requestId, l0.layout, tokens);
  q.push(0, l0.pages);
  const first = q.next(1 << 20)!;
  t.like(first.message, { layer: 0, tokenStart: 0, tokenCount: 25 * 64, moreRuns: undefined });
  q.push(1, l1.pages); // layer 1 arrives while the tail of layer 0 waits
  const second = q.next(1 << 20)!;
  t.deepEqual(kvChunkRuns(second.message), [{ layer: 0, tokenStart: 25 * 64, tokenCount: 7 * 64 }, { layer: 1, tokenStart: 0, tokenCount: 18 * 64 }]);
  t.throws(() => q.push(1, l1.pages), { instanceOf: RangeError, message: /layer 1 after layer 1/ });
  t.throws(() => new KvChunkQueue('bad id', l0.layout, tokens), { instanceOf: WireError, message: /not a wire id/ });
});

test('kv chunking - runs out of order, overlapping, or data of another length are refused on decode', (t) => {
  const layout = parseLatentLayoutKey('latent-v1/bf16/r64+16/p16')!;
  const data = new Uint8Array(40 * layout.tokenBytes);
  const base = { requestId: 'req-1', layer: 2, layoutKey: 'latent-v1/bf16/r64+16/p16', tokenStart: 0, tokenCount: 16 };
  const ok = kvChunkMessage({ ...base, moreRuns: [{ layer: 3, tokenStart: 0, tokenCount: 24 }], data });
  t.like(decodeMessage(encodeMessage(ok), SUBJECT_TYPES.kv), { moreRuns: [{ layer: 3, tokenStart: 0, tokenCount: 24 }] });
  const refused = (moreRuns: KvRun[], d = data) => {
    const bytes = packr.pack({ ...kvChunkMessage({ ...base, data: d }), moreRuns, checksum: kvChunkChecksum(d) });
    return t.throws(() => decodeMessage(bytes, SUBJECT_TYPES.kv), { instanceOf: WireError })!;
  };
  t.is(refused([{ layer: 1, tokenStart: 0, tokenCount: 24 }]).reason, 'invalid'); // an earlier layer
  t.regex(refused([{ layer: 2, tokenStart: 8, tokenCount: 24 }]).message, /run layer 2 token 8 is not after layer 2 tokens \[0, 16\)/); // overlap
  t.is(refused([{ layer: 3, tokenStart: 0, tokenCount: 23 }]).reason, 'size'); // data one token longer than the runs
  t.is(refused([]).reason, 'invalid'); // moreRuns present but empty
  // A peer that predates moreRuns drops the unknown field: its data is then longer than its one run: 'size'.
  const older = { ...packr.unpack(encodeMessage(ok)), moreRuns: undefined };
  delete older.moreRuns;
  const err = t.throws(() => decodeMessage(packr.pack(older), SUBJECT_TYPES.kv), { instanceOf: WireError })!;
  t.is(err.reason, 'size');
});
