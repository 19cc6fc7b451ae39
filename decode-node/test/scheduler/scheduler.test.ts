// The continuous-batching scheduler, down to exact page ids: admission, retirement, reservations, cancellation.
import test from 'ava';
import { Scheduler, SchedulerRejection, Sequence, type RejectionReason, type SchedulerOptions, type SequenceSpec } from '../../src/scheduler/index.js';

const EOS = 2;
const seq = (id: string, promptLength: number, maxNewTokens: number, extra: Partial<SequenceSpec> = {}) =>
  new Sequence({ id, promptLength, maxNewTokens, eosTokenIds: [EOS], ...extra });

function scheduler(opts: Partial<SchedulerOptions> = {}) {
  const clock = { now: 0 };
  const s = new Scheduler({ numPages: 16, pageSize: 4, maxBatch: 8, maxWaiting: 8, leaseMs: 1000, now: () => clock.now, ...opts });
  return { s, clock };
}

/** One engine step: every scheduled sequence samples `tokenFor(seq)` (default a non-stop token). */
function step(s: Scheduler, tokenFor: (q: Sequence) => number = () => 10) {
  const batch = s.schedule();
  const finished = s.onStepDone(batch.sequences.map((q) => ({ seqId: q.id, token: tokenFor(q) })));
  return { batch, finished };
}

const ids = (seqs: readonly Sequence[]) => seqs.map((q) => q.id);
function rejects(t: import('ava').ExecutionContext, fn: () => unknown, reason: RejectionReason, retryable: boolean) {
  const err = t.throws(fn, { instanceOf: SchedulerRejection });
  t.is(err?.reason, reason);
  t.is(err?.retryable, retryable);
}

test('exact page ids after a scripted run of admits, retirements and cancels', (t) => {
  const { s } = scheduler();
  const a = seq('a', 5, 3); // 8 tokens → 2 pages
  const b = seq('b', 3, 6); // 9 → 3
  const c = seq('c', 10, 2); // 12 → 3
  [a, b, c].forEach((q) => s.add(q));
  t.deepEqual(ids(s.schedule().admitted), ['a', 'b', 'c']);
  t.deepEqual([a.pageTable, b.pageTable, c.pageTable], [[0, 1], [2, 3, 4], [5, 6, 7]]);
  t.deepEqual(ids(s.onStepDone([{ seqId: 'a', token: 9 }, { seqId: 'b', token: EOS }, { seqId: 'c', token: 9 }])), ['b']);
  t.deepEqual([b.status, b.finishReason, b.pageTable], ['finished', 'stop', []]);
  t.is(s.stats().freePages, 11);
  const d = seq('d', 2, 2); // 1 page
  const e = seq('e', 7, 5); // 3 pages
  s.add(d);
  s.add(e);
  t.deepEqual(ids(s.schedule().sequences), ['a', 'c', 'd', 'e']);
  t.deepEqual([d.pageTable, e.pageTable], [[2], [3, 4, 8]]);
  t.true(s.cancel('a'));
  const f = seq('f', 20, 4); // 6 pages
  s.add(f);
  s.schedule();
  t.deepEqual(f.pageTable, [0, 1, 9, 10, 11, 12]);
  t.is(s.stats().freePages, 3);
});

test('the running batch never exceeds MAX_BATCH, and freed slots go to the oldest waiting', (t) => {
  const { s } = scheduler({ maxBatch: 2 });
  for (const [id, max] of [['a', 2], ['b', 4], ['c', 3], ['d', 1], ['e', 2]] as const) s.add(seq(id, 3, max));
  const admittedPerStep: string[][] = [];
  for (let i = 0; i < 20 && s.stats().running + s.stats().waiting > 0; i++) {
    const { batch } = step(s);
    t.true(batch.sequences.length <= 2);
    admittedPerStep.push(ids(batch.admitted));
  }
  t.deepEqual(admittedPerStep, [['a', 'b'], [], ['c'], [], ['d'], ['e'], []]);
});

