// Matmul benchmark at DeepSeek-V2-Lite shapes (hidden 2048): y[M, N] = x[M, K] · Wᵀ with synthetic bf16
// weights uploaded once per (N, K). Times with GPU timestamps when the adapter has them (else wall clock
// after gpu.sync()) and prints ms, GFLOP/s and the fraction of the f32 FMA peak, plus weight-read GB/s and
// the fraction of memory bandwidth for the small-M (decode) rows.
//   node bench/dist/matmul.js                       default shapes (a short subset on llvmpipe)
//   node bench/dist/matmul.js 1x2048x2048,512x3072x2048 '[{"tile":"t64x64"},{}]'   M×N×K list, option sets to sweep
// Each row: the median of BENCH_RUNS (7) batches with min–max; the table printed and written as $BENCH_NAME.json (matmul).
// Env: PEAK_TFLOPS (default 65, H100 f32 FMA from WGSL), BENCH_QUICK (1 = short shape list;
// default on for llvmpipe), BENCH_ITERS, BENCH_RUNS, plus the GPU settings of gpuOptionsFromEnv (WEBGPU_ADAPTER, DAWN_FEATURES).
import { pathToFileURL } from 'node:url';
import { Gpu, gpuOptionsFromEnv } from '@latentwire/gpu';
import { packWeights } from '@latentwire/model';
import { measureReadBandwidth } from './lib/read-bandwidth.js';
import { benchEnv } from './lib/env.js';
import { runMeta, spread, writeJson } from './lib/report.js';
import { roundTo } from '@latentwire/gpu/testing';
import { matmulPrograms, type GemmTileName, type GemvConfig, type MatmulVariant, type MmaTileName } from '@latentwire/gpu/kernels';

/** GPU work run before each shape is timed. */
const WARM_MS = 200;

export interface MatmulShape {
  readonly name?: string;
  readonly M: number;
  readonly N: number;
  readonly K: number;
}

export interface MatmulBenchOptions {
  /** Dispatches timed per shape (default: enough for ~targetMs, 10 to 1000; env BENCH_ITERS). */
  readonly iters?: number;
  readonly targetMs?: number;
  /** Fewest dispatches timed when sizing the batch (default 10). */
  readonly minIters?: number;
  /** Timed batches per shape, reported as median and min–max (default env BENCH_RUNS or 7). */
  readonly runs?: number;
  readonly variant?: MatmulVariant;
  readonly tile?: GemmTileName;
  /** Subgroup-matrix tile (with variant 'gemm-mma', or auto where the device has subgroup matrices). */
  readonly mmaTile?: MmaTileName;
  readonly gemv?: Partial<GemvConfig>;
  /** Split-K into this many K ranges (a GEMM and the sum: both dispatches timed), or up to splitKMax by the launcher's rule. */
  readonly splits?: number;
  readonly splitKMax?: number;
  /** The weights' dtype (default bf16); f16 holds the same values (they are in its normal range). */
  readonly dtype?: 'bf16' | 'f16';
  /** The activations' dtype (default f32); f16 (the subgroup-matrix GEMM only) holds the f32 values rounded. */
  readonly xDtype?: 'f32' | 'f16';
  /** The subgroup-matrix GEMM's blocks in groups of this many rows of blocks (MatmulArgs.groupRows; default the launcher's). */
  readonly groupRows?: number;
  /** Read y back and compare 64 sampled outputs with a float64 dot product (default true). */
  readonly check?: boolean;
  /** f32 FMA peak in TFLOP/s the fraction is taken of (default env PEAK_TFLOPS or 65). */
  readonly peakTflops?: number;
  /** Memory bandwidth in GB/s (main measures it: bench/lib/read-bandwidth; default env PEAK_GBPS or 3000). */
  readonly peakGbps?: number;
}

export interface Row {
  readonly name: string;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  /** Shader label: variant, tile and alignment paths. */
  readonly kernel: string;
  /** Per dispatch, the median over the runs: GPU timestamps when the adapter has them, else wall clock. */
  readonly ms: number;
  /** Fastest and slowest run. */
  readonly msMin: number;
  readonly msMax: number;
  readonly runs: number;
  readonly timing: 'gpu' | 'wall';
  /** Wall clock per dispatch over the runs' batches, median (includes per-dispatch overheads). */
  readonly wallMs: number;
  readonly iters: number;
  readonly gflops: number;
  readonly peakFraction: number;
  /** Weight bytes read per ms, as GB/s (bf16: 2·N·K bytes). */
  readonly weightGBps: number;
  readonly bandwidthFraction: number;
  /** Largest |y - ref| / Σ|x·w| over the sampled outputs (NaN when not checked). */
  readonly maxRelErr: number;
}

