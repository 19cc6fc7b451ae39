// Property test over seeded random histories: whatever mix of finished, cancelled, failed and expired
// requests (choices of one prompt among them), pages are never shared but by choices of one request (one
// reference each) or lost, every sequence holds the pages prompt + max_tokens need, the
// batch stays within MAX_BATCH, and once everything ends the pool is whole again.
import { seededRandom } from '@latentwire/testing';
import test, { type ExecutionContext } from 'ava';
import { Scheduler, SchedulerRejection, Sequence, type Reservation } from '../../src/scheduler/index.js';
import { pagesFor } from '@latentwire/protocol';

const EOS = 0;
const LEASE_MS = 1000;

/** mulberry32: small, seedable, good enough to pick operations. */
function rng(seed: number) {
  const next = seededRandom(seed);
  return { next, int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)) };
}

interface World {
  s: Scheduler;
  clock: { now: number };
  numPages: number;
  pageSize: number;
  maxBatch: number;
  seqs: Sequence[]; // every sequence the scheduler accepted
  leases: Map<string, Reservation>; // reservations not yet committed, cancelled or expired
  ended: Map<string, number>; // how each request ended: stop / length / cancelled / error / expired
}

function checkInvariants(t: ExecutionContext, w: World, where: string): boolean {
  const stats = w.s.stats(); // expires due leases
  for (const [id, lease] of w.leases) {
    if (w.clock.now >= lease.expiresAt) {
      w.leases.delete(id);
      bump(w.ended, 'expired');
    }
  }
  const held: number[] = [...w.leases.values()].flatMap((l) => l.pages);
  let running = 0;
  for (const q of w.seqs) {
    if (q.status === 'finished') {
      if (q.pageTable.length > 0) return t.fail(`${where}: finished ${q.id} still holds pages`), false;
      continue;
    }
    running += q.status === 'running' ? 1 : 0;
    const need = pagesFor(w, q.reservedTokens);
    if (q.pageTable.length > 0 && q.pageTable.length < need) return t.fail(`${where}: ${q.id} has fewer pages than it needs`), false;
    if (q.status === 'running' && q.pageTable.length * w.pageSize < q.cachedTokens + q.pendingTokens) {
      return t.fail(`${where}: ${q.id}'s next step would write past its pages`), false;
    }
    held.push(...q.pageTable);
  }
  // a page is held by one lease or sequence, or shared by choices of one request (<id>.<i>), one reference each
  const holders = new Map<number, string[]>();
  for (const [id, lease] of w.leases) for (const p of lease.pages) holders.set(p, [...(holders.get(p) ?? []), `lease ${id}`]);
  for (const q of w.seqs) if (q.status !== 'finished') for (const p of q.pageTable) holders.set(p, [...(holders.get(p) ?? []), q.id]);
  for (const [p, ids] of holders) {
    if (w.s.pageRefs(p) !== ids.length) return t.fail(`${where}: page ${p} has ${w.s.pageRefs(p)} references, held by ${ids.join(', ')}`), false;
    const groups = new Set(ids.map((id) => (/^q\d+\.\d+$/.test(id) ? id.split('.')[0] : id)));
    if (groups.size !== 1) return t.fail(`${where}: page ${p} is held by ${ids.join(', ')}`), false;
  }
  if (holders.size + stats.freePages !== w.numPages) return t.fail(`${where}: ${holders.size} held + ${stats.freePages} free ≠ ${w.numPages}`), false;
  if (running !== stats.running || running > w.maxBatch) return t.fail(`${where}: running ${running} vs stats ${stats.running}`), false;
  if (stats.reserved !== w.leases.size) return t.fail(`${where}: reserved ${stats.reserved} vs model ${w.leases.size}`), false;
  return true;
}

const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

function endRequest(w: World, id: string, how: 'cancelled' | 'error'): void {
  const ended = how === 'cancelled' ? w.s.cancel(id) : w.s.fail(id, new Error('injected'));
  if (ended) bump(w.ended, how);
  w.leases.delete(id);
}

function randomSequence(r: ReturnType<typeof rng>, id: string, extra: object = {}): Sequence {
  return new Sequence({ id, promptLength: r.int(1, 40), maxNewTokens: r.int(1, 24), eosTokenIds: [EOS], ...extra });
}

function stepOnce(r: ReturnType<typeof rng>, w: World, cancelMidStep: boolean): void {
  const batch = w.s.schedule();
  if (cancelMidStep && batch.sequences.length > 0) endRequest(w, batch.sequences[r.int(0, batch.sequences.length - 1)]!.id, 'cancelled');
  const results = batch.sequences.map((q) => ({ seqId: q.id, token: r.next() < 0.08 ? EOS : r.int(1, 50) }));
  for (const q of w.s.onStepDone(results)) bump(w.ended, q.finishReason!);
}

