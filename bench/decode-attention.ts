// Grouped MLA decode attention (decode-node/src/kernels/grouped-decode-attention) alone, portable (f32 FMA) and
// subgroup-matrix (tensor cores, where the adapter has them) on the same caches, at DeepSeek-V2 (128 heads) and
// V2-Lite (16 heads) shapes: r = 512, rope = 64, scale 1/√192, every sequence at the same context length, pages
// shuffled over the pool, beside SGLang's Triton kernel measured on an H200 (bench/references/).
//   DAWN_FEATURES=allow_unsafe_apis,vulkan_enable_f16_on_nvidia node bench/dist/decode-attention.js
// What it does, in order:
//   1. measures the card's read bandwidth with a streaming-read kernel (the HBM ceiling used for the ceiling %);
//   2. per case fills the cache with N(0,1) latents quantized by shared's kv-quantize kernel (valid FP8 data),
//      and q with N(0,1); runs each engine, and times it by GPU timestamps: BENCH_RUNS runs (≥ 5), each the mean
//      of enough back-to-back calls to last ~BENCH_RUN_MS; reports the median and min–max over the runs. `ms`: the
//      calls in one compute pass timed from its start to its end, as SGLang's figures time CUDA-graph replays (the
//      kernel and its merge with the gap between them); `ms a pass a kernel`: each dispatch in its own timestamped
//      pass (the timing of the results before 12-06), which adds a pass's begin and end to each of the two;
//   3. checks the output is finite, and its relative error ‖o − ref‖ / ‖ref‖ for heads 0 and H-1 of the first
//      sequence against float64 references on the rows as stored (read back from the pool: the kernel's own error)
//      and on the values before quantization (the cache's rounding added).
// Env (lists comma-separated): BENCH_MODELS (v2,v2-lite)  BENCH_BATCHES (1,32,128)  BENCH_CONTEXTS (1024,4096,16384)
//   BENCH_DTYPES (bf16,fp8_e4m3,fp8_e5m2)  BENCH_ENGINES (f32,subgroup-matrix: those the adapter has)  PAGE_SIZE (64)
//   BENCH_ABLATE (parts of the subgroup-matrix kernel timed without: decode, store, fetch, scores, pv; see ABLATIONS)
//   BENCH_TILE_TOKENS (the subgroup-matrix kernel's tile sizes, each timed: 16, 32; default the plan's)
//   SPLITS  BENCH_HEAD_GROUPS (the subgroup-matrix kernel's head groups, each timed: 16 = one row tile, 32 = two; default the plan's)  BENCH_LABELS (1: each kernel's share printed)  WORKGROUP_SLOTS (the device's measured full workgroup slots; the split policy's input)  BENCH_RUNS (7)  BENCH_RUN_MS (20)  BENCH_NAME (decode-attention)  BENCH_CARD,
//   BENCH_DRIVER, BENCH_COMMIT (recorded in the result file)  plus WEBGPU_ADAPTER / DAWN_FEATURES.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Gpu, type BufferBinding, type KernelProgram } from '@latentwire/gpu';
import { gpuOptionsFromEnv } from '@latentwire/gpu';
import { kvQuantize } from '@latentwire/gpu/kernels';
import { latentKvLayout, latentPagePool, pagesFor, type KvDtype, type KvElementType, type LatentKvLayout } from '@latentwire/protocol';
import * as kernels from '@latentwire/decode-node/kernels/grouped-decode-attention';
import type { GroupedDecodeEngine, MatrixCapabilities } from '@latentwire/decode-node/kernels/grouped-decode-attention';
import { decodeE4M3, decodeE5M2, f32FromBits } from '@latentwire/model';
import { printTable, writeJson, isSoftwareAdapter, runMeta, spread, type Row } from './lib/report.js';
import { normalFill, normalValue } from './lib/bench-kernels.js';
import { measureReadBandwidth } from './lib/read-bandwidth.js';
import { timeRuns } from './lib/time-runs.js';


type Engine = GroupedDecodeEngine;
type Caps = MatrixCapabilities;