export const PREFILL_DECODE_SHAPES: readonly MatmulShape[] = [1, 16, 512, 2048].flatMap((M) => [
  { name: 'q_proj', M, N: 3072, K: 2048 },
  { name: 'kv_a', M, N: 576, K: 2048 },
  { name: 'o_proj', M, N: 2048, K: 2048 },
  { name: 'dense_up', M, N: 10944, K: 2048 },
  { name: 'dense_down', M, N: 2048, K: 10944 },
]);

export const QUICK_SHAPES: readonly MatmulShape[] = [
  { name: 'kv_a', M: 1, N: 576, K: 2048 },
  { name: 'o_proj', M: 1, N: 2048, K: 2048 },
  { name: 'kv_a', M: 16, N: 576, K: 2048 },
  { name: 'kv_a', M: 128, N: 576, K: 2048 },
  { name: 'o_proj', M: 128, N: 2048, K: 2048 },
];

function envNumber(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`${name}=${v} is not a positive number`);
  return n;
}

/** Small random bf16 values (|v| in [2^-8, 2^-6)), two per u32: cheap to make at 10944×2048. */
function syntheticBf16(elements: number, seed: number): Uint32Array {
  const out = new Uint32Array(Math.ceil(elements / 2));
  let s = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const lo = 0x3b80 | (s & 0x807f), hi = 0x3b80 | ((s >>> 16) & 0x807f);
    out[i] = lo | (hi << 16);
  }
  return out;
}

/** The values of packed bf16 words. */
function bf16Values(words: Uint32Array, n: number): Float32Array {
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = i & 1 ? words[i >> 1]! & 0xffff0000 : words[i >> 1]! << 16;
  return new Float32Array(bits.buffer);
}

function randomF32(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = (s / 2 ** 32) * 2 - 1;
  }
  return a;
}

/** Compares 64 sampled outputs of y with float64 dot products over the same synthetic weights. */
async function sampleError(gpu: Gpu, y: GPUBuffer, x: Float32Array, wSeed: number, s: MatmulShape): Promise<number> {
  const got = await gpu.readF32(y, 0, s.M * s.N);
  const w = new Float32Array(syntheticBf16(s.N * s.K, wSeed).buffer.slice(0));
  const wu = new Uint32Array(w.buffer);
  const f = new Float32Array(1), fu = new Uint32Array(f.buffer);
  const wAt = (i: number) => {
    const word = wu[i >> 1]!;
    fu[0] = i & 1 ? word & 0xffff0000 : word << 16;
    return f[0]!;
  };
  let worst = 0;
  for (let j = 0; j < 64; j++) {
    const m = Math.floor((j * 7919) % s.M), n = Math.floor((j * 104729 + 17) % s.N);
    let sum = 0, mag = 0;
    for (let k = 0; k < s.K; k++) {
      const p = x[m * s.K + k]! * wAt(n * s.K + k);
      sum += p;
      mag += Math.abs(p);
    }
    const err = Math.abs(got[m * s.N + n]! - sum) / (mag + 1e-30);
    worst = Number.isNaN(err) ? Infinity : Math.max(worst, err);
  }
  return worst;
}

