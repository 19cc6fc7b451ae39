// Grouped MLA decode attention (decode-node/src/kernels/grouped-decode-attention) alone, at DeepSeek-V2
// (128 heads) and V2-Lite (16 heads) shapes: r = 512, rope = 64, every sequence of the batch at the same
// context length, pages shuffled over the pool. Per (model, batch, context, cache dtype) it prints the time
// (GPU timestamps when the adapter has them, else wall clock after sync), the cache read rate (each token's
// row and scale read once), FLOP/s (2·heads·(r+rope) + 2·heads·r per token) and the fraction of the binding
// ceiling: ideal = max(cache bytes / PEAK_GBPS, FLOPs / PEAK_TFLOPS), fraction = ideal / measured.
//   node bench/dist/decode-attention.js
// Env (lists are comma-separated):
//   BENCH_MODELS (v2,v2-lite)  BENCH_BATCHES (1,32,128)  BENCH_CONTEXTS (1024,4096,16384)
//   BENCH_DTYPES (bf16,fp8_e4m3,fp8_e5m2; f32 too if asked)  PAGE_SIZE (64)  HEAD_GROUP, TILE_TOKENS, WORKGROUP_SIZE
//   (the plan's defaults)
//   SPLITS (chooseDecodeSplits's)  SM_COUNT (132)  BENCH_TARGET_MS (40)  BENCH_ITERS (fixed iteration count)
//   PEAK_GBPS (3000, H100 HBM3)  PEAK_TFLOPS (65, H100 f32 FMA)  BENCH_QUICK (1 on software adapters: V2-Lite and
//   V2 at batch 1, 1K context, bf16 and fp8_e4m3)  plus WEBGPU_ADAPTER / DAWN_FEATURES (gpuOptionsFromEnv).
// The cache holds synthetic values (fillRandom's bf16 or f32 words; for fp8 the same bytes read as codes, so a
// few are NaN codes: the output is not meaningful for fp8, the timing is).
import { pathToFileURL } from 'node:url';
import { Gpu, type BufferBinding, type KernelProgram } from '@latentwire/gpu';
import { gpuOptionsFromEnv } from '@latentwire/gpu';
import { fillRandom } from '@latentwire/gpu/kernels';
import { latentPagePool, pagesFor } from '@latentwire/protocol';
import { printTable, writeJson, isSoftwareAdapter, type Row } from './lib/report.js';

type KvDtype = 'f32' | 'bf16' | 'fp8_e5m2' | 'fp8_e4m3';

/** The slice of the decode-node kernel module this bench uses (bench does not depend on decode-node's types). */
interface Variant {
  readonly kvLoraRank: number; readonly ropeDim: number; readonly dtype: KvDtype; readonly pageSize: number;
  readonly headGroup: number; readonly tileTokens: number; readonly workgroupSize?: number; readonly poolBindings?: number;
}
interface KernelModule {
  groupedDecodePlan(p: {
    kvLoraRank: number; ropeDim: number; dtype: KvDtype; pageSize: number; heads: number; limits: GPUSupportedLimits;
    headGroup?: number; maxTileTokens?: number; workgroupSize?: number; poolBindings?: number;
  }): Variant;
  chooseDecodeSplits(p: { batch: number; heads: number; headGroup: number; maxContext: number; smCount?: number }): number;
  groupedDecodeScratchBytes(p: { batch: number; heads: number; kvLoraRank: number; numSplits: number }): { partialBytes: number; lseBytes: number };
  groupedDecodeLayout(v: Variant): { pageBytes: number; tokenBytes: number };
  groupedDecodeWorkgroupBytes(v: Variant): number;
  groupedDecodeAttention(a: {
    variant: Variant; q: GPUBuffer; seqLens: GPUBuffer; pageTableOffsets: GPUBuffer; pageTable: GPUBuffer;
    pools: readonly (GPUBuffer | BufferBinding)[]; pagesPerBuffer?: number; out: GPUBuffer; lse: GPUBuffer; partial?: GPUBuffer;
    batch: number; heads: number; numSplits: number; scale: number;
  }): KernelProgram[];
  MAX_POOL_BINDINGS: number;
}

const kernelModule = async (): Promise<KernelModule> =>
  (await import(
    new URL('./kernels/grouped-decode-attention/index.js', import.meta.resolve('@latentwire/decode-node')).href
  )) as KernelModule;

const MODELS = { v2: { heads: 128 }, 'v2-lite': { heads: 16 } } as const;
type ModelName = keyof typeof MODELS;
const R = 512;
const ROPE = 64;