test('no sequence waits on a longer one: each finishes after its own max_tokens', (t) => {
  const { s } = scheduler({ numPages: 64, maxBatch: 3 });
  for (const [id, max] of [['short', 2], ['mid', 5], ['long', 9]] as const) s.add(seq(id, 4, max));
  const finishedAt = new Map<string, number>();
  for (let n = 1; n <= 12; n++) {
    for (const q of step(s).finished) finishedAt.set(q.id, n);
    if (n === 2) s.add(seq('late', 4, 3)); // takes the slot `short` just freed, while `long` still runs
  }
  t.deepEqual(Object.fromEntries(finishedAt), { short: 2, mid: 5, late: 5, long: 9 });
});

test('a sequence that does not fit is passed over, a bounded number of times', (t) => {
  const { s } = scheduler({ numPages: 8, maxHeadBypass: 1 });
  s.add(seq('x', 20, 4)); // 6 pages
  s.schedule();
  for (const q of [seq('big', 10, 2), seq('s1', 2, 2), seq('s2', 2, 2)]) s.add(q); // 3, 1, 1 pages
  t.deepEqual(ids(s.schedule().admitted), ['s1'], 'big does not fit; s1 passes it; then the bypass limit holds s2');
  t.like(s.stats(), { waiting: 2, freePages: 1 });
  t.true(s.cancel('x'));
  const { admitted } = s.schedule();
  t.deepEqual(ids(admitted), ['big', 's2']);
  t.deepEqual(ids(admitted).map((id) => s.sequence(id)!.pageTable), [[0, 1, 2], [3]]);
});

test('maxHeadBypass 0 is strict FIFO', (t) => {
  const { s } = scheduler({ numPages: 8, maxHeadBypass: 0 });
  s.add(seq('x', 20, 4));
  s.schedule();
  s.add(seq('big', 10, 2));
  s.add(seq('small', 2, 2));
  t.deepEqual(s.schedule().admitted, []);
  s.cancel('x');
  t.deepEqual(ids(s.schedule().admitted), ['big', 'small']);
});

test('admission rejections are typed', (t) => {
  const { s } = scheduler({ maxWaiting: 2 });
  s.add(seq('a', 3, 3));
  s.add(seq('b', 3, 3));
  rejects(t, () => s.add(seq('c', 3, 3)), 'queue-full', true);
  rejects(t, () => s.add(seq('a', 3, 3)), 'duplicate-id', false);
  rejects(t, () => s.reserve('b', 4), 'duplicate-id', false);
  s.schedule();
  rejects(t, () => s.add(seq('huge', 60, 5)), 'too-large', false); // 65 tokens = 17 pages > 16
  rejects(t, () => s.reserve('huge', 65), 'too-large', false);
  rejects(t, () => s.reserve('r', 60), 'no-pages', true); // 15 pages, 12 free
  t.throws(() => s.reserve('z', 0), { instanceOf: RangeError });
  t.is(s.stats().freePages, 12, 'rejected requests take nothing');
});

test('a reservation that is not committed expires and its pages return', (t) => {
  const { s, clock } = scheduler({ numPages: 8 });
  const r1 = s.reserve('r1', 12);
  t.deepEqual([r1.pages, r1.expiresAt], [[0, 1, 2], 1000]);
  clock.now = 500;
  t.deepEqual(s.reserve('r2', 4).pages, [3]);
  clock.now = 999;
  t.like(s.stats(), { reserved: 2, reservedPages: 4, freePages: 4 });
  clock.now = 1000;
  t.deepEqual(s.expireLeases(), ['r1']);
  t.like(s.stats(), { reserved: 1, freePages: 7 });
  rejects(t, () => s.commit(seq('r1', 8, 4)), 'no-reservation', false);
  clock.now = 1500;
  s.schedule(); // schedule() expires leases too
  t.like(s.stats(), { reserved: 0, freePages: 8 });
  t.deepEqual(s.expireLeases(), []);
});