/** Times one matmul per shape (bf16 weights, or opts.dtype): a batch of dispatches in one submission after a warm-up. */
export async function benchMatmul(gpu: Gpu, shapes: readonly MatmulShape[], opts: MatmulBenchOptions = {}): Promise<Row[]> {
  const envIters = process.env.BENCH_ITERS ? envNumber('BENCH_ITERS', 10) : undefined;
  const fixedIters = opts.iters ?? envIters;
  const targetMs = opts.targetMs ?? 30;
  const runs = opts.runs ?? benchEnv().BENCH_RUNS;
  const peakTflops = opts.peakTflops ?? envNumber('PEAK_TFLOPS', 65);
  const peakGbps = opts.peakGbps ?? envNumber('PEAK_GBPS', 3000);
  const weights = new Map<string, GPUBuffer>();
  const rows: Row[] = [];
  const dtype = opts.dtype ?? 'bf16';
  try {
    for (const s of shapes) {
      const key = `${s.N}x${s.K}${dtype}`;
      let wbuf = weights.get(key);
      if (!wbuf) {
        const words = syntheticBf16(s.N * s.K, s.N * 31 + s.K);
        wbuf = gpu.upload(`bench-w-${key}`, dtype === 'bf16' ? words : packWeights(bf16Values(words, s.N * s.K), 'f16'));
        weights.set(key, wbuf);
      }
      const xF16 = opts.xDtype === 'f16';
      const x64 = Float64Array.from(randomF32(s.M * s.K, s.M + s.K));
      // f16 activations: the reference takes the values they hold
      const xData = Float32Array.from(xF16 ? roundTo(x64, 'f16') : x64);
      const x = gpu.upload('bench-x', xF16 ? packWeights(x64, 'f16') : xData);
      const y = gpu.buffer('bench-y', s.M * s.N * 4);
      const split = opts.splits !== undefined || opts.splitKMax !== undefined;
      const scratch = split ? gpu.buffer('bench-split-k', Math.max(opts.splits ?? 0, opts.splitKMax ?? 0) * s.M * s.N * 4) : undefined;
      try {
        const programs = matmulPrograms(
          {
            x, ...(xF16 ? { xDtype: 'f16' as const } : {}), y, M: s.M, N: s.N, K: s.K, weight: { buffer: wbuf, dtype, shape: [s.N, s.K] }, variant: opts.variant, tile: opts.tile, mmaTile: opts.mmaTile, gemv: opts.gemv,
            ...(opts.groupRows !== undefined ? { groupRows: opts.groupRows } : {}),
            ...(scratch ? { splitK: { scratch, splits: opts.splits } } : {}),
          },
          { ...gpu.matmulLimits, ...(opts.splitKMax !== undefined ? { splitKMax: opts.splitKMax } : {}) },
        );
        const labels = programs.map((p) => p.shader.label);
        await gpu.run(programs); // compile
        await gpu.sync();
        // the clocks up before timing (the card idles low while the CPU builds a shape's inputs: without this, one
        // H100 call timed the 4096-row GEMMs up to 4x slow)
        for (const until = performance.now() + WARM_MS; performance.now() < until;) {
          await gpu.run(Array.from({ length: 10 }, () => programs).flat());
          await gpu.sync();
        }
        // size the batch from a wall-clock probe so it lasts ~targetMs: GPU timestamps are coarse (Dawn quantizes
        // them; 65.5 µs steps were seen on an H100), so short kernels need many dispatches to average out
        const probe = 1;
        let t0 = performance.now();
        await gpu.run(Array.from({ length: probe }, () => programs).flat());
        await gpu.sync();
        const probeMs = (performance.now() - t0) / probe;
        const iters = fixedIters ?? Math.min(1000, Math.max(opts.minIters ?? 10, Math.ceil(targetMs / probeMs)));
        // runs of the batch, each its own median sample: a single batch let one slow stretch of the card (3-4x,
        // seen within one process on the H100) pass for the kernel's time
        const gpuMs: number[] = [];
        const wall: number[] = [];
        let timing: Row['timing'] = 'gpu';
        for (let r = 0; r < runs; r++) {
          gpu.profiler?.reset();
          t0 = performance.now();
          await gpu.run(Array.from({ length: iters }, () => programs).flat());
          await gpu.sync();
          wall.push((performance.now() - t0) / iters);
          // a split's two dispatches together (their labels differ)
          const report = gpu.profiler?.report().filter((e) => labels.includes(e.label)) ?? [];
          if (report.length === labels.length) gpuMs.push(report.reduce((sum, e) => sum + e.ms / e.count, 0));
          else timing = 'wall';
        }
        const t = spread(timing === 'gpu' ? gpuMs : wall);
        const ms = t.median;
        const wallMs = spread(wall).median;
        const maxRelErr = opts.check === false ? NaN : await sampleError(gpu, y, xData, s.N * 31 + s.K, s);
        const flops = 2 * s.M * s.N * s.K;
        const gflops = flops / (ms * 1e6);
        const weightGBps = (2 * s.N * s.K) / (ms * 1e6);
        rows.push({
          name: s.name ?? 'matmul', M: s.M, N: s.N, K: s.K, kernel: labels.join(' + ') + (programs.length > 1 ? ` z${programs[0]!.workgroups[2]}` : ''),
          ms, msMin: t.min, msMax: t.max, runs, timing, wallMs, iters,
          gflops, peakFraction: gflops / (peakTflops * 1e3), weightGBps, bandwidthFraction: weightGBps / peakGbps, maxRelErr,
        });
      } finally {
        gpu.destroy(x, y, scratch);
      }
    }
  } finally {
    gpu.destroy(...weights.values());
  }
  return rows;
}

