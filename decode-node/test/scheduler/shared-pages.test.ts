// Choices (n > 1) of one prompt: the prompt's full pages are referenced by every choice, not copied; the
// partial last prompt page is copied per choice (copy-on-write); a shared page returns to the pool only when
// its last choice ends, and the pool is whole again once every choice has ended, however they end.
import test from 'ava';
import { choicePages } from '../../src/scheduler/scheduler.js';
import { PageAllocator, Scheduler, Sequence } from '../../src/scheduler/index.js';

const PAGE = 4;
const scheduler = (numPages = 64) => new Scheduler({ numPages, pageSize: PAGE, maxBatch: 8, maxWaiting: 8, leaseMs: 1000, now: () => 0 });
const seq = (id: string, promptLength: number, maxNewTokens: number) =>
  new Sequence({ id, promptLength, maxNewTokens, eosTokenIds: [0], outputTokens: [7], cachedTokens: promptLength });

test('page allocator: share() adds references, free() drops one each, the page returns at zero', (t) => {
  const pages = new PageAllocator(4);
  t.deepEqual(pages.allocate(2), [0, 1]);
  pages.share([0, 0]);
  t.is(pages.refCount(0), 3);
  pages.free([0]);
  pages.free([0, 1]);
  t.is(pages.freeCount, 3, 'page 1 back, page 0 still held once');
  t.true(pages.isAllocated(0));
  pages.free([0]);
  t.is(pages.freeCount, 4);
  t.throws(() => pages.free([0]), { message: /double free of page 0/ });
  t.throws(() => pages.share([2]), { message: /share of free page 2/ });
  const [a] = pages.allocate(1)!;
  pages.share([a!]);
  t.throws(() => pages.free([a!, a!, a!]), { message: /double free/ }, 'more drops than references in one call');
  t.is(pages.refCount(a!), 2, 'a throwing free changes nothing');
});

test('choice pages: shared full prompt pages once, own pages per choice', (t) => {
  t.deepEqual(choicePages(PAGE, 10, 6), { shared: 2, own: 2 }); // 16 tokens = 4 pages; pages 0-1 full prompt
  t.deepEqual(choicePages(PAGE, 8, 6), { shared: 2, own: 2 }); // whole-page prompt: generated tokens start on a fresh page
  t.deepEqual(choicePages(PAGE, 3, 1), { shared: 0, own: 1 });
});

test('n = 3 choices of a 10-token prompt share its 2 full pages, copy its partial one, and return every page', (t) => {
  const s = scheduler();
  const lease = s.reserveChoices('r', 10, 6, 3);
  t.is(lease.pages.length, 2 + 3 * 2);
  t.is(s.stats().freePages, 64 - 8);
  const seqs = [seq('r.0', 10, 6), seq('r.1', 10, 6), seq('r.2', 10, 6)];
  const copies = s.commitChoices('r', seqs);
  const [p0, p1] = lease.pages;
  for (const q of seqs) t.deepEqual(q.pageTable.slice(0, 2), [p0, p1], `${q.id} references the prompt's full pages`);
  t.is(s.pageRefs(p0!), 3);
  t.is(s.pageRefs(p1!), 3);
  // the partial page (index 2) as it arrived stays with choice 0; choices 1 and 2 get copies of it
  t.is(seqs[0]!.pageTable[2], lease.pages[2]);
  t.deepEqual(copies, [{ from: lease.pages[2]!, to: seqs[1]!.pageTable[2]! }, { from: lease.pages[2]!, to: seqs[2]!.pageTable[2]! }]);
  const own = seqs.flatMap((q) => q.pageTable.slice(2));
  t.is(new Set(own).size, 6, 'own pages are distinct');
  t.is(s.stats().freePages, 64 - 8, 'committing takes nothing more');

  t.is(s.schedule().admitted.length, 3);
  s.onStepDone([{ seqId: 'r.1', token: 0 }]); // choice 1 stops
  t.is(seqs[1]!.status, 'finished');
  t.is(s.pageRefs(p0!), 2, 'a shared page loses one reference per ended choice');
  t.is(s.stats().freePages, 64 - 6, 'only choice 1 own pages returned');
  t.true(s.cancel('r.0'));
  t.is(s.pageRefs(p0!), 1);
  t.is(s.stats().freePages, 64 - 4);
  t.true(s.fail('r.2', new Error('x')));
  t.is(s.pageRefs(p0!), 0);
  t.is(s.stats().freePages, 64, 'the last choice to end frees the shared pages');
});

test('a whole-page prompt shares every prompt page and copies nothing; choices over at once give their pages back', (t) => {
  const s = scheduler();
  const lease = s.reserveChoices('r', 8, 3, 3); // 11 tokens = 3 pages: 2 shared + 1 own each
  t.is(lease.pages.length, 2 + 3);
  const live = seq('r.2', 8, 3);
  const copies = s.commitChoices('r', [null, null, live]); // choices 0 and 1 stopped on their first token
  t.deepEqual(copies, []);
  t.deepEqual(live.pageTable, lease.pages.slice(0, 3), 'the first live choice takes choice 0 pages');
  t.is(s.pageRefs(lease.pages[0]!), 1);
  t.is(s.stats().freePages, 64 - 3);
  s.cancel('r.2');
  t.is(s.stats().freePages, 64);
});

test('choices: all over at once free the lease; refusals change nothing; a cancel before commit frees it all', (t) => {
  const s = scheduler(10);
  t.throws(() => s.reserveChoices('big', 10, 6, 5), { message: /5 choices need 12 pages/ });
  s.reserveChoices('r', 10, 6, 3);
  t.throws(() => s.reserveChoices('r2', 10, 6, 3), { message: /8 needed/ });
  t.deepEqual(s.commitChoices('r', [null, null, null]), []);
  t.is(s.stats().freePages, 10);
  s.reserveChoices('q', 10, 6, 3);
  t.throws(() => s.commitChoices('q', [seq('q.0', 10, 6)]), { instanceOf: RangeError });
  t.throws(() => s.commitChoices('q', [seq('q.0', 10, 9), null, null]), { message: /reserved/ });
  t.is(s.stats().reserved, 1, 'a refused commit keeps the lease');
  t.true(s.cancel('q'));
  t.is(s.stats().freePages, 10);
});
