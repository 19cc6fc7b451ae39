// Cancelled request ids without NATS: active jobs are aborted with RequestGoneError, ids are remembered for
// the TTL, and the memory stays bounded.
import test from 'ava';
import { Cancellations } from '../src/cancellations.js';
import { RequestGoneError } from '../src/errors.js';

test('cancellations - a cancel aborts the active jobs of that request only, with RequestGoneError', (t) => {
  const c = new Cancellations({ ttlMs: 1000, maxIds: 10 });
  const a = c.track('req-a', 'lw.prefill.cancel');
  const b = c.track('req-b', 'lw.prefill.cancel');
  t.is(c.cancel('req-a', 'lw.prefill.cancel'), 1);
  t.true(a.signal.aborted);
  t.false(b.signal.aborted);
  t.true(a.signal.reason instanceof RequestGoneError);
  t.like(a.signal.reason, { requestId: 'req-a', reason: 'cancelled', source: 'lw.prefill.cancel' });
  a.untrack();
  b.untrack();
  t.is(c.cancel('req-b', 'x'), 0); // untracked: nothing to abort, but remembered
  t.true(c.isCancelled('req-b'));
});

test('cancellations - a job tracked after the cancel starts aborted; the id is forgotten after the TTL', (t) => {
  let now = 0;
  const c = new Cancellations({ ttlMs: 1000, maxIds: 10, now: () => now });
  c.cancel('req-a', 'x');
  t.true(c.track('req-a', 'x').signal.aborted);
  now = 999;
  t.true(c.isCancelled('req-a'));
  now = 1000;
  t.false(c.isCancelled('req-a'));
  t.false(c.track('req-a', 'x').signal.aborted);
  c.cancel('req-b', 'x'); // prunes the expired one
  t.is(c.size, 1);
});

test('cancellations - at most maxIds ids, the oldest forgotten first', (t) => {
  const c = new Cancellations({ ttlMs: 60_000, maxIds: 3 });
  for (const id of ['a', 'b', 'c', 'd']) c.cancel(id, 'x');
  t.is(c.size, 3);
  t.false(c.isCancelled('a'));
  t.true(c.isCancelled('d'));
  c.cancel('b', 'x'); // refreshed: now the newest
  c.cancel('e', 'x');
  t.true(c.isCancelled('b'));
  t.false(c.isCancelled('c'));
});
