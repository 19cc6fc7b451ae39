// How fast one dispatch can read, by access pattern and size: the ceiling the decode step's memory-bound kernels
// (GEMVs, routed experts) should be held to. The read bench (lib/read-bandwidth.ts) streams 1 GiB grid-stride,
// long-lived threads with two 16-byte loads in flight; a decode kernel reads 1–100 MB in short-lived workgroups,
// each over a few 4 KB weight rows. Per size (MB) and pattern, GPU timestamps of the one dispatch (median of
// BENCH_RUNS runs, min–max):
// Consecutive dispatches read different stretches of one 1 GiB buffer, so none is served from the L2.
//   grid-stride   the read bench's kernel (lib/bench-kernels' streamRead): 4096 workgroups of 256 threads walk
//                 the extent, two loads in flight a thread
//   one-shot L    a thread issues L 16-byte loads (the workgroup's L·4 KB contiguous), combines, exits
//   rows          a GEMV's pattern: a subgroup of 32 walks one 4 KB row (8 loads a lane, 4 in flight), 8 rows a
//                 workgroup, then the workgroup's tree reduction through workgroup memory (as the GEMVs end)
// BENCH_READ_PATTERNS=slabs times the routed experts' slab reads instead (slabs(), both layouts), =tiles 512-byte
// tiles into subgroup matrices against 16-byte loads (tiles()).
// Ceiling: the card's HBM rate as the 1 GiB grid-stride read measures it in the same run.
//   node bench/dist/read-patterns.js
// Env: BENCH_RUNS (7)  BENCH_SIZES_MB (16,64,256,1024)  BENCH_READ_PATTERNS (rows)  BENCH_CARD, BENCH_DRIVER, BENCH_COMMIT  plus the GPU settings.
import { bindings, Gpu, gpuOptions, SUBGROUP_MATRIX_WGSL, type KernelProgram } from '@latentwire/gpu';
import { benchEnv } from './lib/env.js';
import { isSoftwareAdapter, printTable, runMeta, writeJson, type Row } from './lib/report.js';
import { timeRuns } from './lib/time-runs.js';
import { streamRead } from './lib/bench-kernels.js';

const B = bindings([['src', 'array<vec4<u32>>'], ['sink', 'array<u32>', 'read_write']], { n: 'u32', first: 'u32' });
const WG = 256;
/** vec4s a 4 KB weight row holds (2048 bf16, V2-Lite's hidden size). */
const ROW_VECS = 256;

// never true for real data, but the compiler cannot know: the loads stay
const KEEP = 'if (x.x == 0x9e3779b9u && x.y == 0x7feb352du) { sink[0] = x.z; }';

interface Pattern {
  readonly name: string;
  /** The program reading vecs vec4s from element `first` on. */
  program(src: GPUBuffer, sink: GPUBuffer, vecs: number, first: number): KernelProgram;
}

const gridStride: Pattern = {
  name: 'grid-stride',
  program: (src, sink, vecs, first) => streamRead(src, sink, vecs * 16, first * 16),
};

function oneShot(L: number): Pattern {
  return {
    name: `one-shot ${L}`,
    program: (src, sink, vecs, first) => ({
      shader: B.shader(`read_one_shot_${L}`, `${B.wgsl}@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = (wg.y * 65535u + wg.x) * ${WG * L}u + lid;
  var v: array<vec4<u32>, ${L}>;
  for (var j = 0u; j < ${L}u; j++) {
    let i = base + j * ${WG}u;
    v[j] = select(vec4<u32>(0u), src[u.first + min(i, u.n - 1u)], i < u.n);
  }
  var x = vec4<u32>(0u);
  for (var j = 0u; j < ${L}u; j++) { x ^= v[j]; }
  ${KEEP}
}`),
      buffers: B.buffers({ src, sink }),
      uniformValues: { n: vecs, first },
      workgroups: grid(Math.ceil(vecs / (WG * L))),
    }),
  };
}

