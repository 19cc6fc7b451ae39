// Logprobs, penalties and logit_bias end to end, through the official `openai` client against a real cluster
// (nats, redis, prefill node, decode node, GPU kernels on this machine's WebGPU device), checked against the
// transformers reference of the fixture model (reference.json: input_ids, greedy_ids, and step_logits, the
// logits that chose each greedy token) with float64 arithmetic here:
//   - logprobs: a float64 log-softmax of step_logits, for the sampled token and the top alternatives;
//   - penalties and logit_bias: greedy decoding under the rule (a float64 copy written here, independent of
//     the kernel) follows the reference logits until its first token that differs from greedy_ids; up to and
//     including that token the served tokens must equal the prediction (the context is then the reference's).
// The first token is sampled on the prefill node, the rest on the decode node: both paths are covered.
import test from 'ava';
import { openModelFolder } from '@latentwire/model';
import { FIXTURE_DIR, readFixtureJson } from '@latentwire/testing';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { WireTokens } from './helpers/wire-tokens.js';

interface Case { readonly input_ids: number[]; readonly greedy_ids: number[]; readonly step_logits: number[][] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;
const folder = openModelFolder(FIXTURE_DIR);

let cluster: TestCluster;
let wire: WireTokens;
test.before(async () => {
  // an f32 cache: decode logits then follow the reference's within ~4e-5 (fixture-decode.test.ts)
  cluster = await startCluster({ decodeNodes: 1, kvDtype: 'f32', pageSize: 16, numPages: 64, maxBatch: 2 });
  wire = new WireTokens(cluster.nc, cluster.prefix);
});
test.after.always(async () => {
  wire?.stop();
  await cluster?.stop();
});

function logSoftmax(x: readonly number[]): number[] {
  const m = Math.max(...x);
  const lse = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  return x.map((v) => v - lse);
}
const byValue = (x: readonly number[]) => x.map((_, i) => i).sort((a, b) => x[b]! - x[a]! || a - b);

interface Rule { presence?: number; frequency?: number; repetition?: number; bias?: Record<number, number> }
/** The rule in float64 (vLLM's order): bias, repetition over prompt + output, then frequency and presence over output counts. */
function adjust(logits: readonly number[], r: Rule, prompt: readonly number[], out: readonly number[]): number[] {
  const x = [...logits];
  for (const [id, b] of Object.entries(r.bias ?? {})) x[Number(id)]! += b;
  const seen = new Set([...prompt, ...out]);
  for (const id of seen) x[id] = x[id]! > 0 ? x[id]! / (r.repetition ?? 1) : x[id]! * (r.repetition ?? 1);
  const count = new Map<number, number>();
  for (const id of out) count.set(id, (count.get(id) ?? 0) + 1);
  for (const [id, n] of count) x[id] = x[id]! - (r.frequency ?? 0) * n - (r.presence ?? 0);
  return x;
}

/** Greedy under the rule along the reference: tokens up to and including the first that differs from greedy_ids, and the smallest top-2 margin on the way. */
function predict(c: Case, r: Rule): { ids: number[]; margin: number; diverged: boolean } {
  const ids: number[] = [];
  let margin = Infinity;
  for (let i = 0; i < c.greedy_ids.length; i++) {
    const [a, b] = byValue(adjust(c.step_logits[i]!, r, c.input_ids, ids));
    const x = adjust(c.step_logits[i]!, r, c.input_ids, ids);
    margin = Math.min(margin, x[a!]! - x[b!]!);
    ids.push(a!);
    if (a !== c.greedy_ids[i]) return { ids, margin, diverged: true };
  }
  return { ids, margin, diverged: false };
}

test.serial('logprobs: completions token_logprobs and top_logprobs, and the wire ids of the alternatives, equal a float64 log-softmax of the reference logits within 1e-3', async (t) => {
  const { client, model } = cluster;
  let worst = 0;
  for (const c of cases) {
    const n = 12;
    const res = await client.completions.create({ model, prompt: c.input_ids, max_tokens: n, temperature: 0, logprobs: 5 });
    const ids = await wire.ids(res.id);
    t.deepEqual(ids, c.greedy_ids.slice(0, n));
    const lp = res.choices[0]!.logprobs!;
    t.is(lp.token_logprobs!.length, n);
    const onWire = await wire.logprobs(res.id);
    for (let i = 0; i < n; i++) {
      const ref = logSoftmax(c.step_logits[i]!);
      worst = Math.max(worst, Math.abs(lp.token_logprobs![i]! - ref[ids[i]!]!));
      t.is(lp.tokens![i], folder.tokenizer.decode([ids[i]!]));
      // alternatives by id (the wire's), where the reference's 5th and 6th are apart by more than the error
      const order = byValue(ref);
      const top = onWire[i]!.top;
      if (ref[order[4]!]! - ref[order[5]!]! > 1e-3) t.deepEqual(top.map(([id]) => id), order.slice(0, 5), `case step ${i}`);
      for (const [id, l] of top) worst = Math.max(worst, Math.abs(l - ref[id]!));
      // the response's dict: every alternative's text, with its logprob
      for (const [id, l] of top) t.is(lp.top_logprobs![i]![folder.tokenizer.decode([id])] !== undefined, true, `${id} ${l}`);
    }
  }
  // measured on lavapipe with an f32 cache: see the log line; the bound is the task's 1e-3
  t.log(`worst logprob error vs float64 log-softmax of the transformers logits: ${worst.toExponential(2)}`);
  t.true(worst < 1e-3, `worst ${worst}`);
});

test.serial('logprobs: chat, streamed and not, carry the same entries as the wire; top_logprobs as asked', async (t) => {
  const { client, model } = cluster;
  const body = { model, messages: [{ role: 'user' as const, content: 'Hello, who are you?' }], max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 };
  const res = await client.chat.completions.create(body);
  const ids = await wire.ids(res.id);
  const onWire = await wire.logprobs(res.id);
  const content = res.choices[0]!.logprobs!.content!;
  const eos = new Set(folder.config.eosTokenIds);
  const shown = ids.filter((id) => !eos.has(id));
  t.is(content.length, shown.length);
  content.forEach((e, i) => {
    t.is(e.token, folder.tokenizer.decode([shown[i]!]));
    t.is(e.logprob, Math.fround(onWire[i]!.logprob));
    t.is(e.top_logprobs.length, 3);
    t.is(e.top_logprobs[0]!.logprob, e.logprob); // greedy: the sampled token is the most probable
  });
  const streamed: unknown[] = [];
  for await (const c of await client.chat.completions.create({ ...body, stream: true })) streamed.push(...(c.choices[0]?.logprobs?.content ?? []));
  t.deepEqual(streamed, content);
});

test.serial('penalties and logit_bias: greedy output equals the float64 rule along the reference logits', async (t) => {
  const { client, model } = cluster;
  const c = cases[0]!;
  const rules: [string, Rule, Record<string, unknown>][] = [
    ['frequency_penalty 2', { frequency: 2 }, { frequency_penalty: 2 }],
    ['presence_penalty 1.5', { presence: 1.5 }, { presence_penalty: 1.5 }],
    ['repetition_penalty 1.8', { repetition: 1.8 }, { repetition_penalty: 1.8 }],
    ['logit_bias -100 on greedy token 2', { bias: { [c.greedy_ids[2]!]: -100 } }, { logit_bias: { [c.greedy_ids[2]!]: -100 } }],
    ['logit_bias +5 on token 344', { bias: { 344: 5 } }, { logit_bias: { 344: 5 } }],
    ['all of them', { frequency: 0.5, presence: 0.5, repetition: 1.3, bias: { 16: -1 } }, { frequency_penalty: 0.5, presence_penalty: 0.5, repetition_penalty: 1.3, logit_bias: { 16: -1 } }],
  ];
  for (const [what, rule, fields] of rules) {
    const p = predict(c, rule);
    t.true(p.diverged, `${what}: the rule changes the greedy output`);
    t.true(p.margin > 1e-2, `${what}: top-2 margin ${p.margin} is clear of the GPU's error`);
    const res = await client.completions.create({ model, prompt: c.input_ids, max_tokens: p.ids.length, temperature: 0, ...fields } as never);
    t.deepEqual(await wire.ids(res.id), p.ids, what);
    t.log(`${what}: diverges at token ${p.ids.length - 1} (${c.greedy_ids[p.ids.length - 1]} -> ${p.ids.at(-1)}), margin ${p.margin.toFixed(3)}`);
  }
  // and without any: the reference's greedy tokens
  const plain = await client.completions.create({ model, prompt: c.input_ids, max_tokens: 8, temperature: 0, presence_penalty: 0, frequency_penalty: 0, repetition_penalty: 1, logit_bias: {} } as never);
  t.deepEqual(await wire.ids(plain.id), c.greedy_ids.slice(0, 8));
});

test.serial('repetition_penalty sees the prompt on the decode node too: the API (the prompt token set travels with the reserve) equals the local engine path', async (t) => {
  const { client, model } = cluster;
  const engine = cluster.decode[0]!.stack.engine;
  const local = (promptIds: readonly number[], sampling: object, promptTokenSet?: number[]) => new Promise<number[]>((resolve, reject) => {
    const out: number[] = [];
    engine.submit({ id: `local-${Math.random()}`, promptIds, maxTokens: 16, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0, ...sampling }, eosTokenIds: folder.config.eosTokenIds, ...(promptTokenSet ? { promptTokenSet } : {}) }, {
      onTokens: (tok) => out.push(...tok),
      onFinish: (reason, _u, err) => (reason === 'error' ? reject(err) : resolve(out)),
    });
  });
  // a prompt and penalty for which the prompt matters after the first token: the local path with the prompt
  // hidden from the decode steps (an empty token set) decodes differently
  let found = 0;
  for (const c of cases) {
    for (const repetition of [1.5, 3]) {
      const full = await local(c.input_ids, { repetitionPenalty: repetition });
      const hidden = await local(c.input_ids, { repetitionPenalty: repetition }, []);
      if (full.join() === hidden.join()) continue;
      found++;
      const res = await client.completions.create({ model, prompt: c.input_ids, max_tokens: 16, temperature: 0, repetition_penalty: repetition } as never);
      t.deepEqual(await wire.ids(res.id), full, `prompt of ${c.input_ids.length} tokens, repetition_penalty ${repetition}`);
    }
  }
  t.true(found > 0, 'some prompt and penalty make the prompt matter after the first token');
  t.log(`${found} prompt/penalty pairs where the prompt set changes decoding`);
});

test.serial('logit_bias +100 forces its token, on the prefill node and the decode node, sampled or greedy; its logprob is ~0', async (t) => {
  const { client, model } = cluster;
  for (const temperature of [0, 1]) {
    // the chat test's prompt: its prefill shapes are compiled already (a cold lavapipe compile can outlast a lease)
    const res = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello, who are you?' }], max_tokens: 5, temperature, seed: 3, logit_bias: { 77: 100 }, logprobs: true });
    t.deepEqual(await wire.ids(res.id), [77, 77, 77, 77, 77]);
    for (const e of res.choices[0]!.logprobs!.content!) t.true(e.logprob > -1e-3 && e.logprob <= 0, `${e.logprob}`);
  }
  t.true(await cluster.pagesBack());
});