const MODELS = { v2: { heads: 128 }, 'v2-lite': { heads: 16 } } as const;
type ModelName = keyof typeof MODELS;
const R = 512;
const ROPE = 64;
const W = R + ROPE;
const SCALE = 1 / Math.sqrt(192);

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

interface SglangRow { H: number; B: number; L: number; dtype: string; ms_graph: number; ms: number; rel_err: number }

/** SGLang's H200 figures, copied into the repo (bench/references/sglang-decode-h200.json; source in its `what`). */
function sglangRows(): SglangRow[] {
  const file = new URL('../references/sglang-decode-h200.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { rows: SglangRow[] }).rows;
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

interface Case { readonly model: ModelName; readonly batch: number; readonly context: number; readonly dtype: KvDtype }

/** Fills pool buffer k with quantized N(0,1) rows (value index (page·pageSize + slot)·W + i, seed 1000 + k). */
async function fillPool(gpu: Gpu, l: LatentKvLayout, pool: GPUBuffer, pages: number, k: number): Promise<void> {
  const tokens = pages * l.pageSize;
  const chunk = Math.min(tokens, 32768);
  const src = gpu.buffer('rows', chunk * W * 4);
  const ids = gpu.upload('pageIds', new Uint32Array(pages).map((_, i) => i));
  try {
    for (let t0 = 0; t0 < tokens; t0 += chunk) {
      const n = Math.min(chunk, tokens - t0);
      await gpu.run([
        normalFill({ buffer: src, count: n * W, first: t0 * W, seed: 1000 + k }),
        kvQuantize({ layout: l, src, rows: n, pageIds: ids, tokenOffset: t0, cache: pool }),
      ]);
    }
    await gpu.sync();
  } finally {
    gpu.destroy(src, ids);
  }
}

/** Sequence 0's rows as fillPool generated them (unquantized), float64. */
function originalRows(c: Case, table: Uint32Array, pageSize: number, pagesPerBuffer: number): Float64Array {
  const rows = new Float64Array(c.context * W);
  for (let t = 0; t < c.context; t++) {
    const p = table[Math.floor(t / pageSize)]!;
    const k = Math.floor(p / pagesPerBuffer);
    const first = ((p - k * pagesPerBuffer) * pageSize + (t % pageSize)) * W;
    for (let i = 0; i < W; i++) rows[t * W + i] = normalValue(first + i, 1000 + k);
  }
  return rows;
}

function decodeValue(type: KvElementType, words: Uint32Array, w0: number, i: number): number {
  switch (type) {
    case 'f32': return f32FromBits(words[w0 + i]!);
    case 'bf16': return f32FromBits(((words[w0 + (i >> 1)]! >>> (16 * (i & 1))) & 0xffff) << 16);
    case 'fp8_e5m2': return decodeE5M2((words[w0 + (i >> 2)]! >>> (8 * (i & 3))) & 0xff);
    case 'fp8_e4m3': return decodeE4M3((words[w0 + (i >> 2)]! >>> (8 * (i & 3))) & 0xff);
  }
}

/** Sequence 0's rows as the cache holds them (read back from the pool and decoded), float64. */
async function storedRows(gpu: Gpu, l: LatentKvLayout, pools: GPUBuffer[], c: Case, table: Uint32Array, pagesPerBuffer: number): Promise<Float64Array> {
  const rows = new Float64Array(c.context * W);
  for (let pi = 0; pi * l.pageSize < c.context; pi++) {
    const p = table[pi]!;
    const k = Math.floor(p / pagesPerBuffer);
    const words = new Uint32Array(await gpu.read(pools[k]!, (p - k * pagesPerBuffer) * l.pageBytes, l.pageBytes));
    for (let slot = 0; slot < l.pageSize && pi * l.pageSize + slot < c.context; slot++) {
      const t = pi * l.pageSize + slot;
      const row = (slot * l.rowBytes) / 4;
      const scale = l.scales.kind === 'none' ? 1 : f32FromBits(words[l.scalesOffset / 4 + slot]!);
      for (let i = 0; i < R; i++) rows[t * W + i] = decodeValue(l.latentType, words, row, i) * scale;
      for (let i = 0; i < ROPE; i++) rows[t * W + R + i] = decodeValue(l.ropeType, words, row + l.latentBytes / 4, i);
    }
  }
  return rows;
}

/** ‖o − ref‖ / ‖ref‖ over heads 0 and H-1 of sequence 0, the reference in float64 on `rows`. */
function relError(o: Float32Array, c: Case, heads: number, rows: Float64Array): number {
  let num = 0;
  let den = 0;
  for (const h of [0, heads - 1]) {
    const q = Array.from({ length: W }, (_, i) => Math.fround(normalValue(h * W + i, 5)));
    const s = new Float64Array(c.context);
    let m = -Infinity;
    for (let t = 0; t < c.context; t++) {
      let d = 0;
      for (let i = 0; i < W; i++) d += q[i]! * rows[t * W + i]!;
      s[t] = d * SCALE;
      m = Math.max(m, s[t]!);
    }
    let sum = 0;
    for (let t = 0; t < c.context; t++) sum += s[t] = Math.exp(s[t]! - m);
    for (let i = 0; i < R; i++) {
      let ref = 0;
      for (let t = 0; t < c.context; t++) ref += s[t]! * rows[t * W + i]!;
      ref /= sum;
      num += (o[h * R + i]! - ref) ** 2;
      den += ref ** 2;
    }
  }
  return Math.sqrt(num / den);
}

/**
 * Parts of the subgroup-matrix kernel's generated WGSL that BENCH_ABLATE can take out, each an edit of the source
 * (the kernel then computes garbage: timed only). The time a part saves, against the whole kernel in the same run,
 * is what that part costs where it does not overlap with the rest:
 *   decode  each raw word stored as one f16 (its low half), no conversion, scale or further stores
 *   store   no tile stores at all (the words still loaded: a store kept behind a test no word passes)
 *   fetch   no cache loads after the first tile (each tile decodes and stores the first tile's words again)
 *   scores  no q·Cᵀ products (the scores stay 0; the softmax still runs)
 *   pv      no P·C products
 */
export const ABLATIONS: Record<string, (wgsl: string) => string> = {
  decode: (w) => edit(w, /fn put_latent\(o: u32, w: u32, s: f16\) \{[\s\S]*?\n\}\n/, 'fn put_latent(o: u32, w: u32, s: f16) {\n  hs[o] = bitcast<vec2<f16>>(w).x;\n}\n',
    /fn put_rope\(o: u32, w: u32\) \{[\s\S]*?\n\}/, 'fn put_rope(o: u32, w: u32) {\n  hs[o] = bitcast<vec2<f16>>(w).x;\n}'),
  // (the test reads w and s, both loaded: a test on a constant s, as unscaled dtypes pass, let the compiler drop the loads)
  store: (w) => edit(w, /fn put_latent\(o: u32, w: u32, s: f16\) \{[\s\S]*?\n\}\n/, 'fn put_latent(o: u32, w: u32, s: f16) {\n  if (w == 0x7fc00001u) { hs[o] = s; }\n}\n',
    /fn put_rope\(o: u32, w: u32\) \{[\s\S]*?\n\}/, 'fn put_rope(o: u32, w: u32) {\n  if (w == 0x7fc00001u) { hs[o] = f16(1.0); }\n}'),
  fetch: (w) => edit(w, /if \(t0 \+ BT < t_end\) \{[\s\S]*?\n    \}/, ''),
  scores: (w) => edit(w, /s = subgroupMatrixMultiplyAccumulate\(q_\d+, [^;]*\);/g, ''),
  pv: (w) => edit(w, /acc_\d+ = subgroupMatrixMultiplyAccumulate\([^;]*\);/g, ''),
};

/** `wgsl` with each pattern replaced; a pattern that no longer matches the kernel is an error, not a silent no-op. */
function edit(wgsl: string, ...pairs: (RegExp | string)[]): string {
  let out = wgsl;
  for (let i = 0; i < pairs.length; i += 2) {
    const re = pairs[i] as RegExp;
    if (!re.test(out)) throw new Error(`BENCH_ABLATE: ${re} no longer matches the kernel's WGSL`);
    re.lastIndex = 0;
    out = out.replace(re, pairs[i + 1] as string);
  }
  return out;
}

/** The programs with the attention kernel's shader (the first) edited by ablation `part`. */
function ablated(programs: readonly KernelProgram[], part: string): KernelProgram[] {
  const cut = ABLATIONS[part];
  if (!cut) throw new RangeError(`BENCH_ABLATE: unknown part ${part} (known: ${Object.keys(ABLATIONS).join(', ')})`);
  const [first, ...rest] = programs;
  if (!first) throw new Error('ablated: no programs');
  return [{ ...first, shader: { ...first.shader, source: cut(first.shader.source) } }, ...rest];
}

export async function benchDecodeAttention(gpu: Gpu, cases: readonly Case[], engines: readonly Engine[], caps: Caps): Promise<Row[]> {
  const k = kernels;
  const pageSize = envNumber('PAGE_SIZE', 64);
  const runs = Math.max(5, envNumber('BENCH_RUNS', 7));
  const runMs = envNumber('BENCH_RUN_MS', 20);
  // enough workgroups to fill the device: its full workgroup slots, measured when the Gpu was created
  const workgroupSlots = envNumber('WORKGROUP_SLOTS', gpu.workgroupSlots.slots);
  const sglang = sglangRows();
  const maxBinding = gpu.limits.maxStorageBufferBindingSize;
  const rows: Row[] = [];
  const failed = new Set<string>(); // engine/head group/tile
  for (const c of cases) {
    const heads = MODELS[c.model].heads;
    const l = latentKvLayout({ kvLoraRank: R, ropeDim: ROPE, pageSize, dtype: c.dtype });
    const pagesPerSeq = pagesFor(l, c.context);
    const pages = c.batch * pagesPerSeq;
    const pool = latentPagePool(l, pages, maxBinding);
    const poolBindings = pool.bufferPages.length, { pagesPerBuffer } = pool;
    if (poolBindings > k.MAX_POOL_BINDINGS) {
      console.error(`skip ${JSON.stringify(c)}: ${poolBindings} pool buffers needed`);
      continue;
    }
    const table = shuffledIds(pages, c.batch * 7 + c.context);
    const pools: GPUBuffer[] = [];
    const bufs: GPUBuffer[] = [];
    try {
      for (let p = 0; p < poolBindings; p++) {
        const n = pool.bufferPages[p]!;
        const buf = gpu.buffer(`pool${p}`, n * l.pageBytes);
        pools.push(buf);
        await fillPool(gpu, l, buf, n, p);
      }
      const q = gpu.buffer('q', c.batch * heads * W * 4);
      bufs.push(q);
      await gpu.run([normalFill({ buffer: q, count: c.batch * heads * W, first: 0, seed: 5 })]);
      const seqLens = gpu.upload('lens', new Uint32Array(c.batch).fill(c.context));
      const pageTableOffsets = gpu.upload('offsets', new Uint32Array(c.batch).map((_, b) => b * pagesPerSeq));
      const pageTable = gpu.upload('table', table);
      const out = gpu.buffer('out', c.batch * heads * R * 4);
      bufs.push(seqLens, pageTableOffsets, pageTable, out);
      const original = originalRows(c, table, pageSize, pagesPerBuffer);
      const stored = await storedRows(gpu, l, pools, c, table, pagesPerBuffer);
      const ref = sglang.find((s) => s.H === heads && s.B === c.batch && s.L === c.context && s.dtype === c.dtype);
      // the subgroup-matrix kernel at each of BENCH_HEAD_GROUPS side by side on the same caches (default: the plan's)
      const headGroups = envList('BENCH_HEAD_GROUPS', []).map(Number);
      // and with each of BENCH_TILE_TOKENS (tokens a staged cache tile)
      const orAll = <T>(xs: T[]): (T | undefined)[] => (xs.length > 0 ? xs : [undefined]);
      const tiles = orAll(envList('BENCH_TILE_TOKENS', []).map(Number));
      const mmaForms = orAll(headGroups).flatMap((headGroup) => tiles.map((tileTokens) => ({ headGroup, tileTokens })));
      const timed = engines.flatMap((engine) => (engine === 'subgroup-matrix' ? mmaForms : [{ headGroup: undefined, tileTokens: undefined }]).map((f) => ({ engine, ...f })));
      for (const { engine, headGroup, tileTokens } of timed) {
        const key = `${engine}/${headGroup ?? ''}/${tileTokens ?? ''}`;
        if (failed.has(key)) continue;
        const planned = k.groupedDecodePlan({ kvLoraRank: R, ropeDim: ROPE, dtype: c.dtype, pageSize, heads, limits: gpu.limits, poolBindings, matrix: caps, engine, headGroup });
        const variant = { ...planned, poolBindings, ...(tileTokens === undefined ? {} : { tileTokens }) };
        const numSplits = envNumber('SPLITS', undefined) ?? k.decodeSplitsFor(variant, { batch: c.batch, heads, maxContext: c.context, workgroupSlots });
        const scratch = k.groupedDecodeScratchBytes({ batch: c.batch, heads, kvLoraRank: R, numSplits });
        const lse = gpu.buffer('lse', scratch.lseBytes);
        const partial = gpu.buffer('partial', Math.max(16, scratch.partialBytes));
        try {
          const programs = k.groupedDecodeAttention({
            variant, q, seqLens, pageTableOffsets, pageTable, pools, pagesPerBuffer, out, lse, partial,
            batch: c.batch, heads, numSplits, scale: SCALE,
          });
          await gpu.run(programs); // compile + warm-up
          await gpu.sync();
          const o = await gpu.readF32(out);
          let finite = true;
          for (let i = 0; i < o.length && finite; i++) finite = Number.isFinite(o[i]!);
          const err = relError(o.subarray(0, heads * R), c, heads, stored);
          const errOrig = relError(o.subarray(0, heads * R), c, heads, original);
          // per kernel (each dispatch in its own timestamped pass, this bench's timing before 12-06: a pass's cost
          // added to both dispatches), then as SGLang's CUDA-graph replays are timed (calls back to back in one
          // pass). In that order: on the H100 (12-06) the one-pass timing run first after a 16K row's reference was
          // built on the CPU came out up to 5x slow with a wide spread (the card's clock still low, by all signs), the second stable
          const tk = await timeRuns(gpu, programs, runs, runMs);
          const tm = await timeRuns(gpu, programs, runs, runMs, true);
          const tokens = c.batch * c.context;
          const flops = tokens * heads * (2 * W + 2 * R);
          // one table row: a timing of the kernel whole (part 'all', with its errors) or with a part taken out
          const row = (part: string, t: typeof tm, perKernelMs: number, errs: { rel: number; vsUnquantized: number; finite: string }): Row => ({
            model: c.model, heads, batch: c.batch, context: c.context, dtype: c.dtype, engine, part,
            G: variant.headGroup, tile: variant.tileTokens, splits: numSplits, pools: poolBindings,
            ms: t.med, 'ms min': t.min, 'ms max': t.max, iters: t.iters, 'ms a pass a kernel': perKernelMs,
            'GB/s': (tokens * l.tokenBytes) / (t.med * 1e6), 'TFLOP/s': flops / (t.med * 1e9),
            'sglang ms': ref?.ms_graph ?? NaN, 'sglang/ours': ref ? ref.ms_graph / t.med : NaN,
            'rel err': errs.rel, 'sglang rel err': ref?.rel_err ?? NaN, 'rel err vs unquantized': errs.vsUnquantized, finite: errs.finite,
          });
          rows.push(row('all', tm, tk.med, { rel: err, vsUnquantized: errOrig, finite: String(finite) }));
          console.error(`done ${c.model} b${c.batch} ctx${c.context} ${c.dtype} ${engine} G${variant.headGroup} t${variant.tileTokens}: ${tm.med.toFixed(4)} ms (${tm.min.toFixed(4)}–${tm.max.toFixed(4)}), err ${err.toExponential(2)}`);
          // the same call with one part of the tensor-core kernel taken out (outputs wrong; timing only): what bounds it
          if (engine === 'subgroup-matrix') {
            for (const part of envList('BENCH_ABLATE', [])) {
              const ta = await timeRuns(gpu, ablated(programs, part), runs, runMs, true);
              rows.push(row(`without ${part}`, ta, NaN, { rel: NaN, vsUnquantized: NaN, finite: 'n/a' }));
              console.error(`  without ${part}: ${ta.med.toFixed(4)} ms (${ta.min.toFixed(4)}–${ta.max.toFixed(4)})`);
            }
          }
        } catch (e) {
          // one engine's failure (e.g. a shader the driver refuses) is reported and the other engine goes on
          failed.add(key);
          console.error(`FAILED ${key} at ${JSON.stringify(c)}: ${(e as Error).stack ?? e}`);
        } finally {
          gpu.destroy(lse, partial);
        }
      }
    } finally {
      gpu.destroy(...pools, ...bufs);
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const opts = gpuOptionsFromEnv();
  const gpu = await Gpu.create({ ...opts, profile: true });
  if (!gpu.profiler) throw new Error('decode-attention bench: the adapter has no timestamp-query');
  const k = kernels;
  const caps: Caps = gpu.matrixCapabilities;
  const why = k.mmaUnsupportedReason(caps);
  console.error(`adapter: subgroups ${caps.subgroupMinSize}..${caps.subgroupMaxSize}, matrix configs ${JSON.stringify(caps.subgroupMatrixConfigs)}`);
  const software = isSoftwareAdapter(gpu.adapterInfo);
  const quick = process.env.BENCH_QUICK ? process.env.BENCH_QUICK === '1' : software;
  const models = envList('BENCH_MODELS', quick ? ['v2-lite'] : ['v2', 'v2-lite']) as ModelName[];
  for (const m of models) if (!(m in MODELS)) throw new RangeError(`BENCH_MODELS: unknown model ${m}`);
  const batches = envList('BENCH_BATCHES', quick ? ['1'] : ['1', '32', '128']).map(Number);
  const contexts = envList('BENCH_CONTEXTS', quick ? ['1024'] : ['1024', '4096', '16384']).map(Number);
  const dtypes = envList('BENCH_DTYPES', quick ? ['bf16', 'fp8_e4m3'] : ['bf16', 'fp8_e4m3', 'fp8_e5m2']) as KvDtype[];
  const engines = envList('BENCH_ENGINES', why === null ? ['f32', 'subgroup-matrix'] : ['f32']) as Engine[];
  if (why !== null && engines.includes('subgroup-matrix')) throw new Error(`BENCH_ENGINES: subgroup-matrix unavailable: ${why}`);
  const runs = Math.max(5, envNumber('BENCH_RUNS', 7));
  const hbm = await measureReadBandwidth(gpu, runs, 20);
  console.error(`read bandwidth: ${hbm.gbps.toFixed(0)} GB/s (${hbm.min.toFixed(0)}–${hbm.max.toFixed(0)}) over ${hbm.bytes} bytes`);
  const cases: Case[] = [];
  for (const dtype of dtypes) for (const model of models) for (const batch of batches) for (const context of contexts) cases.push({ model, batch, context, dtype });
  const rows = await benchDecodeAttention(gpu, cases, engines, caps);
  for (const r of rows) r['HBM %'] = (100 * (r['GB/s'] as number)) / hbm.gbps;
  const meta = {
    ...runMeta(gpu), software,
    readGbps: hbm, sglang: 'bench/references/sglang-decode-h200.json (ms_graph: CUDA-graph replays; rel_err vs float32)',
    timing: `GPU timestamps; ms = median of ${runs} runs (each the mean of iters back-to-back calls), with min and max`,
    relErr: '‖o − ref‖ / ‖ref‖ over heads 0 and H-1 of sequence 0, ref in float64 on the rows as the cache stores them ' +
      '(the kernel\'s own error); "rel err vs unquantized": ref on the N(0,1) values before quantization (adds the cache\'s rounding)',
  };
  printTable(`grouped MLA decode attention (r=${R}, rope=${ROPE}, page ${envNumber('PAGE_SIZE', 64)}) on ${meta.card}, driver ${meta.driver}, commit ${meta.commit}, ${meta.date}; read ${hbm.gbps.toFixed(0)} GB/s`, rows);
  const file = writeJson(process.env.BENCH_NAME ?? 'decode-attention', { ...meta, rows });
  console.log(`\nwrote ${file}`);
  gpu.dispose();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}