function envList(name: string, fallback: readonly string[]): string[] {
  const v = process.env[name];
  return v ? v.split(',').map((s) => s.trim()).filter(Boolean) : [...fallback];
}

function envNumber(name: string, fallback: number): number;
function envNumber(name: string, fallback: undefined): number | undefined;
function envNumber(name: string, fallback: number | undefined): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`${name}=${v} is not a positive number`);
  return n;
}

export interface BenchCase {
  readonly model: ModelName;
  readonly batch: number;
  readonly context: number;
  readonly dtype: KvDtype;
}

/** Seeded Fisher–Yates shuffle of 0..n-1 (pages scattered over the pool, as after some churn). */
function shuffledIds(n: number, seed: number): Uint32Array {
  const ids = new Uint32Array(n).map((_, i) => i);
  let s = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    const t = ids[i]!;
    ids[i] = ids[j]!;
    ids[j] = t;
  }
  return ids;
}

export async function benchDecodeAttention(gpu: Gpu, cases: readonly BenchCase[]): Promise<Row[]> {
  const k = await kernelModule();
  const pageSize = envNumber('PAGE_SIZE', 64);
  const peakGbps = envNumber('PEAK_GBPS', 3000);
  const peakTflops = envNumber('PEAK_TFLOPS', 65);
  const targetMs = envNumber('BENCH_TARGET_MS', 40);
  const fixedIters = envNumber('BENCH_ITERS', undefined);
  const smCount = envNumber('SM_COUNT', 132);
  const maxBinding = gpu.limits.maxStorageBufferBindingSize;
  const rows: Row[] = [];
  for (const c of cases) {
    const heads = MODELS[c.model].heads;
    const base = k.groupedDecodePlan({
      kvLoraRank: R, ropeDim: ROPE, dtype: c.dtype, pageSize, heads, limits: gpu.limits,
      headGroup: envNumber('HEAD_GROUP', undefined), maxTileTokens: envNumber('TILE_TOKENS', undefined),
      workgroupSize: envNumber('WORKGROUP_SIZE', undefined),
    });
    const layout = k.groupedDecodeLayout(base);
    const pagesPerSeq = pagesFor({ pageSize }, c.context);
    const pages = c.batch * pagesPerSeq;
    const pool = latentPagePool(layout, pages, maxBinding);
    const { pagesPerBuffer } = pool, poolBindings = pool.bufferPages.length;
    if (poolBindings > k.MAX_POOL_BINDINGS) {
      console.error(`skip ${JSON.stringify(c)}: ${poolBindings} pool buffers needed`);
      continue;
    }
    const variant: Variant = { ...base, poolBindings };
    const numSplits = envNumber('SPLITS', undefined) ?? k.chooseDecodeSplits({ batch: c.batch, heads, headGroup: variant.headGroup, maxContext: c.context, smCount });
    const scratch = k.groupedDecodeScratchBytes({ batch: c.batch, heads, kvLoraRank: R, numSplits });
    const table = new Uint32Array(pages);
    const ids = shuffledIds(pages, c.batch * 7 + c.context);
    table.set(ids);
    const offsets = new Uint32Array(c.batch).map((_, b) => b * pagesPerSeq);
    const pools: GPUBuffer[] = [];
    const bufs: GPUBuffer[] = [];
    try {
      for (let p = 0; p < poolBindings; p++) {
        const n = pool.bufferPages[p]!;
        const buf = gpu.buffer(`pool${p}`, n * layout.pageBytes);
        pools.push(buf);
        const fillDtype = c.dtype === 'f32' ? 'f32' : 'bf16';
        const elements = (n * layout.pageBytes) / (fillDtype === 'f32' ? 4 : 2);
        await gpu.run([fillRandom({ buffer: buf, dtype: fillDtype, shape: [elements] }, 17 + p, 1)]);
      }
      const q = gpu.buffer('q', c.batch * heads * (R + ROPE) * 4);
      bufs.push(q);
      await gpu.run([fillRandom({ buffer: q, dtype: 'f32', shape: [c.batch * heads * (R + ROPE)] }, 5, 1)]);
      const seqLens = gpu.upload('lens', new Uint32Array(c.batch).fill(c.context));
      const pageTableOffsets = gpu.upload('offsets', offsets);
      const pageTable = gpu.upload('table', table);
      const out = gpu.buffer('out', c.batch * heads * R * 4);
      const lse = gpu.buffer('lse', scratch.lseBytes);
      const partial = gpu.buffer('partial', Math.max(16, scratch.partialBytes));
      bufs.push(seqLens, pageTableOffsets, pageTable, out, lse, partial);
      const programs = k.groupedDecodeAttention({
        variant, q, seqLens, pageTableOffsets, pageTable, pools, pagesPerBuffer, out, lse, partial,
        batch: c.batch, heads, numSplits, scale: 1 / Math.sqrt(192),
      });
      await gpu.run(programs); // compile + warm-up
      await gpu.sync();
      const probe = 3;
      let t0 = performance.now();
      await gpu.run(Array.from({ length: probe }, () => programs).flat());
      await gpu.sync();
      const probeMs = (performance.now() - t0) / probe;
      const iters = fixedIters ?? Math.min(500, Math.max(3, Math.ceil(targetMs / probeMs)));
      gpu.profiler?.reset();
      t0 = performance.now();
      await gpu.run(Array.from({ length: iters }, () => programs).flat());
      await gpu.sync();
      const wallMs = (performance.now() - t0) / iters;
      const report = gpu.profiler?.report() ?? [];
      const per = (label: string) => {
        const e = report.find((x) => x.label === label);
        return e ? e.ms / e.count : NaN;
      };
      const attnMs = per(programs[0]!.shader.label);
      const mergeMs = programs[1] ? per(programs[1].shader.label) : 0;
      const gpuTimed = Number.isFinite(attnMs);
      const ms = gpuTimed ? attnMs + mergeMs : wallMs;
      const tokens = c.batch * c.context;
      const flops = tokens * heads * (2 * (R + ROPE) + 2 * R);
      const bytes = tokens * layout.tokenBytes;
      const ideal = Math.max(bytes / (peakGbps * 1e6), flops / (peakTflops * 1e9));
      const o = await gpu.readF32(out);
      let finite = true;
      for (let i = 0; i < o.length && finite; i++) finite = Number.isFinite(o[i]!);
      rows.push({
        model: c.model, heads, batch: c.batch, context: c.context, dtype: c.dtype,
        G: variant.headGroup, BT: variant.tileTokens, WG: variant.workgroupSize ?? 128, splits: numSplits, pools: poolBindings,
        ms, timing: gpuTimed ? 'gpu' : 'wall', mergeMs, wallMs, iters,
        'GB/s': bytes / (ms * 1e6), 'TFLOP/s': flops / (ms * 1e9),
        bound: bytes / (peakGbps * 1e6) >= flops / (peakTflops * 1e9) ? 'memory' : 'compute',
        'ceiling %': (100 * ideal) / ms,
        finite: String(finite),
        wgBytes: k.groupedDecodeWorkgroupBytes(variant),
      });
      console.error(`done ${c.model} b${c.batch} ctx${c.context} ${c.dtype}: ${ms.toFixed(3)} ms`);
    } finally {
      gpu.destroy(...pools, ...bufs);
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const opts = gpuOptionsFromEnv();
  const gpu = await Gpu.create({ ...opts, profile: true });
  const software = isSoftwareAdapter(gpu.adapterInfo);
  const quick = process.env.BENCH_QUICK ? process.env.BENCH_QUICK === '1' : software;
  const models = envList('BENCH_MODELS', quick ? ['v2-lite', 'v2'] : ['v2', 'v2-lite']) as ModelName[];
  for (const m of models) if (!(m in MODELS)) throw new RangeError(`BENCH_MODELS: unknown model ${m}`);
  const batches = envList('BENCH_BATCHES', quick ? ['1'] : ['1', '32', '128']).map(Number);
  const contexts = envList('BENCH_CONTEXTS', quick ? ['1024'] : ['1024', '4096', '16384']).map(Number);
  const dtypes = envList('BENCH_DTYPES', quick ? ['bf16', 'fp8_e4m3'] : ['bf16', 'fp8_e4m3', 'fp8_e5m2']) as KvDtype[];
  const cases: BenchCase[] = [];
  for (const dtype of dtypes) for (const model of models) for (const batch of batches) for (const context of contexts) cases.push({ model, batch, context, dtype });
  const rows = await benchDecodeAttention(gpu, cases);
  const device = `${gpu.adapterInfo.vendor} ${gpu.adapterInfo.architecture} ${gpu.adapterInfo.device} ${gpu.adapterInfo.description}`.trim();
  printTable(`grouped MLA decode attention (r=${R}, rope=${ROPE}, page ${envNumber('PAGE_SIZE', 64)}) on ${device}`, rows);
  const file = writeJson('decode-attention', {
    device, software, peakGbps: envNumber('PEAK_GBPS', 3000), peakTflops: envNumber('PEAK_TFLOPS', 65), rows,
  });
  console.log(`\nwrote ${file}`);
  gpu.dispose();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
