// How many 256-invocation workgroups a multiprocessor runs at once, by the workgroup memory they declare and the
// registers they hold: the question behind the decode attention's one workgroup a multiprocessor
// (decode-attention-residency.*.txt: its time steps up past every multiple of the SM count, with 48 KB and with
// 30 KB of workgroup memory). Each workgroup fills `smem` bytes of workgroup memory, then runs a dependent chain
// through `live` f32 values that all stay live across its loop (so the compiler must hold them in registers),
// latency-bound: one workgroup of 8 subgroups issues on at most half a multiprocessor's cycles, so two that fit run
// in the time of one. The dispatch is timed (GPU timestamps, median of BENCH_RUNS) at S, 2S, 3S and 4S workgroups,
// S the device's full workgroup slots (gpu.workgroupSlots: one a multiprocessor); "at once" is the largest k with
// t(kS) < 1.3·t(S) (capped by issue at about 2 for this chain, so a 3 or 4 says only "at least 2"). The ceiling is
// the hardware's: 2048 invocations (8 such workgroups) and 64K registers (128 a thread for 2) a multiprocessor on
// NVIDIA Hopper.
//   node bench/dist/occupancy.js
// Env: BENCH_SMEM_KB (0,16,24,28,32,40,48)  BENCH_LIVE (16,64,96,112,120,128,144,192)  BENCH_RUNS (5)  BENCH_RUN_MS (10)
//   BENCH_NAME (occupancy)  BENCH_CARD, BENCH_DRIVER, BENCH_COMMIT  plus the GPU settings.
import { Gpu, gpuOptions, bindings, type KernelProgram } from '@latentwire/gpu';
import { benchEnv } from './lib/env.js';
import { isSoftwareAdapter, printTable, runMeta, writeJson, type Row } from './lib/report.js';
import { timeRuns } from './lib/time-runs.js';

const WG = 256;
const BINDINGS = bindings([['sink', 'array<f32>', 'read_write']], { iters: 'u32' });

/** The probe: `smemBytes` of workgroup memory written and read once, then `iters` trips of a chain through `live` values. */
function probe(smemBytes: number, live: number): ReturnType<typeof BINDINGS.shader> {
  const pad = Math.max(1, Math.floor(smemBytes / 16));
  const r = Array.from({ length: live }, (_, i) => i);
  return BINDINGS.shader(`occupancy_grid_m${smemBytes}_l${live}`, `${BINDINGS.wgsl}
const PAD: u32 = ${pad}u;
var<workgroup> pad: array<vec4<f32>, PAD>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  for (var i = lid; i < PAD; i += ${WG}u) { pad[i] = vec4<f32>(f32(i)); }
  workgroupBarrier();
  let x = pad[(lid * 7u) % PAD].x + f32(wg.x);
  ${r.map((i) => `var r_${i} = x + ${i}.0;`).join('\n  ')}
  for (var i = 0u; i < u.iters; i++) {
    ${r.map((i) => `r_${i} = fma(r_${(i + live - 1) % live}, 0.999999, r_${i});`).join('\n    ')}
  }
  // never true, but the compiler cannot know: every value and the memory stay
  if (${r.map((i) => `r_${i}`).join(' + ')} == -1.0) { sink[0] = 1.0; }
}`);
}

async function main(): Promise<void> {
  const env = benchEnv(process.env);
  const gpu = await Gpu.create({ ...gpuOptions(env), profile: true });
  if (!gpu.profiler) throw new Error('occupancy bench: the adapter has no timestamp queries');
  // whole numbers ≥ min, named in the error otherwise
  const list = (name: string, dflt: string, min: number) => (process.env[name] || dflt).split(',').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < min) throw new RangeError(`${name}: ${x} is not a whole number ≥ ${min}`);
    return n;
  });
  const smemKb = list('BENCH_SMEM_KB', '0,16,24,28,32,40,48', 0);
  const lives = list('BENCH_LIVE', '16,64,96,112,120,128,144,192', 1);
  const runs = Math.max(5, list('BENCH_RUNS', '5', 1)[0]!);
  const runMs = list('BENCH_RUN_MS', '10', 1)[0]!;
  const S = gpu.workgroupSlots.slots;
  const sink = gpu.buffer('sink', 16);
  const software = isSoftwareAdapter(gpu.adapterInfo);
  // the grid: every memory size at the fewest live values, every live count without memory
  const configs = [...smemKb.map((kb) => ({ kb, live: lives[0]! })), ...lives.slice(1).map((live) => ({ kb: smemKb[0]!, live }))];
  const rows: Row[] = [];
  for (const { kb, live } of configs) {
    const bytes = Math.min(kb * 1024, gpu.limits.maxComputeWorkgroupStorageSize);
    const shader = probe(bytes, live);
    // about 150k dependent FMAs a thread (~0.1 ms on a GPU); far fewer on a software adapter
    const iters = Math.max(1, Math.round((software ? 2000 : 150_000) / live));
    const at = async (k: number) => {
      const program: KernelProgram = { shader, buffers: BINDINGS.buffers({ sink }), uniformValues: { iters }, workgroups: [k * S] };
      return (await timeRuns(gpu, [program], runs, runMs, true)).med;
    };
    const t = [await at(1), await at(2), await at(3), await at(4)];
    let atOnce = 1;
    while (atOnce < 4 && t[atOnce]! < 1.3 * t[0]!) atOnce++;
    rows.push({
      'workgroup KB': bytes / 1024, 'live f32': live, threads: WG, S,
      'ms at S': t[0]!, 'at 2S': t[1]!, 'at 3S': t[2]!, 'at 4S': t[3]!, 'at once (per S)': atOnce,
    });
    console.error(`done ${bytes} B, ${live} live: ${t.map((x) => x.toFixed(4)).join(' / ')} ms -> ${atOnce}`);
  }
  gpu.destroy(sink);
  const meta = runMeta(gpu);
  printTable(`occupancy of 256-invocation workgroups by workgroup memory and live values on ${meta.card}, driver ${meta.driver}, commit ${meta.commit}, ${meta.date}; S = ${S} full workgroup slots`, rows);
  writeJson(process.env.BENCH_NAME || 'occupancy', { ...meta, software, S, rows });
  gpu.dispose();
}

await main();
