// Compile ahead of traffic: after PrefillModel.compileAll, no prefill of any prompt length (either side of every
// bucket boundary: one token, odd sizes, the GEMV range and past it, the MoE experts' switch of form), in any
// cache dtype, with any of the options a prefill node passes, compiles a pipeline; and warmUp dispatches every
// pipeline compiled, for drivers that finish a compile at the first dispatch.
import test from 'ava';
import { FIXTURE_DIR, readTestFixture } from '@latentwire/testing';
import { normalizeConfig } from '@latentwire/model';
import { KV_DTYPES, latentKvLayout } from '@latentwire/protocol';
import { loadPrefillModel, logitRowsPerChunk, PrefillModel, type PrefillOptions } from '../src/prefill/index.js';
import { dryRunGpu, GpuError, type KernelProgram } from '../src/runtime/index.js';
import { syntheticWeights } from '../src/weights/index.js';
import { GEMV_MAX_M, maskWords } from '../src/kernels/index.js';
import { moeGemmVariant } from '../src/kernels/moe/index.js';
import { testGpu } from '../src/testing.js';

test.serial('compile ahead - after compileAll, prefills of every bucket, every cache dtype and every option add no pipeline', async (t) => {
  const gpu = await testGpu();
  const { model } = loadPrefillModel(gpu, FIXTURE_DIR);
  const cfg = model.cfg;
  const compiled = await model.compileAll();
  const pipelines = gpu.pipelines.size;
  t.log(`${compiled.shaders} prefill shaders in ${Math.round(compiled.ms)} ms; buckets start at ${compiled.buckets.join(', ')} (${compiled.lengthsTried} lengths tried)`);
  t.true(compiled.shaders > 0 && pipelines >= compiled.shaders);

  // the warm-up dispatches every compiled pipeline once (a driver that compiles at the first dispatch has then
  // compiled them all), in fewer prefills than the dry runs, the longest no longer than the longest bucket start
  t.true(gpu.pipelines.undispatched().length > 0, 'compileAll alone dispatches nothing');
  const warm = await model.warmUp(compiled);
  t.deepEqual(gpu.pipelines.undispatched(), [], 'every compiled pipeline dispatched once');
  t.is(gpu.pipelines.size, pipelines, 'the warm-up compiled nothing new');
  t.true(warm.runs > 0 && warm.runs < compiled.lengthsTried, `${warm.runs} warm-up prefills`);
  t.true(compiled.warmUpRuns.every((r) => r.tokens <= compiled.buckets.at(-1)!));
  t.log(`warm-up: ${warm.runs} prefills (${compiled.warmUpRuns.map((r) => r.tokens).join(', ')} tokens) in ${Math.round(warm.ms)} ms`);

  // the boundaries found are the launchers' own: the GEMV range's end, and the experts' switch of form
  t.true(compiled.buckets.includes(GEMV_MAX_M + 1), `a bucket starts past the GEMV range (${GEMV_MAX_M})`);
  const moe = cfg.moe!;
  const dims = { nExperts: moe.nRoutedExperts, topK: moe.numExpertsPerTok, hidden: cfg.hiddenSize, intermediate: moe.moeIntermediateSize };
  let moeSwitch = 1;
  while (moeGemmVariant(dims, moeSwitch) === moeGemmVariant(dims, 1)) moeSwitch++;
  t.true(compiled.buckets.includes(moeSwitch), `a bucket starts where the experts change form (${moeSwitch} tokens)`);
  t.true(logitRowsPerChunk(cfg.vocabSize) >= cfg.maxPositionEmbeddings, 'the fixture never chunks its LM head (no multi-chunk lengths to try)');

  // both sides of every boundary, and odd lengths inside the buckets
  const lengths = new Set<number>([1, 7, 13, 33, 131]);
  for (const b of compiled.buckets) for (const T of [b - 1, b, b + 1]) if (T >= 1 && T <= cfg.maxPositionEmbeddings) lengths.add(T);
  const sorted = [...lengths].sort((a, b) => a - b);
  const mask = new Uint32Array(maskWords(cfg.vocabSize)).fill(0xffffffff);
  const sample = { temperature: 0.8, topK: 0, topP: 1, seed: 3, counter: 0 };
  let i = 0;
  for (const T of sorted) {
    const ids = Array.from({ length: T }, (_, k) => (7 * k + 3) % cfg.vocabSize);
    const dtype = KV_DTYPES[i++ % KV_DTYPES.length]!;
    const stream = { layout: latentKvLayout({ dtype, kvLoraRank: cfg.kvLoraRank, ropeDim: cfg.qkRopeHeadDim, pageSize: 16 }), onLayer: () => undefined };
    const runs: PrefillOptions[] = [
      { stream, sample }, // a plain job
      { stream, sample: { ...sample, logitBias: [[5, 2]], repetitionPenalty: 1.2, logprobs: 1, mask }, choices: 3, promptLogprobs: 1 }, // every option
    ];
    for (const opts of runs) {
      (await model.prefill(ids, opts)).release();
      t.is(gpu.pipelines.size, pipelines, `${T} tokens, ${dtype}${opts.promptLogprobs ? ', every option' : ''}: no new pipeline`);
    }
  }
  // every cache dtype at one length, past the boundaries
  for (const dtype of KV_DTYPES) {
    const stream = { layout: latentKvLayout({ dtype, kvLoraRank: cfg.kvLoraRank, ropeDim: cfg.qkRopeHeadDim, pageSize: 64 }), onLayer: () => undefined };
    (await model.prefill([1, 2, 3], { stream, sample })).release();
    t.is(gpu.pipelines.size, pipelines, `${dtype}: no new pipeline`);
  }
  t.log(`${sorted.length} lengths prefilled: ${sorted.join(', ')}`);
});