function runHistory(t: ExecutionContext, seed: number, totals: Map<string, number>): void {
  const r = rng(seed);
  const clock = { now: 0 };
  const pageSize = [1, 4, 16][r.int(0, 2)]!;
  const numPages = r.int(8, 64);
  const maxBatch = r.int(1, 6);
  const s = new Scheduler({ numPages, pageSize, maxBatch, maxWaiting: r.int(0, 8), leaseMs: LEASE_MS, maxHeadBypass: r.int(0, 3), now: () => clock.now });
  const w: World = { s, clock, numPages, pageSize, maxBatch, seqs: [], leases: new Map(), ended: new Map() };
  const allIds: string[] = [];
  for (let op = 0; op < 250; op++) {
    const id = `q${op}`;
    const roll = r.next();
    try {
      if (roll < 0.2) {
        const q = randomSequence(r, id);
        allIds.push(id);
        s.add(q);
        w.seqs.push(q);
      } else if (roll < 0.32) {
        allIds.push(id);
        w.leases.set(id, s.reserve(id, r.int(2, 70)));
      } else if (roll < 0.42 && w.leases.size > 0) {
        const lease = [...w.leases.values()][r.int(0, w.leases.size - 1)]!;
        // Usually sized to fit the reservation, sometimes not (rejected: the lease stays).
        const q = randomSequence(r, lease.requestId, { outputTokens: [r.int(1, 50)] });
        s.commit(q);
        w.leases.delete(lease.requestId);
        w.seqs.push(q);
      } else if (roll < 0.46) {
        // n choices of one prompt sharing its pages, committed (some over at their first token) or not
        allIds.push(id);
        const n = r.int(2, 4);
        w.leases.set(id, s.reserveChoices(id, r.int(1, 40), r.int(1, 24), n));
      } else if (roll < 0.5 && [...w.leases.values()].some((l) => l.choices)) {
        const leases = [...w.leases.values()].filter((l) => l.choices);
        const lease = leases[r.int(0, leases.length - 1)]!;
        const { n, promptTokens } = lease.choices!;
        const seqs = Array.from({ length: n }, (_, i) => (r.next() < 0.2 ? null : new Sequence({
          id: `${lease.requestId}.${i}`, promptLength: promptTokens, maxNewTokens: r.int(1, lease.tokens - promptTokens + (r.next() < 0.1 ? 3 : 0)),
          eosTokenIds: [EOS], outputTokens: [r.int(1, 50)], cachedTokens: promptTokens,
        })));
        s.commitChoices(lease.requestId, seqs);
        w.leases.delete(lease.requestId);
        for (const q of seqs) if (q) {
          w.seqs.push(q);
          allIds.push(q.id);
        }
        bump(w.ended, 'choices-committed');
        if (seqs.filter(Boolean).length > 1 && promptTokens >= w.pageSize) bump(w.ended, 'choices-sharing');
      } else if (roll < 0.54 && allIds.length > 0) {
        endRequest(w, allIds[r.int(0, allIds.length - 1)]!, r.next() < 0.5 ? 'cancelled' : 'error');
      } else if (roll < 0.6) {
        clock.now += r.int(0, 600);
      } else {
        stepOnce(r, w, r.next() < 0.1);
      }
    } catch (err) {
      if (!(err instanceof SchedulerRejection) && !(err instanceof RangeError && /already finished/.test(String(err)))) throw err;
    }
    if (!checkInvariants(t, w, `seed ${seed} op ${op}`)) return;
  }
  // Drain: odd seeds run every sequence to its end and let leases lapse; even seeds cancel everything.
  if (seed % 2 === 1) {
    clock.now += LEASE_MS;
    for (let i = 0; i < 2000 && s.stats().running + s.stats().waiting + s.stats().ready > 0; i++) stepOnce(r, w, false);
  } else {
    for (const id of allIds) endRequest(w, id, 'cancelled');
  }
  if (!checkInvariants(t, w, `seed ${seed} drained`)) return;
  t.deepEqual(s.stats(), { totalPages: numPages, freePages: numPages, running: 0, waiting: 0, ready: 0, reserved: 0, reservedPages: 0 });
  for (const [k, v] of w.ended) totals.set(k, (totals.get(k) ?? 0) + v);
}

test('free pages return to the start after any seeded mix of finished, cancelled, failed and expired requests', (t) => {
  const totals = new Map<string, number>();
  for (let seed = 1; seed <= 300; seed++) runHistory(t, seed, totals);
  // The histories must actually exercise every way a request can end.
  for (const how of ['stop', 'length', 'cancelled', 'error', 'expired', 'choices-committed', 'choices-sharing']) t.true((totals.get(how) ?? 0) > 0, how);
});
