// A request resumed after its node was lost (the gateway's continuation) from the k tokens already sent:
// - replayed (replayTokens): the prompt alone is prefilled, its first token discarded, and t_0 .. t_{k-1} are
//   fed through teacher-forced decode steps in the batch, so their KV is what the lost node's steps wrote;
//   the first token sent is the one after them, sampled with the counter at k, the penalties' counts over them
//   and the grammar's state after them. Token for token on the FP8 cache as on f32, greedy and seeded, by the
//   local path (prefill here) and the disaggregated one (KV pages + admitPrefilled), with nothing sent for
//   the replayed tokens and the other streams flowing meanwhile;
// - prefilled again (resumeTokens, the fallback past the gateway's RESUME_REPLAY_MAX_TOKENS): prompt + the k
//   tokens prefilled, the state rebuilt from them; token for token on the f32 cache only.
// Bad resume tokens are refused before anything runs.
import test, { type ExecutionContext } from 'ava';
import { loadPrefillModel, LatentPageStager, pageRows } from '@latentwire/gpu/prefill';
import { FIXTURE_DIR, readFixtureJson } from '@latentwire/testing';
import { testGpu } from '@latentwire/gpu/testing';
import type { KvDtype } from '@latentwire/protocol';
import { grammarVocabulary, jsonSchemaGrammar } from '@latentwire/model';
import { DecodeModel } from '../../src/engine/decode-model.js';
import { DecodeEngine, type EngineRequest, type Usage } from '../../src/engine/engine.js';

interface Case { readonly input_ids: number[] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;
const prompt = cases[0]!.input_ids;
const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0 };

interface Run { readonly tokens: number[]; readonly usage: Usage; readonly events: number }

async function setup(kvDtype: KvDtype) {
  const gpu = await testGpu();
  const { folder, model: prefill } = loadPrefillModel(gpu, FIXTURE_DIR);
  const cfg = folder.config;
  const model = await DecodeModel.create(gpu, cfg, prefill.weights, { maxBatch: 8, maxContext: 96, pageSize: 16, kvDtype, numPages: 64, ropeFreqPrecision: prefill.ropeFreqPrecision });
  const engine = new DecodeEngine(model, prefill, { maxWaiting: 32, leaseMs: 10_000, grammarVocabulary: grammarVocabulary(folder) });
  const events = (resolve: (r: Run) => void, reject: (e: unknown) => void, onToken?: () => void) => {
    const tokens: number[] = [];
    let calls = 0;
    return {
      onTokens: (ts: readonly number[]) => {
        calls++;
        tokens.push(...ts);
        onToken?.();
      },
      onFinish: (reason: string, usage: Usage, err?: unknown) => (reason === 'error' ? reject(err) : resolve({ tokens, usage, events: calls })),
    };
  };
  /** The local path: prefilled on this node. */
  const run = (req: EngineRequest, onToken?: () => void) => new Promise<Run>((resolve, reject) => engine.submit(req, events(resolve, reject, onToken)));
  const stager = new LatentPageStager(gpu, model.cache.layout);
  /** The disaggregated path: the prompt's KV as the prefill node sends it, then admitPrefilled with `first`. */
  const runPd = async (req: EngineRequest, first: number) => {
    engine.reserve(req.id, req.promptIds.length + req.maxTokens);
    const out = await prefill.prefill(req.promptIds);
    try {
      for (let l = 0; l < cfg.numLayers; l++) {
        const bytes = await stager.pages(out.latent[l]!, out.tokens);
        for (let p = 0; p * 16 < out.tokens; p++) {
          const page = pageRows(model.cache.layout, bytes, out.tokens, p);
          engine.writeKv(req.id, l, p, 0, page.rows, page.scales);
        }
      }
    } finally {
      out.release();
    }
    return new Promise<Run>((resolve, reject) => engine.admitPrefilled(req, first, events(resolve, reject)));
  };
  const done = async (t: ExecutionContext) => {
    await engine.idle();
    t.is(engine.stats().freePages, engine.stats().totalPages, 'every page back');
    stager.release();
    model.release();
  };
  const schema = { type: 'array', items: { type: 'integer' }, maxItems: 4 };
  const reqs: EngineRequest[] = [
    { id: 'freq', promptIds: prompt, maxTokens: 10, sampling: { ...greedy, frequencyPenalty: 2 } },
    { id: 'pres-rep-seeded', promptIds: prompt, maxTokens: 10, sampling: { temperature: 0.8, topK: 0, topP: 1, seed: 9, presencePenalty: 1.5, repetitionPenalty: 1.3 } },
    { id: 'grammar', promptIds: prompt, maxTokens: 12, sampling: { ...greedy, frequencyPenalty: 0.5, grammar: { root: jsonSchemaGrammar(schema).root, maxTokens: 12 } }, eosTokenIds: cfg.eosTokenIds },
  ];
  return { cfg, folder, engine, run, runPd, done, reqs };
}