test.serial('compile ahead - dry runs leave no buffer behind and the options are checked', async (t) => {
  const gpu = await testGpu();
  const { model } = loadPrefillModel(gpu, FIXTURE_DIR);
  const live = gpu.liveBufferCount;
  const compiled = await model.compileAll({ maxTokens: 40, kvDtypes: ['bf16'] });
  t.is(gpu.liveBufferCount, live, 'the dry runs allocated nothing on the device');
  t.deepEqual(compiled.buckets.filter((b) => b > 40), []);
  t.is(compiled.limit, null);
  await t.throwsAsync(model.compileAll({ maxTokens: 0 }), { instanceOf: RangeError });
  await t.throwsAsync(model.compileAll({ kvDtypes: [] }), { instanceOf: RangeError });
});

test.serial('compile ahead - past what the device can prefill, the shortest failing length is the limit and nothing longer is compiled', async (t) => {
  const gpu = await testGpu();
  const { model } = loadPrefillModel(gpu, FIXTURE_DIR);
  // far past the fixture's context: some launcher's dispatch limit or a buffer's size stops the prefill first
  // (a real prefill that long would allocate about 1 GB on lavapipe before failing the same way: not run here)
  const compiled = await model.compileAll({ maxTokens: 1 << 20, kvDtypes: ['bf16'] });
  t.log(`limit ${JSON.stringify(compiled.limit)}; ${compiled.shaders} shaders, buckets ${compiled.buckets.join(', ')}`);
  const limit = compiled.limit!;
  t.truthy(limit, 'a limit below 2^20 tokens');
  t.true(limit.tokens > model.cfg.maxPositionEmbeddings && limit.reason.length > 0);
  t.true(compiled.buckets.every((b) => b < limit.tokens));
  // one past a chunk of LM-head rows, prompt logprobs run the LM head twice: a bucket of its own
  const chunk = logitRowsPerChunk(model.cfg.vocabSize);
  if (chunk + 1 < limit.tokens) t.true(compiled.buckets.includes(chunk + 1), `a bucket at ${chunk + 1}`);
});

