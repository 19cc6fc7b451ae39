// Shared by the grouped decode attention tests (portable and subgroup-matrix): random caches packed as
// shared/protocol/src/kv/latent-layout.ts lays them out, a float64 reference on the rows as stored, and one runner.
import { seededRandom } from '@latentwire/testing';
import type { Gpu } from '@latentwire/gpu';
import { kvQuantize, quantizeLatentRowsCpu } from '@latentwire/gpu/kernels';
import { pagesFor, type KvDtype, type LatentKvLayout } from '@latentwire/protocol';
import { encodeE4M3, encodeE5M2, decodeE4M3, decodeE5M2, f32Bits, f32FromBits } from '@latentwire/model';
import {
  groupedDecodeAttention, groupedDecodeLayout, groupedDecodePlan, groupedDecodeScratchBytes,
  type GroupedDecodeEngine, type GroupedDecodeVariant, type MatrixCapabilities,
} from '../../src/kernels/grouped-decode-attention/index.js';

const rng = seededRandom;

/** Values in ±[0.1, 1) · scale: random and never zero. */
export function nonZero(n: number, rand: () => number, scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() < 0.5 ? -1 : 1) * (0.1 + 0.9 * rand()) * scale;
  return out;
}

function bf16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Writes `rows` (token t = rows[t*(r+rope) ...]) of a sequence whose page table is `pages` into `cache`, as
 * shared/protocol/src/kv/latent-layout.ts lays them out, and returns what the cache holds, decoded (float64).
 */
export function writeRows(l: LatentKvLayout, rows: Float64Array, count: number, pages: readonly number[], cache: Uint32Array): Float64Array {
  const { kvLoraRank: r, ropeDim: rope, pageSize } = l;
  const width = r + rope;
  const stored = new Float64Array(count * width);
  for (let t = 0; t < count; t++) {
    const page = pages[Math.floor(t / pageSize)]!;
    const slot = t % pageSize;
    const base = (page * l.pageBytes) / 4;
    const row = base + (slot * l.rowBytes) / 4;
    cache.fill(0, row, row + l.rowBytes / 4);
    let scale = 1;
    if (l.scales.kind !== 'none') {
      let amax = 0;
      for (let i = 0; i < r; i++) amax = Math.max(amax, Math.abs(Math.fround(rows[t * width + i]!)));
      scale = amax === 0 ? 1 : Math.fround(amax * Math.fround(1 / 448));
      cache[base + l.scalesOffset / 4 + slot] = f32Bits(scale);
    }
    const section = (type: string, first: number, n: number, w0: number, sc: number) => {
      for (let i = 0; i < n; i++) {
        const x = Math.fround(rows[t * width + first + i]!);
        let v: number;
        switch (type) {
          case 'f32':
            cache[w0 + i] = f32Bits(x);
            v = x;
            break;
          case 'bf16': {
            const h = bf16Bits(f32Bits(x));
            cache[w0 + (i >> 1)]! |= h << (16 * (i & 1));
            v = f32FromBits(h << 16);
            break;
          }
          case 'fp8_e5m2': {
            const code = encodeE5M2(x);
            cache[w0 + (i >> 2)]! |= code << (8 * (i & 3));
            v = decodeE5M2(code);
            break;
          }
          default: {
            const code = encodeE4M3(Math.fround(x / sc));
            cache[w0 + (i >> 2)]! |= code << (8 * (i & 3));
            v = Math.fround(decodeE4M3(code) * sc);
          }
        }
        stored[t * width + first + i] = v;
      }
    };
    section(l.latentType, 0, r, row, scale);
    section(l.ropeType, r, rope, row + l.latentBytes / 4, 1);
  }
  return stored;
}

export interface Case {
  readonly r: number;
  readonly rope: number;
  readonly heads: number;
  readonly dtype: KvDtype;
  readonly pageSize: number;
  readonly headGroup: number;
  readonly splits: number;
  readonly lens: readonly number[];
  /** Portable engine: this tile with the given threads instead of the plan; subgroup-matrix: the plan's variant
   *  with this tile. */
  readonly tileTokens?: number;
  readonly workgroupSize?: number;
  readonly poolBindings?: number;
  readonly seed?: number;
  /** Write the pages with shared's kv-quantize GPU kernel instead of uploading the test's own packing. */
  readonly viaQuantizeKernel?: boolean;
  /** Which kernel (default: the plan's choice, portable without `matrix`). */
  readonly engine?: GroupedDecodeEngine;
  readonly matrix?: MatrixCapabilities;
  /** Token t's row is multiplied by 1 + ramp·t, so later scores grow and the running max keeps moving. */
  readonly ramp?: number;
}