const rows: Pattern = {
  name: 'rows (GEMV)',
  program: (src, sink, vecs, first) => ({
    shader: B.shader('read_rows', `${B.wgsl}var<workgroup> red: array<u32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = (wg.y * 65535u + wg.x) * ${WG / 32}u + lid / 32u;
  let lane = lid % 32u;
  var x = vec4<u32>(0u);
  if ((row + 1u) * ${ROW_VECS}u <= u.n) {
    let base = u.first + row * ${ROW_VECS}u + lane;
    for (var k = 0u; k < ${ROW_VECS / 32}u; k += 4u) {
      let a = src[base + k * 32u];
      let b = src[base + (k + 1u) * 32u];
      let c = src[base + (k + 2u) * 32u];
      let d = src[base + (k + 3u) * 32u];
      x ^= a ^ b ^ c ^ d;
    }
  }
  red[lid] = x.x ^ x.y ^ x.z ^ x.w;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] ^= red[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u && red[0] == 0x9e3779b9u) { sink[0] = red[0]; }
}`),
    buffers: B.buffers({ src, sink }),
    uniformValues: { n: vecs, first },
    workgroups: grid(Math.ceil(vecs / (ROW_VECS * (WG / 32)))),
  }),
};

const B32 = bindings([['src', 'array<u32>'], ['sink', 'array<u32>', 'read_write']], { n: 'u32', first: 'u32' });
/** Weight rows a slab workgroup owns (a 16 × 64 expert tile's gate and up rows) and u32 words a 4 KB row holds. */
const SLAB_ROWS = 128;
const ROW_WORDS = 1024;

/**
 * The routed experts' subgroup-matrix pattern (expert-mma-gate-up.wgsl): 128 threads own 128 weight rows of 4 KB
 * and walk K a slab of BK values at a time, each thread holding its share of a slab in named registers (W u32s a
 * load), STAGES slabs in flight, each slab stored to workgroup memory between two barriers before the next loads
 * are issued. `layout` says where a slab lies: 'rows' — the weights as the checkpoint stores them, so a slab is
 * 128 pieces of BK·2 bytes at a 4 KB stride; 'slabs' — each slab's 128 × BK values contiguous (a pre-tiled
 * layout), the same loads otherwise. `padKb` of workgroup memory caps the workgroups resident a multiprocessor.
 */
function slabs(BK: number, STAGES: number, W: 1 | 4, layout: 'rows' | 'slabs', padKb: number): Pattern {
  const WG = 128;
  const loads = (SLAB_ROWS * BK) / 2 / W / WG; // a thread's loads a slab
  const perRow = BK / 2 / W; // loads a row's piece of a slab
  const T = W === 1 ? 'u32' : 'vec4<u32>';
  const Bn = W === 1 ? B32 : B;
  const padWords = Math.max(WG * loads * W, (padKb * 1024) / 4);
  const st = [...Array(STAGES).keys()];
  const js = [...Array(loads).keys()];
  // element (in units of T) of load j of the slab at k0 (values), for this workgroup
  const addr = (k0: string, j: number) => layout === 'rows'
    ? `wbase + ((lid + ${j * WG}u) / ${perRow}u) * ${ROW_WORDS / W}u + ${k0} / ${2 * W}u + (lid + ${j * WG}u) % ${perRow}u`
    : `wbase + (${k0} / ${BK}u) * ${(SLAB_ROWS * BK) / 2 / W}u + lid + ${j * WG}u`;
  const fetch = (k0: string, t: number) => js.map((j) => `r${t}_${j} = src[u.first + ${addr(k0, j)}];`).join('\n      ');
  const store = (t: number) => js.map((j) => `stash[lid + ${j * WG}u] = ${W === 1 ? `r${t}_${j}` : `r${t}_${j}.x ^ r${t}_${j}.w`};`).join('\n      ');
  const name = `slab_${layout}_k${BK}_pf${STAGES}_w${W}_pad${padKb}`;
  return {
    name: `slabs ${layout} BK ${BK} pf ${STAGES} ${W * 4} B loads pad ${padKb} KB`,
    program: (src, sink, vecs, first) => ({
      shader: Bn.shader(`read_${name}`, `${Bn.wgsl}var<workgroup> stash: array<u32, ${padWords}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let wbase = (wg.y * 65535u + wg.x) * ${(SLAB_ROWS * ROW_WORDS) / W}u;
  var x = 0u;
  ${st.flatMap((t) => js.map((j) => `var r${t}_${j} = ${T}();`)).join('\n  ')}
  ${st.map((t) => fetch(`${t * BK}u`, t)).join('\n  ')}
  for (var k0 = 0u; k0 < ${2 * ROW_WORDS}u; k0 += ${STAGES * BK}u) {
    ${st.map((t) => `workgroupBarrier();
    ${store(t)}
    workgroupBarrier();
    x ^= stash[(lid * 33u) % ${padWords}u];
    if (k0 + ${(t + STAGES) * BK}u < ${2 * ROW_WORDS}u) {
      ${fetch(`(k0 + ${(t + STAGES) * BK}u)`, t)}
    }`).join('\n    ')}
  }
  if (x == 0x9e3779b9u) { sink[0] = x; }
}`),
      buffers: Bn.buffers({ src, sink }),
      uniformValues: { n: vecs * (4 / W), first: first * (4 / W) },
      workgroups: grid(Math.floor(vecs / ((SLAB_ROWS * ROW_WORDS) / 4))),
    }),
  };
}

