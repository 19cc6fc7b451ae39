// Page id → (GPU buffer, index within it) for pools split across storage-buffer bindings.
import test from 'ava';
import { bufferPageCounts, pageLocation, pagesPerBinding } from '../../src/scheduler/index.js';

test('maps page ids to buffer and index', (t) => {
  t.deepEqual(pageLocation(0, 4), { buffer: 0, index: 0 });
  t.deepEqual(pageLocation(3, 4), { buffer: 0, index: 3 });
  t.deepEqual(pageLocation(4, 4), { buffer: 1, index: 0 });
  t.deepEqual(pageLocation(10, 4), { buffer: 2, index: 2 });
  t.deepEqual(pageLocation(7, 1), { buffer: 7, index: 0 });
  t.deepEqual(pageLocation(7, 100), { buffer: 0, index: 7 });
});

test('buffer sizes: full buffers then the remainder', (t) => {
  t.deepEqual(bufferPageCounts(10, 4), [4, 4, 2]);
  t.deepEqual(bufferPageCounts(8, 4), [4, 4]);
  t.deepEqual(bufferPageCounts(3, 4), [3]);
  t.deepEqual(bufferPageCounts(0, 4), []);
});

test('every page lands inside its buffer and the split round-trips', (t) => {
  for (const [numPages, perBuffer] of [[10, 4], [64, 7], [1000, 1000], [1001, 1000], [5, 1]] as const) {
    const counts = bufferPageCounts(numPages, perBuffer);
    t.is(counts.reduce((a, b) => a + b, 0), numPages);
    const misplaced: string[] = [];
    for (let id = 0; id < numPages; id++) {
      const { buffer, index } = pageLocation(id, perBuffer);
      if (!(buffer < counts.length && index < counts[buffer]!) || buffer * perBuffer + index !== id) {
        misplaced.push(`page ${id} of ${numPages}/${perBuffer} → (${buffer}, ${index})`);
      }
    }
    t.deepEqual(misplaced, []);
  }
});

test('pages per binding: whole pages only, and a page must fit', (t) => {
  // DeepSeek-V2-Lite latent page: 64 tokens × (512 + 64) × 2 bytes (f16) per layer.
  const pageBytes = 64 * 576 * 2;
  t.is(pagesPerBinding(128 * 2 ** 20, pageBytes), 1820);
  t.is(pagesPerBinding(pageBytes, pageBytes), 1);
  t.throws(() => pagesPerBinding(pageBytes - 1, pageBytes), { instanceOf: RangeError });
});

test('rejects bad arguments', (t) => {
  t.throws(() => pageLocation(-1, 4), { instanceOf: RangeError });
  t.throws(() => pageLocation(1.5, 4), { instanceOf: RangeError });
  t.throws(() => pageLocation(1, 0), { instanceOf: RangeError });
  t.throws(() => bufferPageCounts(4, 0), { instanceOf: RangeError });
  t.throws(() => pagesPerBinding(1024, 0), { instanceOf: RangeError });
});