/** The replayed continuation of `req` after the first k of its tokens `whole`: the original request and them. */
const replayed = (req: EngineRequest, whole: readonly number[], k: number, id = `${req.id}-replay-${k}`): EngineRequest => ({ ...req, id, replayTokens: whole.slice(0, k) });

/** The continuation prefilled again: prompt + the k tokens, counter at k, what is left of max_tokens. */
function reprefilled(req: EngineRequest, whole: readonly number[], k: number): EngineRequest {
  const sent = whole.slice(0, k);
  const g = req.sampling.grammar;
  return {
    ...req, id: `${req.id}-prefill-${k}`, promptIds: [...req.promptIds, ...sent], maxTokens: req.maxTokens - k, resumeTokens: sent,
    sampling: { ...req.sampling, counterStart: k, ...(g ? { grammar: { ...g, maxTokens: g.maxTokens! - k } } : {}) },
  };
}

/** Resume points: early, a few in, and the last token alone. */
const pointsOf = (whole: readonly number[]) => [...new Set([1, 3, whole.length - 1])].filter((k) => k >= 1 && k < whole.length);

for (const kvDtype of ['fp8_e4m3', 'f32'] as const) {
  test(`engine - ${kvDtype} cache: a replayed resume (penalties, grammar; greedy and seeded) continues token for token from several points, local and disaggregated, sending only new tokens`, async (t) => {
    const { engine, run, runPd, done, reqs } = await setup(kvDtype);
    const wholes = await Promise.all(reqs.map((req) => run(req)));
    for (const [i, req] of reqs.entries()) t.true(wholes[i]!.tokens.length >= 4, `${req.id}: ${wholes[i]!.tokens.length} tokens`);
    // every resume at once, half of them disaggregated (their prefill's token deliberately not t_0): the
    // replays share the batch with each other and with the replay-free rows
    const resumes = reqs.flatMap((req, i) => pointsOf(wholes[i]!.tokens).map((k) => ({ req, whole: wholes[i]!.tokens, k })));
    const results = await Promise.all(resumes.map(({ req, whole, k }, j) => (j % 2 === 0
      ? run(replayed(req, whole, k))
      : runPd(replayed(req, whole, k, `${req.id}-pd-${k}`), (whole[0]! + 1) % engine.model.cfg.vocabSize))));
    resumes.forEach(({ req, whole, k }, j) => {
      const how = j % 2 === 0 ? 'local' : 'disaggregated';
      t.deepEqual(results[j]!.tokens, whole.slice(k), `${req.id} replayed after ${k} tokens (${how}): the same tokens, none of the replayed ones sent`);
      t.is(results[j]!.usage.completionTokens, whole.length - k, `${req.id} after ${k} (${how}): usage counts what this node generated`);
    });
    t.log(`${kvDtype}: ${resumes.length} replayed resumes (k = ${resumes.map((r) => r.k).join(', ')}) equal the uninterrupted runs`);
    await done(t);
  });
}

