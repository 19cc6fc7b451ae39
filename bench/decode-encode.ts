// The CPU side of one decode step: the time DecodeModel.step spends building, encoding and submitting the
// step's dispatches (`submitMs`, the wait for the GPU excluded), at DeepSeek-V2-Lite layer shapes with
// synthetic bf16 weights and fewer layers where asked. It is CPU time, so a software adapter (lavapipe) measures
// it too, although its GPU side is slow: steps run one after another, so the GPU is idle while the next one is
// encoded. On a software adapter the GPU is threads of this process, which the submit wakes: they run at the
// lowest priority here, or on a machine of few cores they take the CPU from the thread still finishing the
// submit and the step's GPU time lands in submitMs. Per (batch, context): submit ms per step (median,
// min–max, lower quartile), dispatches per step, and µs per
// dispatch, for each way of encoding the step the model offers (the step cache on and off), stepped in turn in
// one run (one model per mode over the same weights), and whether their greedy tokens agree.
//   node bench/dist/decode-encode.js        (node --cpu-prof bench/dist/decode-encode.js to profile it)
// Env: BENCH_LAYERS (all; 3 on software adapters)  BENCH_BATCHES (1,16,64; 1,4 on software)
//      BENCH_CONTEXTS (1024; 256 on software)  BENCH_ITERS (10)  BENCH_MODES (cached,uncached)  plus the decode bench's.
import { readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { Gpu, gpuOptions } from '@latentwire/gpu';
import { normalizeConfig, type MlaConfig } from '@latentwire/model';
import { failStart, latentKvLayout, pagesFor } from '@latentwire/protocol';
import { DecodeModel } from '@latentwire/decode-node';
import { syntheticSteps } from './lib/step-input.js';
import { syntheticWeights } from '@latentwire/gpu/weights';
import { benchEnv } from './lib/env.js';
import { isSoftwareAdapter, loadNote, printTable, runMeta, spread, writeJson, type Row } from './lib/report.js';

type Mode = 'cached' | 'uncached';

/** This process's thread ids (Linux; empty elsewhere). */
function threadIds(): Set<number> {
  try {
    return new Set(readdirSync('/proc/self/task').map(Number));
  } catch {
    return new Set();
  }
}

async function main(): Promise<void> {
  const env = benchEnv(process.env);
  const startThreads = threadIds();
  const configPath = env.BENCH_CONFIG;
  const gpu = await Gpu.create(gpuOptions(env));
  const info = gpu.adapterInfo;
  const software = isSoftwareAdapter(info);
  const base = normalizeConfig(JSON.parse(readFileSync(configPath, 'utf8')), configPath);
  const layers = env.BENCH_LAYERS ?? (software ? 3 : base.numLayers);
  const cfg: MlaConfig = { ...base, numLayers: layers, vocabSize: software ? Math.min(base.vocabSize, 16384) : base.vocabSize };
  const batches = env.BENCH_BATCHES ?? (software ? [1, 4] : [1, 16, 64]);
  const contexts = env.BENCH_CONTEXTS ?? (software ? [256] : [1024]);
  const dtype = env.BENCH_DTYPES[0]!;
  const pageSize = env.PAGE_SIZE;
  const iters = env.BENCH_ITERS ?? 10;
  const modes = (process.env.BENCH_MODES ?? 'cached,uncached').split(',').map((m) => m.trim()).filter(Boolean) as Mode[];
  for (const m of modes) if (m !== 'cached' && m !== 'uncached') throw new RangeError(`BENCH_MODES: '${m}' is not cached or uncached`);
  console.log(`adapter: ${info.vendor} ${info.description || info.device}; ${configPath.split('/').pop()} with ${layers} of ${base.numLayers} layers; ` +
    `${dtype} cache; ${iters} steps per row; ${loadNote()}`);

  const weights = await syntheticWeights(gpu, cfg);
  let reniced = 0;
  if (software) {
    // the adapter's threads (made since start: the device's, the rasterizer's workers) at the lowest priority
    for (const tid of threadIds()) {
      if (startThreads.has(tid)) continue;
      try {
        setPriority(tid, 19);
        reniced++;
      } catch {
        // not permitted or gone: measured as is
      }
    }
  }
  const layout = latentKvLayout({ kvLoraRank: cfg.kvLoraRank, ropeDim: cfg.qkRopeHeadDim, pageSize, dtype });
  const rows: Row[] = [];
  for (const ctx of contexts) {
    const maxB = Math.max(...batches);
    const perSeq = pagesFor(layout, ctx + iters + 2);
    // one model per mode over the same weights, stepped in turn, so a shared machine's load falls on every mode alike
    const models = new Map<Mode, DecodeModel>();
    for (const mode of modes) {
      models.set(mode, await DecodeModel.create(gpu, cfg, weights, {
        maxBatch: maxB, maxContext: perSeq * pageSize, pageSize, kvDtype: dtype, numPages: maxB * perSeq, ropeFreqPrecision: env.ROPE_FREQ_PRECISION,
        ...(mode === 'uncached' ? { stepCache: 0 } : {}),
      }));
    }
    for (const B of batches) {
      const input = syntheticSteps(B, ctx, perSeq, cfg.vocabSize);
      const submit = new Map<Mode, number[]>(modes.map((m) => [m, []]));
      const dispatches = new Map<Mode, number>(modes.map((m) => [m, 0]));
      const tokens = new Map<Mode, number[]>(modes.map((m) => [m, []]));
      dispatchCount(gpu);
      // compiles every pipeline; the cached model records the forward at its second step of a shape
      for (const m of modes) for (let w = 0; w < 2; w++) await models.get(m)!.step(input(0));
      for (let i = 1; i <= iters; i++) {
        for (const m of modes) {
          const d0 = dispatchCount(gpu)!;
          const sub = await models.get(m)!.submitStep(input(i)); // step() as it is
          const out = await sub.tokens;
          dispatches.set(m, dispatches.get(m)! + dispatchCount(gpu)! - d0);
          submit.get(m)!.push(sub.submitMs);
          tokens.get(m)!.push(...out);
        }
      }
      const same = modes.every((m) => tokens.get(m)!.join() === tokens.get(modes[0]!)!.join());
      for (const m of modes) {
        const s = spread(submit.get(m)!);
        const perStep = dispatches.get(m)! / iters;
        const sorted = [...submit.get(m)!].sort((x, y) => x - y);
        rows.push({
          mode: m, batch: B, context: ctx, layers, 'submit ms': s.median, 'submit min–max': `${s.min.toFixed(2)}–${s.max.toFixed(2)}`,
          // the lower quartile: on a loaded machine waits for a CPU only ever add time, so it shows the cost better
          'submit p25 ms': sorted[Math.floor((sorted.length - 1) / 4)]!,
          'dispatches/step': perStep, 'µs per dispatch': (1e3 * s.median) / perStep, 'tokens as other modes': same ? 'same' : 'DIFFERENT',
        });
        console.log(JSON.stringify(rows[rows.length - 1]));
      }
      if (!same) process.exitCode = 1;
    }
    for (const model of models.values()) model.release();
  }
  const meta = runMeta(gpu);
  printTable(`decode step CPU encode + submit on ${meta.card}, commit ${meta.commit}, ${meta.date} (${layers} layers of ${cfg.numLayers === base.numLayers ? 'all' : base.numLayers}, ` +
    `synthetic weights, ${dtype} cache; median of ${iters} steps with min–max; ${loadNote()}; ${reniced} adapter threads at nice 19)`, rows);
  const file = writeJson('decode-encode', { ...meta, adapter: info, config: configPath, layers, pageSize, dtype, load: loadNote(), renicedThreads: reniced, rows });
  console.log(`\nwrote ${file}`);
  gpu.dispose();
}

/** Dispatches the runtime has encoded so far (a runtime without the counter: the programs given to run()). */
let counted = 0;
function dispatchCount(gpu: Gpu): number | null {
  const g = gpu as unknown as { dispatches?: number; run: (p: readonly { workgroups: readonly number[] }[]) => Promise<void>; counting?: boolean };
  if (typeof g.dispatches === 'number') return g.dispatches;
  if (!g.counting) {
    const run = g.run.bind(gpu);
    g.run = (p) => ((counted += p.filter((x) => x.workgroups.every((n) => n !== 0)).length), run(p));
    g.counting = true;
  }
  return counted;
}

main().catch((err: unknown) => failStart('bench:decode-encode', err));
