// The matmul tests' shared case runner: random x, weights rounded to their dtype, sentinel-filled y, one
// matmul, and the worst error against a float64 reference relative to Σ|terms| of each output (the scale that
// rounding errors grow with). Used by matmul.test.ts (portable variants) and matmul-mma.test.ts (tensor cores).
import type { ExecutionContext } from 'ava';
import type { Gpu } from '../../src/runtime/index.js';
import { matmulPrograms, type GemmTile, type GemmTileName, type MatmulArgs, type MatmulLimits, type MatmulVariant, type MmaTileName } from '../../src/kernels/matmul/matmul.js';
import type { WeightDtype } from '../../src/kernels/weight-dtype.js';
import { roundTo, uploadF32, uploadWeight } from '../../src/testing.js';
import { randomArray } from '@latentwire/testing';

export interface Case {
  M: number;
  N: number;
  K: number;
  dtype: WeightDtype;
  variant?: MatmulVariant;
  tile?: GemmTileName | GemmTile;
  mmaTile?: MmaTileName;
  /** The subgroup-matrix GEMM's grouped order (MatmulArgs.groupRows). */
  groupRows?: number;
  xStride?: number;
  xOffset?: number;
  yStride?: number;
  yOffset?: number;
  /** Rows of other experts stacked before the used one (weightOffset = before·K + extra). */
  before?: number;
  /** Extra element offset on top of `before` rows (must keep weightOffset even for 16-bit dtypes). */
  extra?: number;
  accumulate?: boolean;
  /** Split-K into this many K ranges (matmulPrograms with a scratch of just the room they need). */
  splits?: number;
  seed?: number;
}

/**
 * float64 reference, independent of the kernel: y[m, n] (+)= Σ_k x[xo + m·xs + k] · w[wo + n·K + k].
 * Also returns Σ|terms| per output, the magnitude the tolerance is relative to.
 */
export function matmulRef(x: Float64Array, w: Float64Array, y0: Float64Array, c: Required<Omit<Case, 'variant' | 'tile' | 'mmaTile' | 'groupRows' | 'seed' | 'before' | 'extra' | 'splits'>> & { wo: number }) {
  const y = Float64Array.from(y0);
  const mag = new Float64Array(y0.length);
  for (let m = 0; m < c.M; m++) {
    for (let n = 0; n < c.N; n++) {
      let s = 0, a = 0;
      for (let k = 0; k < c.K; k++) {
        const p = x[c.xOffset + m * c.xStride + k]! * w[c.wo + n * c.K + k]!;
        s += p;
        a += Math.abs(p);
      }
      const yi = c.yOffset + m * c.yStride + n;
      y[yi] = (c.accumulate ? y0[yi]! : 0) + s;
      mag[yi] = a + Math.abs(y0[yi]!);
    }
  }
  return { y, mag };
}

export interface CheckOptions {
  /** What the launcher picks variants by (default gpu.limits: the portable kernels). */
  readonly limits?: MatmulLimits;
  /** Largest error allowed relative to Σ|terms| (default 1e-5: f32 accumulation). */
  readonly tol?: number;
  /** Also run the f32 GEMM on the same inputs and hold this variant to tol against it. */
  readonly comparePortable?: boolean;
}

/** Runs case c and asserts its worst relative error; returns it (and the worst against the f32 GEMM). */
export async function check(t: ExecutionContext, gpu: Gpu, c: Case, o: CheckOptions = {}): Promise<{ ref: number; portable: number; y: Float32Array }> {
  const { M, N, K, dtype } = c;
  const xStride = c.xStride ?? K, xOffset = c.xOffset ?? 0;
  const yStride = c.yStride ?? N, yOffset = c.yOffset ?? 0;
  const before = c.before ?? 0, extra = c.extra ?? 0;
  const wo = before * K + extra;
  const seed = c.seed ?? M * 7919 + N * 31 + K;
  const x = roundTo(randomArray(xOffset + (M - 1) * xStride + K + 3, seed, 2), 'f32');
  const wTotal = (before + N + 5 + (extra > 0 ? 1 : 0)) * K; // rows after the used ones too
  const w = roundTo(randomArray(wTotal, seed + 1, 0.5), dtype);
  // y starts as non-zero sentinels: columns outside the written slice must keep them; accumulate adds to them
  const y0 = roundTo(randomArray(yOffset + (M - 1) * yStride + N + 2, seed + 2, 3), 'f32');
  const xb = uploadF32(gpu, 'x', x);
  const wb = uploadWeight(gpu, 'w', w, dtype, [wTotal / K, K]);
  const yb = uploadF32(gpu, 'y', y0);
  const scratch = c.splits === undefined ? undefined : gpu.buffer('split_k', c.splits * M * N * 4);
  const args: MatmulArgs = {
    x: xb, weight: wb, y: yb, M, N, K, xStride, xOffset, yStride, yOffset, weightOffset: wo,
    accumulate: c.accumulate, variant: c.variant, tile: c.tile, mmaTile: c.mmaTile, ...(c.groupRows !== undefined ? { groupRows: c.groupRows } : {}),
    ...(scratch ? { splitK: { scratch, splits: c.splits } } : {}),
  };
  const programs = matmulPrograms(args, o.limits ?? gpu.limits);
  if (c.splits !== undefined) t.is(programs.length, c.splits > 1 ? 2 : 1, `${JSON.stringify(c)}: the split's dispatches`);
  await gpu.run(programs);
  const got = await gpu.readF32(yb, 0, y0.length);
  let f32: Float32Array | null = null;
  if (o.comparePortable) {
    gpu.write(yb, Float32Array.from(y0));
    await gpu.run(matmulPrograms({ ...args, variant: 'gemm', mmaTile: undefined, groupRows: undefined, splitK: undefined }, gpu.limits));
    f32 = await gpu.readF32(yb, 0, y0.length);
  }
  const { y: want, mag } = matmulRef(x, w, y0, { M, N, K, dtype, xStride, xOffset, yStride, yOffset, wo, accumulate: c.accumulate ?? false });
  let worst = 0, where = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!) / (mag[i]! + 1e-30);
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      where = i;
    }
  }
  // against the f32 GEMM on the same inputs, on the same scale (Σ|terms| of each output)
  let portable = 0;
  if (f32) {
    for (let i = 0; i < f32.length; i++) {
      const e = Math.abs(got[i]! - f32[i]!) / (mag[i]! + 1e-30);
      portable = Number.isNaN(e) ? Infinity : Math.max(portable, e);
    }
    t.true(portable < (o.tol ?? 1e-5), `${JSON.stringify(c)}: ${portable} against the f32 GEMM`);
  }
  const what = `${JSON.stringify(c)}: worst relative error ${worst.toExponential(2)} at ${where} (got ${got[where]}, want ${want[where]})`;
  t.true(worst < (o.tol ?? 1e-5), what);
  gpu.destroy(xb, wb.buffer, yb, scratch);
  return { ref: worst, portable, y: got };
}