const BH = bindings([['src', 'array<f16>'], ['sink', 'array<f32>', 'read_write']], { n: 'u32', first: 'u32' });
/**
 * 512-byte tiles (a 16 × 16 f16 matrix each, contiguous) streamed by subgroups, U tiles in flight a subgroup
 * (loaded, then consumed), each workgroup of 4 subgroups over 128 rows' worth (512 KB) as the experts' kernels:
 * 'matrix' — each tile loaded straight into a right-hand subgroup matrix (subgroupMatrixLoad from storage) and
 * multiplied into an accumulator; '16-byte' — the same bytes as one 16-byte load a lane, XORed. Whether the
 * matrix loads from memory stream as fast as plain wide loads.
 */
function tiles(U: number, how: 'matrix' | '16-byte'): Pattern {
  const WG = 128;
  const TILES = (SLAB_ROWS * ROW_WORDS * 4) / 512 / 4; // a subgroup's tiles
  const us = [...Array(U).keys()];
  const body = how === 'matrix'
    ? `${SUBGROUP_MATRIX_WGSL}
${BH.wgsl}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let sg = lid / 32u;
  let base = u.first * 8u + ((wg.y * 65535u + wg.x) * 4u + sg) * ${TILES * 256}u;
  let a = LeftT(f16(1.0));
  var acc = ResT();
  for (var t = 0u; t < ${TILES}u; t += ${U}u) {
    ${us.map((j) => `let b${j} = subgroupMatrixLoad<RightT, col_major>(&src, base + (t + ${j}u) * 256u, 16u);`).join('\n    ')}
    ${us.map((j) => `acc = subgroupMatrixMultiplyAccumulate(a, b${j}, acc);`).join('\n    ')}
  }
  subgroupMatrixStore<row_major>(&sink, 0u, acc, 16u);
}`
    : `${B.wgsl}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let sg = lid / 32u;
  let lane = lid % 32u;
  let base = u.first + ((wg.y * 65535u + wg.x) * 4u + sg) * ${TILES * 32}u + lane;
  var x = vec4<u32>(0u);
  for (var t = 0u; t < ${TILES}u; t += ${U}u) {
    ${us.map((j) => `let b${j} = src[base + (t + ${j}u) * 32u];`).join('\n    ')}
    x ^= ${us.map((j) => `b${j}`).join(' ^ ')};
  }
  ${KEEP}
}`;
  const Bn = how === 'matrix' ? BH : B;
  return {
    name: `tiles ${how} loads U ${U}`,
    program: (src, sink, vecs, first) => ({
      shader: Bn.shader(`read_tiles_${how === 'matrix' ? 'matrix' : 'vec4'}_u${U}`, body),
      buffers: Bn.buffers({ src, sink }),
      uniformValues: { n: vecs, first },
      workgroups: grid(Math.floor(vecs / ((SLAB_ROWS * ROW_WORDS) / 4))),
    }),
  };
}

/** A 1-D count of workgroups as a grid within 65535 a dimension (the kernels index wg.y · 65535 + wg.x). */
function grid(n: number): [number, number] {
  return n <= 65535 ? [n, 1] : [65535, Math.ceil(n / 65535)];
}

