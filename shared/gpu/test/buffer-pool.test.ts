import test from 'ava';
import { BufferPool, pooledSize } from '../src/runtime/buffer-pool.js';
import { testGpu } from '../src/testing.js';

test('buffer-pool - sizes round up to a quarter octave, never below the request', (t) => {
  t.is(pooledSize(1), 256);
  t.is(pooledSize(4096), 4096);
  t.is(pooledSize(4097), 5120);
  t.is(pooledSize(18432), 20480);
  t.is(pooledSize(19456), 20480);
  for (const n of [300, 1000, 65537, 123456789]) {
    t.true(pooledSize(n) >= n && pooledSize(n) <= 1.25 * n + 256, `${n}`);
  }
});

test('buffer-pool - a given-back buffer serves the next request of its size class; idle bytes stay under the cap', async (t) => {
  const gpu = await testGpu();
  const before = gpu.liveBufferBytes;
  const pool = new BufferPool(gpu, 3 * 4096);
  const a = pool.buffer('a', 4000);
  t.is(a.size, 4096);
  pool.destroy(a);
  t.is(pool.idleBytes, 4096);
  t.is(pool.buffer('b', 3900), a, 'same class: reused');
  t.is(pool.idleBytes, 0);
  const c = pool.buffer('c', 5000);
  t.not(c, a);
  const many = [pool.buffer('d', 4096), pool.buffer('e', 4096), pool.buffer('f', 4096)];
  pool.destroy(a, ...many, c);
  t.true(pool.idleBytes <= 3 * 4096, `idle ${pool.idleBytes}`);
  const foreign = gpu.buffer('foreign', 64);
  pool.destroy(foreign, null, undefined); // not the pool's: freed, not kept
  t.true(pool.idleBytes <= 3 * 4096);
  pool.dispose();
  t.is(pool.idleBytes, 0);
  t.is(gpu.liveBufferBytes, before, 'nothing leaks');
});
