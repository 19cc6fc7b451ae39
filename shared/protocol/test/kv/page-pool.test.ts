// Page id → (GPU buffer, index, byte offset) for pools split across storage-buffer bindings, and pages for
// tokens: the layout's page arithmetic that the cache, scheduler, gateway and benches all ask.
import test from 'ava';
import { KvLayoutError, latentKvLayout, latentPagePool, pageLocation, pagePieces, pagesFor, pagesPerBinding, tokenPlace } from '../../src/index.js';

const page = (pageBytes: number) => ({ pageBytes });

test('page pool - maps page ids to buffer, index and byte offset', (t) => {
  const pool = latentPagePool(page(100), 11, 400);
  t.is(pool.pagesPerBuffer, 4);
  t.deepEqual(pageLocation(pool, 0), { buffer: 0, index: 0, byteOffset: 0 });
  t.deepEqual(pageLocation(pool, 3), { buffer: 0, index: 3, byteOffset: 300 });
  t.deepEqual(pageLocation(pool, 4), { buffer: 1, index: 0, byteOffset: 0 });
  t.deepEqual(pageLocation(pool, 10), { buffer: 2, index: 2, byteOffset: 200 });
  t.deepEqual(pageLocation(latentPagePool(page(100), 8, 100), 7), { buffer: 7, index: 0, byteOffset: 0 });
  t.deepEqual(pageLocation(latentPagePool(page(1), 8, 1e6), 7), { buffer: 0, index: 7, byteOffset: 7 });
});

test('page pool - buffer sizes: full buffers then the remainder, never more pages a buffer than the pool', (t) => {
  t.deepEqual(latentPagePool(page(1), 10, 4).bufferPages, [4, 4, 2]);
  t.deepEqual(latentPagePool(page(1), 8, 4).bufferPages, [4, 4]);
  t.deepEqual(latentPagePool(page(1), 3, 4).bufferPages, [3]);
  t.is(latentPagePool(page(1), 3, 4).pagesPerBuffer, 3);
  t.deepEqual(latentPagePool(page(1), 0, 4).bufferPages, []);
});

test('page pool - every page lands inside its buffer and the split round-trips', (t) => {
  for (const [numPages, perBuffer] of [[10, 4], [64, 7], [1000, 1000], [1001, 1000], [5, 1]] as const) {
    const pool = latentPagePool(page(3), numPages, 3 * perBuffer);
    const counts = pool.bufferPages;
    t.is(counts.reduce((a, b) => a + b, 0), numPages);
    const misplaced: string[] = [];
    for (let id = 0; id < numPages; id++) {
      const { buffer, index } = pageLocation(pool, id);
      if (!(buffer < counts.length && index < counts[buffer]!) || buffer * pool.pagesPerBuffer + index !== id) {
        misplaced.push(`page ${id} of ${numPages}/${perBuffer} → (${buffer}, ${index})`);
      }
    }
    t.deepEqual(misplaced, []);
  }
});

test('page pool - pages per binding: whole pages only, and a page must fit', (t) => {
  // DeepSeek-V2-Lite bf16 latent page: 64 tokens × (512 + 64) × 2 bytes per layer.
  const l = latentKvLayout({ kvLoraRank: 512, ropeDim: 64, pageSize: 64, dtype: 'bf16' });
  t.is(l.pageBytes, 64 * 576 * 2);
  t.is(pagesPerBinding(l, 128 * 2 ** 20), 1820);
  t.is(pagesPerBinding(l, l.pageBytes), 1);
  t.throws(() => pagesPerBinding(l, l.pageBytes - 1), { instanceOf: KvLayoutError });
});

test('page pool - rejects bad arguments', (t) => {
  const pool = latentPagePool(page(1), 8, 4);
  t.throws(() => pageLocation(pool, -1), { instanceOf: RangeError });
  t.throws(() => pageLocation(pool, 1.5), { instanceOf: RangeError });
  t.throws(() => pageLocation(pool, 8), { instanceOf: RangeError });
  t.throws(() => latentPagePool(page(1), -1, 4), { instanceOf: RangeError });
  t.throws(() => pagesPerBinding(page(0), 1024), { instanceOf: RangeError });
});

test('layout - pages for tokens rounds up to whole pages and refuses nonsense', (t) => {
  t.is(pagesFor({ pageSize: 16 }, 0), 0);
  t.is(pagesFor({ pageSize: 16 }, 1), 1);
  t.is(pagesFor({ pageSize: 16 }, 16), 1);
  t.is(pagesFor({ pageSize: 16 }, 17), 2);
  t.is(pagesFor({ pageSize: 1 }, 100), 100);
  t.throws(() => pagesFor({ pageSize: 16 }, -1), { instanceOf: RangeError });
  t.throws(() => pagesFor({ pageSize: 0 }, 4), { instanceOf: RangeError });
  t.deepEqual(tokenPlace({ pageSize: 16 }, 35), { pageIndex: 2, slot: 3 });
});

test('layout - a run of tokens cut at page boundaries, rows then scales per page', (t) => {
  const l = latentKvLayout({ kvLoraRank: 8, ropeDim: 4, pageSize: 4, dtype: 'fp8_e4m3' });
  // rowBytes 8 + 8 (rope bf16) = 16, scale 4: tokenBytes 20, pageBytes 80, scales at 64
  const pieces = pagePieces(l, 3, 6);
  t.deepEqual(pieces.map((p) => [p.pageIndex, p.slot, p.tokens, p.dataOffset, p.pageRowsOffset, p.pageScalesOffset]), [
    [0, 3, 1, 0, 48, 76],
    [1, 0, 4, 20, 0, 64],
    [2, 0, 1, 100, 0, 64],
  ]);
  // whole pages from a page boundary are the pages' own bytes
  t.deepEqual(pagePieces(l, 4, 8).map((p) => p.dataOffset), [0, l.pageBytes]);
  t.throws(() => pagePieces(l, 0, 0), { instanceOf: KvLayoutError });
});