export interface Built {
  readonly q: Float64Array;
  readonly stored: Float64Array[];
  readonly scale: number;
  readonly bufs: GPUBuffer[];
  /** The test's packing equals quantizeLatentRowsCpu's, word for word. */
  readonly sameAsQuantizer: boolean;
  readonly args: Omit<Parameters<typeof groupedDecodeAttention>[0], 'variant' | 'numSplits'>;
}

/** Random q and cache for `c`; page ids are shuffled over a pool with spare pages (non-contiguous). */
export async function build(gpu: Gpu, c: Case, variant: GroupedDecodeVariant): Promise<Built> {
  const rand = rng(c.seed ?? 1234);
  const l = groupedDecodeLayout(variant);
  const width = c.r + c.rope;
  const batch = c.lens.length;
  const pagesPer = c.lens.map((n) => pagesFor(c, n));
  const totalPages = pagesPer.reduce((a, b) => a + b, 0) * 2 + 3;
  const ids = Array.from({ length: totalPages }, (_, i) => i);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  const cache = new Uint32Array((totalPages * l.pageBytes) / 4);
  // fill unused pages with garbage that must never be read (huge values would show up in the result)
  for (let i = 0; i < cache.length; i++) cache[i] = f32Bits(1e30);
  const table: number[] = [];
  const offsets: number[] = [];
  const stored: Float64Array[] = [];
  const seqRows: { rows: Float32Array; pages: number[] }[] = [];
  const cpuCache = cache.slice();
  let next = 0;
  for (let b = 0; b < batch; b++) {
    // offsets leave a gap of one entry between rows, to check they are honoured
    offsets.push(table.length + 1);
    table.push(0xffffffff);
    const pages = ids.slice(next, next + pagesPer[b]!);
    next += pagesPer[b]!;
    table.push(...pages);
    const rows = nonZero(c.lens[b]! * width, rand);
    if (c.ramp) for (let i = 0; i < rows.length; i++) rows[i]! *= 1 + c.ramp * Math.floor(i / width);
    stored.push(writeRows(l, rows, c.lens[b]!, pages, cache));
    const f32Rows = new Float32Array(rows);
    quantizeLatentRowsCpu(l, f32Rows, c.lens[b]!, width, pages, 0, cpuCache);
    seqRows.push({ rows: f32Rows, pages });
  }
  const sameAsQuantizer = cache.every((w, i) => w === cpuCache[i]);
  // q ×3 so softmaxes are peaked (score std ≈ 1), not near-uniform
  const q = nonZero(batch * c.heads * width, rand, 3);
  const pools = variant.poolBindings ?? 1;
  const pagesPerBuffer = Math.ceil(totalPages / pools);
  const poolBufs = Array.from({ length: pools }, (_, k) => {
    const words = (pagesPerBuffer * l.pageBytes) / 4;
    const part = cache.slice(k * words, Math.min(cache.length, (k + 1) * words));
    return gpu.upload(`pool${k}`, part.length > 0 ? part : new Uint32Array(4));
  });
  const scratchBufs: GPUBuffer[] = [];
  if (c.viaQuantizeKernel) {
    if (pools !== 1) throw new RangeError('viaQuantizeKernel: one pool buffer only');
    const garbage = new Uint32Array(cache.length).fill(f32Bits(1e30));
    gpu.write(poolBufs[0]!, garbage);
    const programs = seqRows.filter((sr) => sr.rows.length > 0).map((sr) => {
      const src = gpu.upload('rows', sr.rows);
      const pageIds = gpu.upload('pageIds', new Uint32Array(sr.pages));
      scratchBufs.push(src, pageIds);
      return kvQuantize({ layout: l, src, rows: sr.rows.length / width, pageIds, cache: poolBufs[0]! });
    });
    await gpu.run(programs);
  }
  const maxSplits = Math.max(c.splits, 1);
  const scratch = groupedDecodeScratchBytes({ batch, heads: c.heads, kvLoraRank: c.r, numSplits: maxSplits });
  const bufs = [
    gpu.upload('q', new Float32Array(q)),
    gpu.upload('lens', new Uint32Array(c.lens)),
    gpu.upload('offsets', new Uint32Array(offsets)),
    gpu.upload('table', new Uint32Array(table)),
    gpu.buffer('out', batch * c.heads * c.r * 4),
    gpu.buffer('lse', scratch.lseBytes),
    gpu.buffer('partial', Math.max(16, scratch.partialBytes)),
    ...poolBufs,
    ...scratchBufs,
  ];
  const [qb, lens, offs, tab, out, lse, partial] = bufs as [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer];
  return {
    q, stored, scale: 1 / Math.sqrt(width + 8), bufs, sameAsQuantizer,
    args: {
      q: qb, seqLens: lens, pageTableOffsets: offs, pageTable: tab, pools: poolBufs, pagesPerBuffer, out, lse, partial,
      batch, heads: c.heads, scale: 1 / Math.sqrt(width + 8),
    },
  };
}

