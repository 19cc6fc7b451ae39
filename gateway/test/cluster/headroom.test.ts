// Pure ranking and admission-queue logic: which node a request tries first, and which waiters a heartbeat
// wakes. No NATS here; the integration tests drive the same code over the bus.
import test from 'ava';
import { heartbeatMessage } from '@latentwire/protocol';
import { AdmissionQueue, rankByHeadroom, type DecodeNode } from '../../src/index.js';

function node(nodeId: string, f: { free: number; total?: number; running?: number; waiting?: number; maxBatch?: number; maxContext?: number; pending?: number }): DecodeNode {
  const totalPages = f.total ?? 100;
  const heartbeat = heartbeatMessage({
    nodeId, fingerprint: 'fp', layoutKey: 'latent-v1/fp8_e4m3/r64+16/p16', kvDtype: 'fp8_e4m3', pageSize: 16, totalPages, freePages: f.free,
    running: f.running ?? 0, waiting: f.waiting ?? 0, maxBatch: f.maxBatch ?? 4, maxContext: f.maxContext ?? 4096, seq: 0, sentAt: 0,
  });
  return { nodeId, heartbeat, freePages: f.free, lastSeen: 0, pendingPages: f.pending ?? 0 };
}

test('headroom - more free pages first; a full batch costs one slot share per sequence ahead', (t) => {
  const ranked = rankByHeadroom([node('a', { free: 40 }), node('b', { free: 60 }), node('c', { free: 80, running: 4, waiting: 1 })], 160);
  // need = 10 pages; c: 80 − 10 − 2 ahead · (100 / 4) = 20; b: 50; a: 30.
  t.deepEqual(ranked.map((r) => [r.node.nodeId, r.need, r.headroom]), [['b', 10, 50], ['a', 10, 30], ['c', 10, 20]]);
});

test('headroom - ties go to the less loaded node, then at random; fits and tooLarge are flagged', (t) => {
  const three = [node('b', { free: 50, running: 1 }), node('a', { free: 50, running: 1 }), node('c', { free: 50 })];
  t.deepEqual(rankByHeadroom(three, 16).map((r) => r.node.nodeId)[0], 'c');
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) seen.add(rankByHeadroom(three, 16).map((r) => r.node.nodeId).join());
  t.deepEqual([...seen].sort(), ['c,a,b', 'c,b,a'], 'equal nodes in either order');
  const keys = [0.9, 0.1, 0.5];
  let k = 0;
  t.deepEqual(rankByHeadroom(three, 16, () => keys[k++]!).map((r) => r.node.nodeId), ['c', 'a', 'b'], 'the random key decides a tie');
  const [small] = rankByHeadroom([node('s', { free: 2, total: 10, maxContext: 4096 })], 48);
  t.like(small, { need: 3, fits: false, tooLarge: false });
  const [huge] = rankByHeadroom([node('s', { free: 10, total: 10, maxContext: 4096 })], 161);
  t.like(huge, { fits: false, tooLarge: true });
});

test('headroom - a fraction of each pool: a small node half free beats a big one a quarter free with more pages', (t) => {
  const ranked = rankByHeadroom([node('big', { free: 260, total: 1000 }), node('small', { free: 50, total: 100 })], 16);
  t.deepEqual(ranked.map((r) => r.node.nodeId), ['small', 'big']);
  t.deepEqual(ranked.map((r) => r.fraction), [0.49, 0.259]);
});

test('headroom - pages of reserves still in flight count against a node (reserve-then-rank), and against fits', (t) => {
  const ranked = rankByHeadroom([node('a', { free: 50, pending: 30 }), node('b', { free: 40 })], 16);
  t.deepEqual(ranked.map((r) => [r.node.nodeId, r.headroom]), [['b', 39], ['a', 19]]);
  t.false(rankByHeadroom([node('a', { free: 5, pending: 4 })], 32)[0]!.fits);
});

test('admission - a heartbeat wakes waiters in arrival order while free pages cover them, skipping one too big', async (t) => {
  const q = new AdmissionQueue(8);
  const ac = new AbortController();
  const woken: string[] = [];
  const enter = (name: string, tokens: number) => {
    const ticket = q.ticket(tokens, 10_000);
    void q.wait(ticket, ac.signal).then((why) => woken.push(`${name}:${why}`));
  };
  enter('big', 16 * 8); // 8 pages
  enter('one', 16 * 3); // 3 pages
  enter('two', 16 * 3);
  enter('three', 16 * 3);
  t.is(q.waiting, 4);
  q.offer([node('a', { free: 7 })]); // room for 'one' and 'two' (6 pages), not 'big', not 'three'
  await new Promise((r) => setImmediate(r));
  t.deepEqual(woken, ['one:capacity', 'two:capacity']);
  t.is(q.waiting, 2);
  q.offer([]); // no node left
  await new Promise((r) => setImmediate(r));
  t.deepEqual(woken.slice(2).sort(), ['big:no-nodes', 'three:no-nodes']);
  t.is(q.waiting, 0);
});

test('admission - a re-entering waiter keeps its place; timeout and abort leave the queue', async (t) => {
  const q = new AdmissionQueue(1);
  const ac = new AbortController();
  const first = q.ticket(16, 10_000);
  const later = q.ticket(16, 10_000);
  const p2 = q.wait(later, ac.signal);
  const p1 = q.wait(first, ac.signal); // re-entry of an earlier arrival: goes before `later`
  t.true(q.full());
  q.offer([node('a', { free: 1 })]);
  t.is(await p1, 'capacity');
  ac.abort();
  t.is(await p2, 'aborted');
  t.is(await q.wait(q.ticket(16, 30), new AbortController().signal), 'timeout');
  t.is(q.waiting, 0);
});