async function main(): Promise<void> {
  const env = benchEnv(process.env);
  const gpu = await Gpu.create({ ...gpuOptions(env), profile: true });
  if (!gpu.profiler) throw new Error('read-patterns bench: the adapter has no timestamp queries');
  const software = isSoftwareAdapter(gpu.adapterInfo);
  const runs = Math.max(5, env.BENCH_RUNS);
  const maxBytes = Math.floor(Math.min(1 << 30, gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize) / 4096) * 4096;
  const sizesMb = (env.BENCH_SIZES_MB ?? (software ? [4, 16] : [16, 64, 256, 1024]))
    .map((mb) => Math.min(mb, maxBytes / 2 ** 20));
  const src = gpu.buffer('read.src', maxBytes);
  const sink = gpu.buffer('read.sink', 4096);
  // BENCH_READ_PATTERNS=slabs: only the experts' slab patterns (both layouts), at 64 MiB (batch 1's gate/up) and
  // 768 MiB (batch 64's)
  const slabOnly = env.BENCH_READ_PATTERNS === 'slabs';
  const pad = Math.floor(gpu.limits.maxComputeWorkgroupStorageSize / 1024);
  const slabPatterns = (['rows', 'slabs'] as const).flatMap((l) => [
    slabs(64, 1, 1, l, 0), slabs(32, 2, 1, l, 0), slabs(32, 2, 1, l, pad), slabs(32, 2, 4, l, 0), slabs(128, 2, 4, l, 0), slabs(128, 2, 4, l, pad),
  ]);
  // BENCH_READ_PATTERNS=tiles: 512-byte tiles through subgroup-matrix loads against plain 16-byte loads
  if (env.BENCH_READ_PATTERNS === 'tiles' && !gpu.matmulLimits.subgroupMatrix) throw new Error('read-patterns bench: BENCH_READ_PATTERNS=tiles needs an adapter with subgroup matrices');
  const tilePatterns = [4, 8, 16].flatMap((U) => [tiles(U, 'matrix'), tiles(U, '16-byte')]);
  const patterns = slabOnly ? slabPatterns : env.BENCH_READ_PATTERNS === 'tiles' ? tilePatterns : [gridStride, oneShot(1), oneShot(4), oneShot(16), rows];
  console.log(`${gpu.adapterInfo.vendor} ${gpu.adapterInfo.description || gpu.adapterInfo.device}; sizes ${sizesMb.join(', ')} MB (MiB); ${runs} runs`);
  // the ceiling: the whole buffer grid-stride, as the other benches measure it
  const whole = await timeRuns(gpu, [gridStride.program(src, sink, maxBytes / 16, 0)], runs, 100);
  const ceiling = maxBytes / (whole.med * 1e6);
  console.log(`ceiling: ${ceiling.toFixed(0)} GB/s (${(maxBytes / 2 ** 20).toFixed(0)} MiB grid-stride)`);
  const out: Row[] = [];
  for (const mb of sizesMb) {
    const bytes = Math.floor((mb * 2 ** 20) / 4096) * 4096;
    // back-to-back dispatches read different stretches of the buffer (up to 16), so a read smaller than the L2
    // does not find what the dispatch before it left there: a decode step reads each layer's weights once
    const stretches = Math.max(1, Math.min(16, Math.floor(maxBytes / bytes)));
    for (const p of patterns) {
      const list = Array.from({ length: stretches }, (_, j) => p.program(src, sink, bytes / 16, (j * bytes) / 16));
      const t = await timeRuns(gpu, list, runs, 20);
      const [med, min, max] = [t.med, t.min, t.max].map((ms) => ms / stretches) as [number, number, number];
      const gbps = bytes / (med * 1e6);
      const row: Row = {
        MiB: mb, pattern: p.name, 'µs median': med * 1e3, 'µs min–max': `${(min * 1e3).toPrecision(3)}–${(max * 1e3).toPrecision(3)}`,
        'GB/s': gbps, '% of ceiling': (100 * gbps) / ceiling,
      };
      out.push(row);
      console.log(JSON.stringify(row));
    }
  }
  gpu.destroy(src, sink);
  const meta = runMeta(gpu);
  printTable(`one dispatch's read rate by pattern and size on ${meta.card}, commit ${meta.commit}: GPU timestamps, median of ${runs} runs; ` +
    `ceiling ${ceiling.toFixed(0)} GB/s (1 GiB grid-stride, this run)`, out);
  const file = writeJson('read-patterns', { ...meta, ceilingGBps: ceiling, rows: out });
  console.log(`\nwrote ${file}`);
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