test.serial('compile ahead - at DeepSeek-V2-Lite shapes (stand-in weights on a dry-run Gpu) the listing takes seconds, and stops where the device cannot prefill (if it cannot within the context)', async (t) => {
  const gpu = await testGpu();
  const dry = dryRunGpu(gpu);
  const v2Lite = normalizeConfig(readTestFixture('deepseek-v2-lite.config.json'), 'deepseek-v2-lite.config.json');
  // the embedding table and LM head (102,400 × 2048 bf16, 400 MiB) are bound whole: where the device binds less
  // (lavapipe, 128 MiB) a smaller vocabulary, as the benches use there
  const tableBytes = v2Lite.vocabSize * v2Lite.hiddenSize * 2;
  const cfg = tableBytes > gpu.limits.maxStorageBufferBindingSize ? { ...v2Lite, vocabSize: 16384 } : v2Lite;
  const weights = await syntheticWeights(dry.gpu, cfg); // stand-ins: nothing is allocated or filled
  dry.take();
  const model = new PrefillModel(dry.gpu, cfg, weights, { ropeFreqPrecision: 'checkpoint' });
  const t0 = performance.now();
  const compiled = await model.compileAll(); // up to max_position_embeddings (163840), every cache dtype
  const ms = performance.now() - t0;
  t.log(`${compiled.shaders} shaders; buckets ${compiled.buckets.join(', ')}; ${compiled.lengthsTried} lengths in ${Math.round(ms)} ms; limit ${JSON.stringify(compiled.limit)}`);
  t.true(compiled.buckets.includes(GEMV_MAX_M + 1));
  t.true(compiled.buckets.includes(logitRowsPerChunk(cfg.vocabSize) + 1), 'prompt logprobs past one LM-head chunk');
  t.true(ms < 60_000, `${Math.round(ms)} ms`);
  const limit = compiled.limit;
  if (limit) t.true(compiled.buckets.every((b) => b < limit.tokens) && limit.tokens <= cfg.maxPositionEmbeddings);
  // the MLPs run in chunks past mlpChunkRows rows, so their scratch never sets the limit (without the chunks, the
  // dense layer's gate ‖ up outgrows a binding first: at 1,534 tokens on lavapipe, 24,529 with 2 GiB bindings)
  if (limit) {
    t.true(limit.tokens > model.mlpChunkRows, `limit ${limit.tokens}, chunks of ${model.mlpChunkRows}`);
    t.notRegex(limit.reason, /mlp\.|moe\./);
    // the limit is the shortest length that fails: one token less runs (dry, on the stand-in device)
    const prompt = (T: number) => Array.from({ length: T }, (_, i) => i % cfg.vocabSize);
    await t.notThrowsAsync(async () => (await model.prefill(prompt(limit.tokens - 1))).release());
    await t.throwsAsync(model.prefill(prompt(limit.tokens)));
    dry.take();
  }
});

test.serial('dry run - a binding wider than the device binds, or a grid taller than it dispatches, fails the dry run as it fails the dispatch', async (t) => {
  const gpu = await testGpu();
  const dry = dryRunGpu(gpu);
  const max = gpu.limits.maxStorageBufferBindingSize;
  const wide = dry.gpu.buffer('wide', max + 256);
  const program = (buffers: KernelProgram['buffers']): KernelProgram => ({ shader: { label: 'probe', source: '' }, buffers, workgroups: [1] });
  const err = await t.throwsAsync(dry.gpu.run([program([wide])]), { instanceOf: GpuError });
  t.regex(err!.message, /probe: binding 0 \(wide\) of \d+ bytes exceeds maxStorageBufferBindingSize/);
  await t.throwsAsync(dry.gpu.run([program([{ buffer: wide, offset: 256 - 16 }])]), { instanceOf: GpuError });
  await dry.gpu.run([program([{ buffer: wide, offset: 256, size: max }]), program([{ buffer: wide, offset: 256 }])]);
  t.is(dry.take().length, 2, 'a range within the limit is recorded');
  const grid = gpu.limits.maxComputeWorkgroupsPerDimension;
  const tall: KernelProgram = { ...program([{ buffer: wide, offset: 256 }]), workgroups: [1, grid + 1] };
  const gridErr = await t.throwsAsync(dry.gpu.run([tall]), { instanceOf: GpuError });
  t.regex(gridErr!.message, /probe: dispatch 1x\d+x1 exceeds \d+ workgroups per dimension/);
});
