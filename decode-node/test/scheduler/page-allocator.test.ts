// The page free list: exact ids (lowest first), all-or-nothing allocation, and double-free detection.
import test from 'ava';
import { PageAllocator } from '../../src/scheduler/index.js';

test('hands out the lowest free ids first, exactly, through a scripted history', (t) => {
  const pages = new PageAllocator(10);
  t.deepEqual(pages.allocate(3), [0, 1, 2]);
  t.deepEqual(pages.allocate(2), [3, 4]);
  pages.free([1]);
  t.deepEqual(pages.allocate(2), [1, 5]);
  pages.free([3, 0]);
  t.deepEqual(pages.allocate(3), [0, 3, 6]);
  pages.free([6, 2, 4]);
  t.deepEqual(pages.allocate(4), [2, 4, 6, 7]);
  t.is(pages.freeCount, 2);
  t.is(pages.usedCount, 8);
  t.deepEqual(pages.allocate(2), [8, 9]);
  t.is(pages.freeCount, 0);
});

test('allocation is all or nothing', (t) => {
  const pages = new PageAllocator(8);
  t.deepEqual(pages.allocate(5), [0, 1, 2, 3, 4]);
  t.is(pages.allocate(4), null);
  t.is(pages.freeCount, 3, 'a failed allocation takes nothing');
  t.deepEqual(pages.allocate(3), [5, 6, 7]);
  t.is(pages.allocate(1), null);
  t.deepEqual(pages.allocate(0), []);
  t.is(new PageAllocator(0).allocate(1), null);
});

test('double free, foreign ids and duplicates throw and change nothing', (t) => {
  const pages = new PageAllocator(6);
  pages.allocate(3); // 0, 1, 2
  pages.free([1]);
  t.throws(() => pages.free([1]), { message: /double free of page 1/ });
  t.throws(() => pages.free([4]), { message: /double free of page 4/ }, 'never allocated');
  t.throws(() => pages.free([0, 0]), { message: /double free of page 0/ }, 'same id twice in one call');
  t.throws(() => pages.free([2, 6]), { instanceOf: RangeError });
  t.throws(() => pages.free([2, -1]), { instanceOf: RangeError });
  t.true(pages.isAllocated(0) && pages.isAllocated(2), 'a throwing free frees none of its ids');
  t.is(pages.freeCount, 4);
  pages.free([0, 2]);
  t.is(pages.freeCount, 6);
  t.throws(() => pages.allocate(-1), { instanceOf: RangeError });
  t.throws(() => pages.allocate(1.5), { instanceOf: RangeError });
});

test('matches a sorted-set model over a long seeded history', (t) => {
  let state = 12345;
  const rand = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const pages = new PageAllocator(64);
  const free = new Set(Array.from({ length: 64 }, (_, i) => i));
  const held: number[][] = [];
  for (let op = 0; op < 5000; op++) {
    if (rand() < 0.55) {
      const n = Math.floor(rand() * 9);
      const want = n <= free.size ? [...free].sort((a, b) => a - b).slice(0, n) : null;
      const got = pages.allocate(n);
      t.deepEqual(got, want);
      if (got) {
        for (const id of got) free.delete(id);
        held.push(got);
      }
    } else if (held.length > 0) {
      const ids = held.splice(Math.floor(rand() * held.length), 1)[0]!;
      pages.free(ids);
      for (const id of ids) free.add(id);
    }
    if (pages.freeCount !== free.size) t.fail(`free count drifted at op ${op}`);
  }
});
