// The one owner of binding numbers: storage numbered in declaration order, the uniform struct after it, and
// the mistakes that would let a shader and its buffer list drift apart caught where they are made.
import test from 'ava';
import { bindings } from '../../src/runtime/bindings.js';
import { siluMul } from '../../src/kernels/silu-mul/silu-mul.js';
import { testGpu } from '../../src/testing.js';

test('bindings - numbers storage 0..n-1 in declaration order, the uniform struct after it', (t) => {
  const b = bindings([['x', 'array<f32>'], ['w', 'array<u32>'], ['y', 'array<f32>', 'read_write']], { n: 'u32', eps: 'f32' });
  t.deepEqual(b.names, ['x', 'w', 'y']);
  const lines = b.wgsl.split('\n');
  t.is(lines[0], '@group(0) @binding(0) var<storage, read> x: array<f32>;');
  t.is(lines[1], '@group(0) @binding(1) var<storage, read> w: array<u32>;');
  t.is(lines[2], '@group(0) @binding(2) var<storage, read_write> y: array<f32>;');
  t.regex(b.wgsl, /struct Uniforms \{\n  n: u32,\n  eps: f32,\n\};\n@group\(0\) @binding\(3\) var<uniform> u: Uniforms;/);
  const s = b.shader('k', 'src');
  t.deepEqual(s.bindings, ['x', 'w', 'y']);
  t.deepEqual(s.uniforms, { n: 'u32', eps: 'f32' });
});

test('bindings - without uniforms declares storage only', (t) => {
  const b = bindings([['a', 'array<u32>', 'read_write']]);
  t.is(b.wgsl, '@group(0) @binding(0) var<storage, read_write> a: array<u32>;\n');
  t.is(b.uniforms, undefined);
});

test('bindings - a name declared twice is an error', (t) => {
  t.throws(() => bindings([['x', 'array<f32>'], ['x', 'array<f32>', 'read_write']]), { message: /'x' is declared twice/ });
});

test('bindings - buffers come out in binding order by name; a missing one is an error', (t) => {
  const b = bindings([['x', 'array<f32>'], ['y', 'array<f32>', 'read_write']]);
  const x = { label: 'x' } as GPUBuffer, y = { label: 'y' } as GPUBuffer;
  t.deepEqual(b.buffers({ y, x }), [x, y]);
  t.throws(() => b.buffers({ x } as never), { message: /no buffer for y/ });
});

test.serial('bindings - the runtime refuses a program whose buffer count differs from its shader bindings', async (t) => {
  const gpu = await testGpu();
  const g = gpu.buffer('g', 64), y = gpu.buffer('y', 64);
  const p = siluMul({ gate: g, y, rows: 1, cols: 4 });
  await t.throwsAsync(gpu.run([{ ...p, buffers: p.buffers.slice(0, 2) }]), { message: /silu_mul: 2 buffers for 3 bindings \(g, up, y\)/ });
  gpu.destroy(g, y);
});