test('engine - a replay runs inside the batch: a stream beside it keeps getting tokens, and the replaying request sends nothing until its first new token', async (t) => {
  const { engine, run, done, cfg } = await setup('fp8_e4m3');
  const long: EngineRequest = { id: 'long', promptIds: prompt, maxTokens: 24, sampling: { temperature: 0.7, topK: 0, topP: 1, seed: 3 }, eosTokenIds: [] };
  const side: EngineRequest = { id: 'side', promptIds: cases[2]!.input_ids, maxTokens: 8, sampling: greedy, eosTokenIds: [] };
  await run({ ...long, id: 'warm-up', maxTokens: 2 }); // batch 1's pipelines compiled outside the timings
  let t0 = performance.now();
  const whole = await run(long);
  const wholeMs = performance.now() - t0;
  t.is(whole.tokens.length, 24);
  const order: string[] = [];
  let firstAt = 0;
  t0 = performance.now();
  const [resumed, beside] = await Promise.all([
    run(replayed(long, whole.tokens, 20), () => {
      order.push('replayed');
      firstAt ||= performance.now();
    }),
    run(side, () => order.push('side')),
  ]);
  t.log(`lavapipe: 24 tokens alone in ${Math.round(wholeMs)} ms; replaying 20 beside an 8-token stream, the first new token after ${Math.round(firstAt - t0)} ms`);
  t.deepEqual(resumed.tokens, whole.tokens.slice(20));
  t.is(beside.tokens.length, 8);
  // 20 replay steps before its first token: the side stream's 8 tokens all came meanwhile
  t.deepEqual(order.slice(0, 8), Array(8).fill('side'), order.join(' '));
  // bad replay tokens: refused before anything runs
  const base = { ...long, id: 'bad' };
  const none = { onTokens() {}, onFinish() {} };
  t.throws(() => engine.submit({ ...base, replayTokens: whole.tokens }, none), { instanceOf: RangeError, message: /leave none of max_tokens 24/ });
  t.throws(() => engine.submit({ ...base, replayTokens: [cfg.vocabSize] }, none), { instanceOf: RangeError, message: /replay token \d+ outside the vocabulary/ });
  t.throws(() => engine.submit({ ...base, eosTokenIds: [whole.tokens[1]!], replayTokens: whole.tokens.slice(0, 3) }, none), { instanceOf: RangeError, message: /is a stop token/ });
  t.throws(() => engine.submit({ ...base, replayTokens: [1], resumeTokens: [1], promptIds: [...prompt, 1] }, none), { instanceOf: RangeError, message: /replayTokens and resumeTokens/ });
  await done(t);
});

test('engine - f32 cache: a resume prefilled again (resumeTokens) continues token for token; without them the penalties are lost; bad ones are refused', async (t) => {
  const { cfg, folder, engine, run, done, reqs } = await setup('f32');
  const wholes = (await Promise.all(reqs.map((req) => run(req)))).map((r) => r.tokens);
  const plain = await Promise.all(reqs.slice(0, 2).map((req) => run({ ...req, id: `${req.id}-plain`, sampling: { ...req.sampling, frequencyPenalty: 0, presencePenalty: 0, repetitionPenalty: 1 } })));
  plain.forEach((p, i) => t.notDeepEqual(p.tokens, wholes[i], `${reqs[i]!.id}: the penalties change the output (so the test can see them lost)`));
  const resumes = reqs.flatMap((req, i) => [1, 3].map((k) => ({ req, whole: wholes[i]!, k })));
  const got = await Promise.all(resumes.map(({ req, whole, k }) => run(reprefilled(req, whole, k))));
  resumes.forEach(({ req, whole, k }, j) => t.deepEqual(got[j]!.tokens, whole.slice(k), `${req.id} prefilled again after ${k} tokens`));
  // without resumeTokens the node cannot know the output so far: the penalties would be lost
  const blind = await Promise.all(reqs.slice(0, 2).map((req, i) => {
    const { resumeTokens: _r, ...rest } = reprefilled(req, wholes[i]!, 3);
    return run({ ...rest, id: `${req.id}-blind` });
  }));
  blind.forEach((b, i) => t.notDeepEqual(b.tokens, wholes[i]!.slice(3), `${reqs[i]!.id}: the counts matter after 3 tokens`));
  const base = reqs[2]!;
  const none = { onTokens() {}, onFinish() {} };
  t.throws(() => engine.submit({ ...base, id: 'vocab', promptIds: [...prompt, 1], resumeTokens: [cfg.vocabSize] }, none), { instanceOf: RangeError, message: /outside the vocabulary/ });
  t.throws(() => engine.submit({ ...base, id: 'long', promptIds: [1, 2], resumeTokens: [1, 2] }, none), { instanceOf: RangeError, message: /2 resume tokens in a prompt of 2/ });
  const x = folder.tokenizer.encode('x', { addBos: false })[0]!;
  t.throws(() => engine.submit({ ...base, id: 'ungrammatical', promptIds: [...prompt, x], resumeTokens: [x] }, none), { instanceOf: RangeError, message: /not allowed/ });
  t.throws(() => engine.submit({ ...base, id: 'ungrammatical-replay', replayTokens: [x] }, none), { instanceOf: RangeError, message: /not allowed/ });
  await done(t);
});