/** The rows as an aligned text table; GB/s columns only for small M (where the weight read bounds the time). */
export function formatRows(rows: readonly Row[], smallM = 16): string {
  const head = ['shape', 'M', 'N', 'K', 'ms', 'ms min–max', 'wall ms', 'GFLOP/s', '%FMA peak', 'weight GB/s', '%BW', 'rel err', 'kernel'];
  const g = (v: number) => (v >= 100 ? v.toFixed(0) : v.toPrecision(3));
  const body = rows.map((r) => [
    r.name, String(r.M), String(r.N), String(r.K), r.ms.toPrecision(4), `${r.msMin.toPrecision(3)}–${r.msMax.toPrecision(3)}`, r.wallMs.toPrecision(4), g(r.gflops), g(100 * r.peakFraction),
    r.M <= smallM ? g(r.weightGBps) : '-', r.M <= smallM ? g(100 * r.bandwidthFraction) : '-',
    Number.isNaN(r.maxRelErr) ? '-' : r.maxRelErr.toExponential(1), r.kernel,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

function parseShapes(arg: string): MatmulShape[] {
  return arg.split(',').map((t) => {
    const [M, N, K] = t.split('x').map(Number);
    if (!M || !N || !K) throw new RangeError(`shape '${t}' is not MxNxK`);
    return { name: t, M, N, K };
  });
}

async function main(): Promise<void> {
  const gpu = await Gpu.create({ ...gpuOptionsFromEnv(), profile: true });
  const info = gpu.adapterInfo;
  const software = /llvmpipe|lavapipe|swiftshader/i.test(`${info.description} ${info.device} ${info.architecture}`);
  const quick = process.env.BENCH_QUICK !== undefined && process.env.BENCH_QUICK !== '' ? process.env.BENCH_QUICK !== '0' : software;
  const shapes = process.argv[2] ? parseShapes(process.argv[2]) : quick ? QUICK_SHAPES : PREFILL_DECODE_SHAPES;
  // optional sweep: a JSON list of option sets, e.g. '[{"variant":"gemm","tile":"t64x64"},{"gemv":{"T":32}}]'
  const sweep: MatmulBenchOptions[] = process.argv[3] ? JSON.parse(process.argv[3]) : [{}];
  const hbm = await measureReadBandwidth(gpu, 5);
  console.log(`ceiling for the small-M rows: read bandwidth measured here ${hbm.gbps.toFixed(0)} GB/s (${hbm.min.toFixed(0)}–${hbm.max.toFixed(0)}, ${hbm.timing})`);
  console.log(
    `${info.vendor} ${info.description || info.device}; timing: ${gpu.profiler ? 'GPU timestamps' : 'wall clock'}; ` +
      `workgroup memory ${gpu.limits.maxComputeWorkgroupStorageSize} B; subgroups ${gpu.hasSubgroups}; ${quick ? 'quick shapes' : 'full shapes'}`,
  );
  const results: { options: MatmulBenchOptions; rows: Row[] }[] = [];
  for (const o of sweep) {
    if (sweep.length > 1) console.log(`\noptions ${JSON.stringify(o)}`);
    const rows: Row[] = [];
    results.push({ options: o, rows });
    for (const s of shapes) {
      try {
        rows.push(...(await benchMatmul(gpu, [s], { targetMs: quick ? 1 : 30, minIters: quick ? 2 : 10, peakGbps: hbm.gbps, ...o })));
      } catch (e) {
        console.log(`${s.name ?? ''} ${s.M}x${s.N}x${s.K}: ${(e as Error).message}`);
      }
    }
    console.log(formatRows(rows));
  }
  console.log(`\nwrote ${writeJson(process.env.BENCH_NAME || 'matmul', { ...runMeta(gpu), hbm, results })}`);
  gpu.dispose();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