test('renew gives a live reservation another lease from now; nothing to renew once it expired or was committed', (t) => {
  const { s, clock } = scheduler();
  s.reserve('r', 8);
  clock.now = 900;
  t.true(s.renew('r'));
  clock.now = 1500; // past the first lease, within the renewed one
  t.truthy(s.reservation('r'));
  t.is(s.reservation('r')!.expiresAt, 1900);
  clock.now = 1900;
  t.is(s.reservation('r'), undefined);
  t.false(s.renew('r'));
  t.is(s.stats().freePages, 16);
  s.reserve('c', 8);
  s.commit(seq('c', 4, 4));
  t.false(s.renew('c'));
  t.false(s.renew('never'));
});

test('commit adopts the reserved pages, returns the surplus, and runs before waiting sequences', (t) => {
  const { s } = scheduler({ maxBatch: 1 });
  s.add(seq('w', 3, 3));
  t.deepEqual(s.reserve('d', 20).pages, [0, 1, 2, 3, 4]);
  const d = seq('d', 9, 3, { outputTokens: [42], cachedTokens: 9 }); // 12 tokens → 3 pages
  s.commit(d);
  t.deepEqual(d.pageTable, [0, 1, 2]);
  t.like(s.stats(), { ready: 1, reserved: 0, waiting: 1, freePages: 13 });
  const { batch } = step(s);
  t.deepEqual(ids(batch.admitted), ['d']);
  t.deepEqual([d.cachedTokens, d.outputTokens], [10, [42, 10]]);
  t.is(s.sequence('w')!.status, 'waiting');
  s.reserve('e', 4);
  rejects(t, () => s.commit(seq('e', 3, 3)), 'reservation-too-small', false);
  t.like(s.stats(), { reserved: 1 }, 'a failed commit keeps the lease');
});

test('cancel frees everything exactly once in every state', (t) => {
  const { s } = scheduler({ maxBatch: 1 });
  const free = () => s.stats().freePages;
  s.reserve('reserved', 8);
  t.true(s.cancel('reserved'));
  t.false(s.cancel('reserved'));
  t.is(free(), 16);
  const waiting = seq('waiting', 3, 3);
  s.add(waiting);
  t.true(s.cancel('waiting'));
  t.deepEqual([waiting.status, waiting.finishReason], ['finished', 'cancelled']);
  const running = seq('running', 10, 6); // 4 pages
  s.add(running);
  s.schedule();
  s.reserve('ready', 8);
  const ready = seq('ready', 4, 4);
  s.commit(ready); // no slot: MAX_BATCH is 1
  t.is(free(), 10);
  t.true(s.cancel('ready'));
  t.deepEqual([ready.status, ready.pageTable, free()], ['finished', [], 12]);
  s.schedule();
  t.true(s.cancel('running')); // mid-step: the engine's token for it arrives after
  t.deepEqual(s.onStepDone([{ seqId: 'running', token: 5 }]), []);
  t.deepEqual([running.finishReason, running.outputTokens, free()], ['cancelled', [], 16]);
  t.false(s.cancel('running'));
  t.false(s.cancel('never-seen'));
  t.like(s.stats(), { running: 0, waiting: 0, ready: 0, reserved: 0 });
});

test('fail ends a sequence in any state with reason error', (t) => {
  const { s } = scheduler({ maxBatch: 1 });
  const boom = new Error('kv transfer broke');
  s.reserve('reserved', 8);
  t.true(s.fail('reserved', boom));
  const running = seq('running', 3, 3);
  const waiting = seq('waiting', 3, 3);
  s.add(running);
  s.add(waiting);
  s.schedule();
  t.true(s.fail('running', boom));
  t.true(s.fail('waiting', boom));
  for (const q of [running, waiting]) t.deepEqual([q.finishReason, q.error], ['error', boom]);
  t.false(s.fail('running', boom));
  t.is(s.stats().freePages, 16);
});

test('two tokens for one sequence in one step is an engine bug', (t) => {
  const { s } = scheduler();
  s.add(seq('a', 3, 3));
  s.schedule();
  t.throws(() => s.onStepDone([{ seqId: 'a', token: 1 }, { seqId: 'a', token: 1 }]), { message: /more than one token/ });
  t.deepEqual(s.sequence('a')!.outputTokens, [], 'nothing recorded');
});
