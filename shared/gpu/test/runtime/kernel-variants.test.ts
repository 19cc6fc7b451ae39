// Compile-time variants vs runtime sizes: a kernel's shader (and so its pipeline) is keyed by its typed variant,
// sorted fields, so programs that differ only in sizes share one shader object and different variants do not.
import test from 'ava';
import { defineKernel } from '../../src/runtime/define-kernel.js';
import type { KernelShader } from '../../src/runtime/program.js';
import { embedding, matmul, rmsNorm, type GpuTensor } from '../../src/kernels/index.js';
import { moeExpertGemms, type MoeExpertWeights } from '../../src/kernels/moe/index.js';
import type { VariantShader } from '../../src/runtime/define-kernel.js';

// launchers are pure: buffers only need a size to pass validation
const buf = (size = 1 << 20) => ({ size }) as GPUBuffer;
const tensor = (dtype: GpuTensor['dtype'], shape: number[]): GpuTensor => ({ buffer: buf(), dtype, shape });
const keyOf = (s: KernelShader) => (s as VariantShader).variantKey;

test('variants - the key is the sorted defined fields; field order and undefined fields do not matter', (t) => {
  let built = 0;
  const k = defineKernel('k', (v: { a: number; b: string; c?: { x: number } }): KernelShader => ({ label: `k${++built}`, source: JSON.stringify(v) }));
  const s1 = k({ b: 'bf16', a: 2 });
  t.is(s1, k({ a: 2, b: 'bf16', c: undefined }));
  t.is(s1.variantKey, 'k{a:2,b:"bf16"}');
  t.is(k({ a: 2, b: 'bf16', c: { x: 1 } }).variantKey, 'k{a:2,b:"bf16",c:{"x":1}}');
  t.is(k({ a: 2, b: 'bf16', c: { x: 1 } }), k({ c: { x: 1 }, a: 2, b: 'bf16' }));
  t.not(k({ a: 3, b: 'bf16' }), s1);
  t.is(built, 3);
});

test('variants - rmsNorm: two sizes share one shader, another dtype or in-place form does not', (t) => {
  const x = buf(), y = buf();
  const w = tensor('bf16', [64]);
  const a = rmsNorm({ x, y, weight: w, rows: 3, cols: 64, eps: 1e-6 });
  const b = rmsNorm({ x, y, weight: w, rows: 40, cols: 64, eps: 1e-5, inStride: 128 });
  t.is(a.shader, b.shader);
  t.is(keyOf(a.shader), 'rms_norm{dtype:"bf16",inPlace:false}');
  t.not(keyOf(rmsNorm({ x, y, weight: tensor('f32', [64]), rows: 3, cols: 64, eps: 1e-6 }).shader), keyOf(a.shader));
  t.not(keyOf(rmsNorm({ x, y: x, weight: w, rows: 3, cols: 64, eps: 1e-6 }).shader), keyOf(a.shader));
});

test('variants - embedding: token counts share one shader, dtypes do not', (t) => {
  const table = tensor('bf16', [100, 64]);
  const a = embedding({ ids: buf(), table, y: buf(), tokens: 1 });
  t.is(a.shader, embedding({ ids: buf(), table, y: buf(), tokens: 9 }).shader);
  t.not(embedding({ ids: buf(), table: tensor('f16', [100, 64]), y: buf(), tokens: 1 }).shader, a.shader);
});

test('variants - matmul: M within one GEMV shape and any N, K share one shader; accumulate and dtype do not', (t) => {
  const run = (M: number, N: number, K: number, dtype: GpuTensor['dtype'] = 'bf16', accumulate = false) =>
    matmul({ x: buf(), weight: tensor(dtype, [N, K]), y: buf(), M, N, K, accumulate }).shader;
  const a = run(3, 64, 256);
  t.is(a, run(4, 96, 512));
  t.regex(keyOf(a), /^matmul_gemv\{accumulate:false,align:\{"vecX":true,"vecW":true\},config:\{.*\},dtype:"bf16"\}$/);
  t.not(keyOf(run(3, 64, 256, 'bf16', true)), keyOf(a));
  t.not(keyOf(run(3, 64, 256, 'f32')), keyOf(a));
});

test('variants - MoE expert GEMMs: token counts share their shaders, GEMM forms and weight dtypes do not', (t) => {
  const dims = { nExperts: 8, topK: 2, hidden: 64, intermediate: 32 };
  const weights = (dtype: GpuTensor['dtype']): MoeExpertWeights => ({
    gate: [{ tensor: tensor(dtype, [8, 32, 64]), firstExpert: 0, count: 8 }],
    up: [{ tensor: tensor(dtype, [8, 32, 64]), firstExpert: 0, count: 8 }],
    down: [{ tensor: tensor(dtype, [8, 64, 32]), firstExpert: 0, count: 8 }],
  });
  const shaders = (tokens: number, variant: 'gemv' | 'tiled', dtype: GpuTensor['dtype'] = 'bf16') =>
    moeExpertGemms({ dims, tokens, x: buf(), weights: weights(dtype), groups: buf(), act: buf(), slotOut: buf(), variant }).map((p) => p.shader);
  const a = shaders(3, 'gemv');
  t.deepEqual(shaders(200, 'gemv'), a);
  t.is(keyOf(a[0]!), 'moe_gate_up{gateDtype:"bf16",nExperts:8,upDtype:"bf16",variant:"gemv"}');
  t.notDeepEqual(shaders(3, 'tiled'), a);
  t.notDeepEqual(shaders(3, 'gemv', 'f16'), a);
});
