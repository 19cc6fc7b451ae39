// KvCoverage: which prompt tokens of which layers arrived, merged into ranges; complete only when every
// layer holds exactly [0, promptTokens).
import test from 'ava';
import { KvCoverage } from '../../src/service/kv-coverage.js';

test('kv coverage - ranges in any order, split and repeated, merge into the whole prompt', (t) => {
  const c = new KvCoverage(2, 37);
  t.regex(c.missing()!, /layer 0 has 0 of 37 prompt tokens \(nothing\)/);
  // layer 0: pages of 16 in reverse order, the middle page split in two chunks and sent twice
  for (const [a, b] of [[32, 37], [24, 32], [16, 24], [16, 24], [0, 16]] as const) c.add(0, a, b);
  t.is(c.covered(0), 37);
  t.regex(c.missing()!, /^layer 1 has 0 of 37/);
  c.add(1, 0, 13);
  c.add(1, 20, 37);
  t.is(c.missing(), 'layer 1 has 30 of 37 prompt tokens ([0, 13) [20, 37))');
  c.add(1, 10, 21); // overlaps both neighbours
  t.is(c.covered(1), 37);
  t.is(c.missing(), undefined);
});

test('kv coverage - ranges outside the layers or the prompt are a caller bug', (t) => {
  const c = new KvCoverage(3, 10);
  t.throws(() => c.add(3, 0, 1), { instanceOf: RangeError });
  t.throws(() => c.add(0, 5, 11), { instanceOf: RangeError });
  t.throws(() => c.add(0, 4, 4), { instanceOf: RangeError });
  t.throws(() => new KvCoverage(0, 4), { instanceOf: RangeError });
});
