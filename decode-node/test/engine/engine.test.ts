// The continuous-batching engine on the tiny fixture, through its two entries: the local path (prefill on this
// node) and the disaggregated one (reserve → KV bytes written page by page → admitPrefilled), checking that
// a batch gives each request the tokens it gets alone, and that pages always return to the pool.
import test from 'ava';
import { loadPrefillModel, LatentPageStager, pageRows, type PrefillModel } from '@latentwire/gpu/prefill';
import { FIXTURE_DIR, readFixtureJson } from '@latentwire/testing';
import { testGpu } from '@latentwire/gpu/testing';
import type { KvDtype } from '@latentwire/protocol';
import type { MlaConfig } from '@latentwire/model';
import { DecodeModel } from '../../src/engine/decode-model.js';
import { DecodeEngine, type EngineRequest, type Usage } from '../../src/engine/engine.js';
import type { FinishReason } from '../../src/scheduler/index.js';

interface Case { readonly input_ids: number[]; readonly greedy_ids: number[] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;

interface Result { tokens: number[]; reason: FinishReason; usage: Usage; error?: unknown }

function collect(start: (events: { onTokens(t: readonly number[]): void; onFinish(r: FinishReason, u: Usage, e?: unknown): void }) => void): Promise<Result> {
  return new Promise((resolve, reject) => {
    const tokens: number[] = [];
    try {
      start({ onTokens: (t) => tokens.push(...t), onFinish: (reason, usage, error) => resolve({ tokens, reason, usage, error }) });
    } catch (err) {
      reject(err);
    }
  });
}

let loaded: Promise<{ prefill: PrefillModel; cfg: MlaConfig }> | null = null;
function fixture() {
  loaded ??= testGpu().then((gpu) => {
    const { folder, model } = loadPrefillModel(gpu, FIXTURE_DIR, { routeSharedExperts: true }); // as the decode node loads it
    return { prefill: model, cfg: folder.config };
  });
  return loaded;
}

async function engineFor(kvDtype: KvDtype, opts: { numPages?: number; leaseMs?: number; now?: () => number; maxBatch?: number } = {}) {
  const gpu = await testGpu();
  const { prefill, cfg } = await fixture();
  const model = await DecodeModel.create(gpu, cfg, prefill.weights, {
    maxBatch: opts.maxBatch ?? 8, maxContext: 160, pageSize: 16, kvDtype, numPages: opts.numPages ?? 80, ropeFreqPrecision: prefill.ropeFreqPrecision,
  });
  // leases outlive a software adapter's slowest prefill among the file's concurrent tests (a first pipeline compile
  // there can hold the thread for seconds); expiry itself is tested on a clock of its own
  return { engine: new DecodeEngine(model, prefill, { maxWaiting: 32, leaseMs: opts.leaseMs ?? 60_000, now: opts.now }), cfg, prefill };
}

const requests = (cfg: MlaConfig): EngineRequest[] => [
  ...cases.map((c, b) => ({ id: `greedy-${b}`, promptIds: c.input_ids, maxTokens: 16, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, eosTokenIds: cfg.eosTokenIds })),
  ...cases.map((c, b) => ({ id: `sampled-${b}`, promptIds: c.input_ids, maxTokens: 12 + b, sampling: { temperature: 0.9, topK: 40, topP: 0.95, seed: 1234 + b }, eosTokenIds: cfg.eosTokenIds })),
];

test('engine - greedy requests reproduce transformers; a batch of 6 equals each request alone; pages return', async (t) => {
  const { engine, cfg } = await engineFor('bf16');
  const total = engine.stats().totalPages;
  const reqs = requests(cfg);
  const alone: Result[] = [];
  for (const req of reqs) alone.push(await collect((ev) => engine.submit(req, ev)));
  for (const [b, c] of cases.entries()) {
    t.deepEqual(alone[b]!.tokens, c.greedy_ids.slice(0, alone[b]!.tokens.length), `case ${b}`);
    t.is(alone[b]!.reason, alone[b]!.tokens.length === 16 ? 'length' : 'stop');
  }
  const stepsBefore = engine.steps;
  // the same ids again, submitted while the engine may still have a step of the last request in flight:
  // a new request must never be taken for the finished one of the same id
  const together = await Promise.all(reqs.map((req) => collect((ev) => engine.submit(req, ev))));
  t.deepEqual(together.map((r) => r.tokens), alone.map((r) => r.tokens), 'batched tokens equal the tokens alone');
  t.deepEqual(together.map((r) => r.usage), reqs.map((req, i) => ({ promptTokens: req.promptIds.length, completionTokens: alone[i]!.tokens.length })));
  t.true(engine.steps - stepsBefore <= 16, `the 6 requests shared steps (${engine.steps - stepsBefore})`);
  await engine.idle();
  t.is(engine.stats().freePages, total);
  engine.model.release();
});

test('engine - a request resumed from its sent tokens (counterStart) continues exactly: greedy and seeded sampling', async (t) => {
  // what the gateway sends another node when the first one is lost mid-stream: prompt + the tokens sent so far,
  // the sampler's counter moved on by as many (f32 cache: the re-prefilled rows equal the decoded ones)
  const { engine, cfg } = await engineFor('f32');
  for (const sampling of [{ temperature: 0, topK: 0, topP: 1, seed: 0 }, { temperature: 0.9, topK: 40, topP: 0.95, seed: 77 }]) {
    const c = cases[0]!;
    const whole = await collect((ev) => engine.submit({ id: `whole-${sampling.seed}`, promptIds: c.input_ids, maxTokens: 14, sampling }, ev));
    const sent = whole.tokens.slice(0, 6);
    const rest = await collect((ev) => engine.submit({
      id: `rest-${sampling.seed}`, promptIds: [...c.input_ids, ...sent], maxTokens: 14 - sent.length, sampling: { ...sampling, counterStart: sent.length },
    }, ev));
    t.deepEqual([...sent, ...rest.tokens], whole.tokens, `temperature ${sampling.temperature}`);
  }
  await engine.idle();
  engine.model.release();
});

test('engine - pages return after finished, cancelled, failed, expired and cancelled reservations', async (t) => {
  let clock = 0;
  const { engine, cfg } = await engineFor('fp8_e5m2', { now: () => clock, leaseMs: 10_000 });
  const total = engine.stats().totalPages;
  const [a, b, c] = requests(cfg);
  const done = collect((ev) => engine.submit(a!, ev));
  const cancelled = collect((ev) => engine.submit({ ...b!, id: 'to-cancel', maxTokens: 40 }, {
    onTokens: (tok) => { ev.onTokens(tok); if (tok.length > 0) engine.cancel('to-cancel'); },
    onFinish: ev.onFinish,
  }));
  const failed = collect((ev) => engine.submit({ ...c!, id: 'to-fail', maxTokens: 40 }, {
    onTokens: (tok) => { ev.onTokens(tok); engine.fail('to-fail', new Error('injected')); },
    onFinish: ev.onFinish,
  }));
  engine.reserve('expires', 40);
  engine.reserve('withdrawn', 40);
  t.true(engine.cancel('withdrawn'));
  const results = await Promise.all([done, cancelled, failed]);
  t.deepEqual(results.map((r) => r.reason), [results[0]!.tokens.length === 16 ? 'length' : 'stop', 'cancelled', 'error']);
  t.true(results[1]!.tokens.length < 40 && results[2]!.tokens.length < 40);
  t.is((results[2]!.error as Error).message, 'injected');
  await engine.idle();
  t.is(engine.stats().freePages, total - Math.ceil(40 / 16), 'only the live reservation holds pages');
  clock += 20_000; // its lease runs out
  t.is(engine.stats().freePages, total);
  t.false(engine.cancel('expires'));
  engine.model.release();
});

test('engine - a request that no pool could hold, and a full queue, are rejected with reasons', async (t) => {
  const { engine, cfg } = await engineFor('bf16', { numPages: 4, maxBatch: 1 });
  const req = requests(cfg)[0]!;
  t.throws(() => engine.submit({ ...req, id: "huge", maxTokens: 200 }, { onTokens() {}, onFinish() {} }), { message: /exceed the context/ });
  t.throws(() => engine.reserve("big", 5 * 16), { message: /pool has 4/ });
  engine.reserve('small', 3 * 16);
  t.throws(() => engine.reserve('more', 2 * 16), { message: /pages free/ });
  t.true(engine.cancel('small'));
  t.is(engine.stats().freePages, 4);
  engine.model.release();
});

for (const kvDtype of ['fp8_e4m3', 'f32'] as const) {
  test(`engine - disaggregated handoff (${kvDtype}): KV pages as bytes + admitPrefilled give the local path's tokens`, async (t) => {
    const gpu = await testGpu();
    const { engine, cfg, prefill } = await engineFor(kvDtype);
    const total = engine.stats().totalPages;
    const stager = new LatentPageStager(gpu, engine.model.cache.layout);
    for (const req of requests(cfg).filter((_, i) => i % 2 === 0)) {
      const local = await collect((ev) => engine.submit(req, ev));
      const id = `${req.id}-pd`;
      const lease = engine.reserve(id, req.promptIds.length + req.maxTokens);
      const out = await prefill.prefill(req.promptIds);
      for (let l = 0; l < cfg.numLayers; l++) {
        const bytes = await stager.pages(out.latent[l]!, out.tokens);
        for (let p = 0; p * 16 < out.tokens; p++) {
          const page = pageRows(engine.model.cache.layout, bytes, out.tokens, p);
          engine.writeKv(id, l, p, 0, page.rows, page.scales);
        }
      }
      out.release();
      const first = local.tokens[0]!; // the prefill node samples it; same seed and counter 0 → same token
      const pd = await collect((ev) => engine.admitPrefilled({ ...req, id }, first, ev));
      t.deepEqual(pd.tokens, local.tokens, req.id);
      t.true(lease.pages.length >= 1);
    }
    await engine.idle();
    t.is(engine.stats().freePages, total);
    stager.release();
    engine.model.release();
  });
}

test('engine - penalties, logit_bias and logprobs: a mixed batch gives each request its tokens and logprobs alone; counts rows are reused', async (t) => {
  const { engine, cfg } = await engineFor('f32', { maxBatch: 4 });
  const c = cases[0]!;
  const base = { promptIds: c.input_ids, maxTokens: 10, eosTokenIds: cfg.eosTokenIds };
  const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0 };
  const reqs: EngineRequest[] = [
    { ...base, id: 'freq', sampling: { ...greedy, frequencyPenalty: 2, logprobs: 3 } },
    { ...base, id: 'plain', sampling: { ...greedy } },
    { ...base, id: 'rep-sampled', sampling: { temperature: 0.8, topK: 0, topP: 1, seed: 9, repetitionPenalty: 1.5, presencePenalty: 0.5 } },
    { ...base, id: 'bias', sampling: { ...greedy, logitBias: [[16, -100], [344, 1.5]], logprobs: 0 } },
  ];
  type Logged = { tokens: number[]; logprobs: number[] };
  const run = (req: EngineRequest) => new Promise<Logged>((resolve, reject) => {
    const out: Logged = { tokens: [], logprobs: [] };
    engine.submit(req, {
      onTokens: (tok, lp) => { out.tokens.push(...tok); out.logprobs.push(...(lp ?? []).map((l) => l.logprob)); },
      onFinish: (reason, _u, err) => (reason === 'error' ? reject(err) : resolve(out)),
    });
  });
  const alone: Logged[] = [];
  for (const req of reqs) alone.push(await run(req));
  // the penalties do change greedy output (the plain request is the reference's)
  t.deepEqual(alone[1]!.tokens, c.greedy_ids.slice(0, 10));
  t.notDeepEqual(alone[0]!.tokens, alone[1]!.tokens);
  t.false(alone[3]!.tokens.includes(16));
  t.is(alone[0]!.logprobs.length, 10);
  t.is(alone[1]!.logprobs.length, 0);
  // twice together: with the two alone, six sequences with penalties over maxBatch = 4 counts rows, so rows are reused
  for (let round = 0; round < 2; round++) {
    const together = await Promise.all(reqs.map((r) => run({ ...r, id: `${r.id}-${round}` })));
    t.deepEqual(together.map((r) => r.tokens), alone.map((r) => r.tokens), `round ${round}: batched tokens equal alone`);
    together.forEach((r, i) => r.logprobs.forEach((l, j) => t.true(Math.abs(l - alone[i]!.logprobs[j]!) < 1e-5, `logprob ${i}.${j}`)));
  }
  await engine.idle();
  engine.model.release();
});
