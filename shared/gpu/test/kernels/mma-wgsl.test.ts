// Every tensor-core shader of shared/gpu, type-checked where it cannot run: subgroup matrices replaced by
// stand-ins (standInMatrices), the rest compiled as written. The kernels themselves run and are compared with
// the portable ones and float64 on the GPU machine (bench/gpu/suite.sh mma-tests); this catches a WGSL error
// in CI before that.
import test from 'ava';
import { standInMatrices, testGpu, wgslErrors } from '../../src/testing.js';
import { gemmMmaShader, MMA_TILES } from '../../src/kernels/matmul/gemm-mma.js';
import { moeDownShader, moeGateUpShader } from '../../src/kernels/moe/index.js';
import { MOE_GEMM_VARIANTS } from '../../src/kernels/moe/moe-experts.js';
import { mlaPrefillMmaShader } from '../../src/kernels/mla-prefill-attention/mla-prefill-attention-mma.js';
import type { KernelShader } from '../../src/runtime/index.js';

async function check(t: { is(a: string, b: string, m: string): void; true(v: boolean, m: string): void }, shaders: KernelShader[]): Promise<void> {
  const gpu = await testGpu();
  for (const s of shaders) {
    t.true(/subgroupMatrix/.test(s.source), `${s.label} uses subgroup matrices`);
    t.is(await wgslErrors(gpu, standInMatrices(s.source)), '', s.label);
  }
}

test('mma wgsl - the GEMM tiles, every tile, weight dtype and epilogue, f32 and f16 activations, grouped order, staging rows in order', async (t) => {
  const shaders: KernelShader[] = [];
  for (const tile of Object.values(MMA_TILES)) {
    for (const dtype of ['bf16', 'f16', 'f32'] as const) for (const accumulate of [false, true]) shaders.push(gemmMmaShader({ dtype, tile, accumulate }));
    shaders.push(gemmMmaShader({ dtype: 'bf16', tile, accumulate: false, xF16: true }));
    shaders.push(gemmMmaShader({ dtype: 'bf16', tile, accumulate: true, groupRows: 8 }));
    shaders.push(gemmMmaShader({ dtype: 'bf16', tile, accumulate: false, linearRows: true }));
  }
  await check(t, shaders);
});

test('mma wgsl - the routed experts, every subgroup-matrix form, both halves, whole and split over K, in grouped order, staging rows in order', async (t) => {
  const forms = MOE_GEMM_VARIANTS.filter((v) => v.startsWith('mma'));
  t.true(forms.length >= 3);
  await check(t, forms.flatMap((variant) => [false, true].flatMap((split) => [
    moeGateUpShader({ nExperts: 64, gateDtype: 'bf16', upDtype: 'bf16', variant, split }),
    moeDownShader({ nExperts: 64, dtype: 'bf16', variant, splitAct: split }),
  ]).concat(variant.endsWith('cf') ? [] : [
    moeGateUpShader({ nExperts: 64, gateDtype: 'bf16', upDtype: 'bf16', variant, groupTiles: 8 }),
    moeDownShader({ nExperts: 64, dtype: 'bf16', variant, groupTiles: 8 }),
    moeGateUpShader({ nExperts: 64, gateDtype: 'bf16', upDtype: 'bf16', variant, linearRows: true }),
    moeDownShader({ nExperts: 64, dtype: 'bf16', variant, linearRows: true }),
  ])));
});

test('mma wgsl - the MLA prefill attention at DeepSeek-V2 head dims', async (t) => {
  await check(t, [64, 128].map((rows) => mlaPrefillMmaShader({ dims: { nope: 128, rope: 64, v: 128 }, rows: rows as 64 | 128 })));
});

test('mma wgsl - the check sees an error the stand-ins do not hide', async (t) => {
  const gpu = await testGpu();
  const source = mlaPrefillMmaShader({ dims: { nope: 128, rope: 64, v: 128 } }).source;
  t.not(await wgslErrors(gpu, standInMatrices(source.replace('workgroupBarrier();', 'workgroupBarrier(1u);'))), '');
  t.not(await wgslErrors(gpu, standInMatrices(source.replace(/subgroupMatrixMultiplyAccumulate\(/, 'subgroupMatrixMultiplyAccumulate(1u, '))), '');
});