/** float64 reference: ō[b, h] = Σ_t softmax_t((q_lat·c_t + q_pe·k_pe_t)·scale) c_t. */
export function reference(c: Case, b: Built): Float64Array {
  const width = c.r + c.rope;
  const out = new Float64Array(c.lens.length * c.heads * c.r);
  for (let s = 0; s < c.lens.length; s++) {
    const n = c.lens[s]!;
    const rows = b.stored[s]!;
    for (let h = 0; h < c.heads; h++) {
      const q0 = (s * c.heads + h) * width;
      const scores = new Float64Array(n);
      let m = -Infinity;
      for (let t = 0; t < n; t++) {
        let d = 0;
        for (let i = 0; i < width; i++) d += Math.fround(b.q[q0 + i]!) * rows[t * width + i]!;
        scores[t] = d * b.scale;
        m = Math.max(m, scores[t]!);
      }
      let sum = 0;
      for (let t = 0; t < n; t++) sum += (scores[t] = Math.exp(scores[t]! - m));
      const o0 = (s * c.heads + h) * c.r;
      for (let t = 0; t < n; t++) {
        const p = scores[t]! / sum;
        for (let i = 0; i < c.r; i++) out[o0 + i] += p * rows[t * width + i]!;
      }
    }
  }
  return out;
}

export function variantOf(gpu: Gpu, c: Case): GroupedDecodeVariant {
  if (c.tileTokens && c.engine !== 'subgroup-matrix') {
    return {
      kvLoraRank: c.r, ropeDim: c.rope, dtype: c.dtype, pageSize: c.pageSize, headGroup: c.headGroup,
      tileTokens: c.tileTokens, poolBindings: c.poolBindings ?? 1, workgroupSize: c.workgroupSize,
    };
  }
  const planned = groupedDecodePlan({
    kvLoraRank: c.r, ropeDim: c.rope, dtype: c.dtype, pageSize: c.pageSize, heads: c.heads, headGroup: c.headGroup,
    limits: gpu.limits, poolBindings: c.poolBindings, engine: c.engine, matrix: c.matrix,
  });
  return c.tileTokens === undefined ? planned : { ...planned, tileTokens: c.tileTokens };
}

export async function runCase(
  gpu: Gpu, c: Case,
): Promise<{ err: number; label: string; sameAsQuantizer: boolean; got: Float32Array; variant: GroupedDecodeVariant }> {
  const variant = variantOf(gpu, c);
  const b = await build(gpu, c, variant);
  try {
    const programs = groupedDecodeAttention({ ...b.args, variant, numSplits: c.splits });
    await gpu.run(programs);
    const got = await gpu.readF32(b.args.out as GPUBuffer, 0, c.lens.length * c.heads * c.r);
    const want = reference(c, b);
    let err = 0;
    for (let i = 0; i < want.length; i++) {
      const e = Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!));
      err = Number.isNaN(e) ? Infinity : Math.max(err, e);
    }
    return { err, label: programs[0]!.shader.label, sameAsQuantizer: b.sameAsQuantizer, got, variant };
  } finally {
    gpu.destroy(...b.bufs);
  }
}

