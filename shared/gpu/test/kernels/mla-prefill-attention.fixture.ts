// Inputs, the float64 reference and a runner for MLA prefill attention, shared by the portable kernel's tests and
// the subgroup-matrix variant's.
import {
  mlaPrefillAttention,
  mlaPrefillTiles,
  type MlaPrefillTiles,
} from '../../src/kernels/mla-prefill-attention/mla-prefill-attention.js';
import type { Gpu } from '../../src/runtime/index.js';
import { roundTo, uploadF32 } from '../../src/testing.js';
import { randomArray } from '@latentwire/testing';

export interface Case {
  readonly heads: number;
  readonly nope: number;
  readonly rope: number;
  readonly v: number;
  readonly r: number;
}

export interface Inputs {
  /** [T, H, nope + rope] */
  readonly q: Float64Array;
  /** [T, H, nope + v] */
  readonly kv: Float64Array;
  /** [T, r + rope] */
  readonly latent: Float64Array;
}

/** Random f32-exact inputs for T tokens. */
export function inputs(c: Case, T: number, seed: number, qScale = 1): Inputs {
  return {
    q: roundTo(randomArray(T * c.heads * (c.nope + c.rope), seed, qScale), 'f32'),
    kv: roundTo(randomArray(T * c.heads * (c.nope + c.v), seed + 1), 'f32'),
    latent: roundTo(randomArray(T * (c.r + c.rope), seed + 2), 'f32'),
  };
}

/**
 * float64 causal attention, written from the math rather than the kernel: query row i (position qPos0 + i, its q
 * taken from row qPos0 + i of `x.q`) attends keys 0..=qPos0+i (and < kvLen) with k = [k_nope | k_pe], v from kv.
 */
export function attentionRef(c: Case, x: Inputs, qPos0: number, qLen: number, scale: number, kvLen = Infinity): Float64Array {
  const { heads: H, nope, rope, v, r } = c;
  const dqk = nope + rope;
  const out = new Float64Array(qLen * H * v);
  for (let i = 0; i < qLen; i++) {
    const t = qPos0 + i;
    for (let h = 0; h < H; h++) {
      const last = Math.min(t, kvLen - 1);
      const scores: number[] = [];
      for (let s = 0; s <= last; s++) {
        let dot = 0;
        for (let d = 0; d < nope; d++) dot += x.q[(t * H + h) * dqk + d]! * x.kv[(s * H + h) * (nope + v) + d]!;
        for (let d = 0; d < rope; d++) dot += x.q[(t * H + h) * dqk + nope + d]! * x.latent[s * (r + rope) + r + d]!;
        scores.push(dot * scale);
      }
      const mx = Math.max(...scores);
      const e = scores.map((z) => Math.exp(z - mx));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let s = 0; s <= last; s++) {
        for (let d = 0; d < v; d++) {
          out[(i * H + h) * v + d] += (e[s]! / sum) * x.kv[(s * H + h) * (nope + v) + nope + d]!;
        }
      }
    }
  }
  return out;
}

/** Runs the kernel for query rows qPos0..qPos0+qLen-1 against keys 0..kvLen-1 and returns the output. */
export async function runGpu(
  gpu: Gpu, c: Case, x: Inputs, o: { qPos0?: number; qLen: number; kvLen?: number; scale: number; tiles?: MlaPrefillTiles; subgroupMatrix?: boolean; mmaRows?: 64 | 128 },
): Promise<Float32Array> {
  const qPos0 = o.qPos0 ?? 0;
  const kvLen = o.kvLen ?? qPos0 + o.qLen;
  const dqk = c.nope + c.rope;
  const qRows = x.q.subarray(qPos0 * c.heads * dqk, (qPos0 + o.qLen) * c.heads * dqk);
  const qb = uploadF32(gpu, 'q', qRows);
  const kvb = uploadF32(gpu, 'kv', x.kv.subarray(0, kvLen * c.heads * (c.nope + c.v)));
  const lb = uploadF32(gpu, 'latent', x.latent.subarray(0, kvLen * (c.r + c.rope)));
  const ob = gpu.buffer('out', o.qLen * c.heads * c.v * 4);
  const dims = { nope: c.nope, rope: c.rope, v: c.v };
  await gpu.run([
    mlaPrefillAttention({
      q: qb, kv: kvb, latent: lb, out: ob, ...dims, heads: c.heads, kvLoraRank: c.r,
      qLen: o.qLen, qPos0, kvLen, scale: o.scale, tiles: o.tiles ?? mlaPrefillTiles(dims, gpu.limits),
      subgroupMatrix: o.subgroupMatrix, ...(o.mmaRows ? { mmaRows: o.mmaRows, limits: gpu.limits } : {}),
    }),
  ]);
  const y = await gpu.readF32(ob, 0, o.qLen * c.heads * c.v);
  gpu.destroy(qb, kvb, lb, ob);
  return y;
}

export const SMALL: Case = { heads: 1, nope: 24, rope: 8, v: 20, r: 40 };
export const FIXTURE: Case = { heads: 8, nope: 32, rope: 16, v: 32, r: 64 };
export const ODD: Case = { heads: 2, nope: 7, rope: 3, v: 5, r: 9 };
export const V2_LITE: Case = { heads: 16, nope: 128, rope: 64, v: 128, r: 512 };
export const scaleOf = (c: Case) => 1 / Math.sqrt(c.nope + c.rope);

/**
 * The kernel on strided layouts (the latent's k_pe inside wider rows at an offset, output rows padded), its
 * output repacked dense, and the float64 reference of the same rows.
 */
export async function runStrided(
  gpu: Gpu, c: Case, T: number, seed: number, pad: { latentRow: number; kpeOffset: number; outRow: number }, subgroupMatrix = false,
): Promise<{ got: Float32Array; want: Float64Array }> {
  const { latentRow, kpeOffset, outRow } = pad;
  const x = inputs(c, T, seed);
  const wide = new Float64Array(T * latentRow);
  for (let s = 0; s < T; s++) {
    for (let d = 0; d < c.rope; d++) wide[s * latentRow + kpeOffset + d] = x.latent[s * (c.r + c.rope) + c.r + d]!;
  }
  const qb = uploadF32(gpu, 'q', x.q), kvb = uploadF32(gpu, 'kv', x.kv), lb = uploadF32(gpu, 'latent', wide);
  const ob = gpu.buffer('out', T * outRow * 4);
  await gpu.run([
    mlaPrefillAttention({
      q: qb, kv: kvb, latent: lb, out: ob, nope: c.nope, rope: c.rope, v: c.v, heads: c.heads, kvLoraRank: c.r,
      qLen: T, scale: scaleOf(c), limits: gpu.limits, subgroupMatrix, strides: { latentRow, kpeOffset, outRow },
    }),
  ]);
  const y = await gpu.readF32(ob, 0, T * outRow);
  gpu.destroy(qb, kvb, lb, ob);
  const got = new Float32Array(T * c.heads * c.v);
  for (let i = 0; i < T; i++) got.set(y.subarray(i * outRow, i * outRow + c.heads * c.v), i * c.heads * c.v);
  return { got, want: attentionRef(c, x, 0, T, scaleOf(c)) };
}
