// The cluster view's bounded memory and its statistics: the ring forgets its oldest entries, percentiles
// are weighted nearest-rank over a trailing window, and BullMQ's client list groups into named workers.
import test from 'ava';
import { percentiles, prefillWorkers, Ring } from '../../src/index.js';

test('ring - keeps the last `capacity` items, oldest first', (t) => {
  const r = new Ring<number>(3);
  t.deepEqual(r.toArray(), []);
  t.is(r.last(), undefined);
  for (let i = 1; i <= 5; i++) r.push(i);
  t.deepEqual(r.toArray(), [3, 4, 5]);
  t.is(r.size, 3);
  t.is(r.last(), 5);
  t.throws(() => new Ring(0), { instanceOf: RangeError });
});

test('percentiles - weighted nearest rank, only observations since the window start', (t) => {
  const obs = [
    { at: 100, ms: 1000, weight: 1 }, // before the window
    { at: 200, ms: 10, weight: 8 },
    { at: 300, ms: 20, weight: 1 },
    { at: 400, ms: 50.123, weight: 1 },
  ];
  t.deepEqual(percentiles(obs, 200), { count: 10, p50: 10, p90: 20, p99: 50.12 });
  t.deepEqual(percentiles(obs, 500), { count: 0, p50: null, p90: null, p99: null });
  t.deepEqual(percentiles(obs, 0), { count: 11, p50: 10, p90: 50.12, p99: 1000 });
});

test('prefill workers - one per worker name, however many Redis connections it holds', (t) => {
  const clients: Record<string, string>[] = [
    { name: 'lw', rawname: 'bull:bHc=:w:prefill-b', addr: '10.0.0.2:5000', age: '30', idle: '1' },
    { name: 'lw', rawname: 'bull:bHc=:w:prefill-a', addr: '10.0.0.1:5000', age: '100', idle: '4' },
    { name: 'lw', rawname: 'bull:bHc=:w:prefill-a', addr: '10.0.0.1:5001', age: '90', idle: '0' },
    { name: 'lw', rawname: 'bull:bHc=', addr: '10.0.0.3:5000' },
  ];
  t.deepEqual(prefillWorkers(clients), [
    { name: '(unnamed)', role: 'prefill', connections: 1, addr: '10.0.0.3:5000', ageSeconds: null, idleSeconds: null },
    { name: 'prefill-a', role: 'prefill', connections: 2, addr: '10.0.0.1:5000', ageSeconds: 100, idleSeconds: 0 },
    { name: 'prefill-b', role: 'prefill', connections: 1, addr: '10.0.0.2:5000', ageSeconds: 30, idleSeconds: 1 },
  ]);
});
