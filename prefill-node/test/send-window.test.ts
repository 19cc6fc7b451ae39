// The per-destination byte window, without NATS or a GPU: it bounds unacknowledged bytes per node, serves
// waiters in order, lets an oversized chunk through alone, keeps nodes independent, and aborts cleanly.
import test from 'ava';
import { SendWindows } from '../src/send-window.js';

const tick = () => new Promise((r) => setImmediate(r));

test('send window - holds bytes up to the window and grants waiters in arrival order as acks come back', async (t) => {
  let gauge = 0;
  const w = new SendWindows(100, (d) => (gauge += d));
  const a = await w.acquire('n1', 60);
  const b = await w.acquire('n1', 40); // exactly full
  const order: string[] = [];
  const c = w.acquire('n1', 30).then((r) => (order.push('c'), r));
  const d = w.acquire('n1', 5).then((r) => (order.push('d'), r)); // would fit after c, but must not overtake it
  await tick();
  t.deepEqual(order, []);
  t.is(w.inFlight('n1'), 100);
  b(); // 60 in flight: c (30) fits, then d (5)
  await tick();
  t.deepEqual(order, ['c', 'd']);
  t.is(w.inFlight('n1'), 95);
  t.is(gauge, 95);
  a();
  a(); // release is idempotent
  (await c)();
  (await d)();
  t.is(w.inFlight('n1'), 0);
  t.is(gauge, 0);
});

test('send window - a chunk larger than the window goes alone, when nothing else is in flight', async (t) => {
  const w = new SendWindows(10);
  const small = await w.acquire('n1', 4);
  let big = false;
  const pending = w.acquire('n1', 50).then((r) => ((big = true), r));
  await tick();
  t.false(big);
  small();
  const r = await pending;
  t.is(w.inFlight('n1'), 50);
  r();
  t.is(w.inFlight('n1'), 0);
});

test('send window - destinations are independent: a full node does not hold back another', async (t) => {
  const w = new SendWindows(10);
  const slow = await w.acquire('slow', 10);
  const blocked = w.acquire('slow', 1);
  const other = await w.acquire('fast', 10); // granted at once
  t.is(w.inFlight('fast'), 10);
  other();
  slow();
  (await blocked)();
  t.is(w.inFlight('slow'), 0);
});

test('send window - an aborted waiter rejects with the reason, takes nothing, and unblocks those behind it', async (t) => {
  const w = new SendWindows(10);
  const held = await w.acquire('n1', 8);
  const ac = new AbortController();
  const big = w.acquire('n1', 9, ac.signal);
  let small = false;
  const after = w.acquire('n1', 2).then((r) => ((small = true), r));
  await tick();
  t.false(small); // waits behind the big one
  ac.abort(new Error('cancelled'));
  await t.throwsAsync(big, { message: 'cancelled' });
  (await after)();
  t.true(small);
  held();
  t.is(w.inFlight('n1'), 0);
  await t.throwsAsync(w.acquire('n1', 1, ac.signal), { message: 'cancelled' }); // already aborted
  t.throws(() => new SendWindows(0), { instanceOf: RangeError });
});

test('send window - a grant shrunk to the chunk cut after it gives the rest back at once and lets waiters in', async (t) => {
  let gauge = 0;
  const w = new SendWindows(100, (d) => (gauge += d));
  const a = await w.acquire('n1', 100); // a max_payload's worth, before the chunk is cut
  let granted = false;
  const b = w.acquire('n1', 50).then((r) => ((granted = true), r));
  await tick();
  t.false(granted);
  a.shrink(40); // the chunk came out at 40 bytes
  await tick();
  t.true(granted);
  t.is(w.inFlight('n1'), 90);
  t.is(gauge, 90);
  a.shrink(60); // never grows
  t.is(w.inFlight('n1'), 90);
  t.throws(() => a.shrink(-1), { instanceOf: RangeError });
  a();
  a();
  (await b)();
  t.is(w.inFlight('n1'), 0);
  t.is(gauge, 0);
});
