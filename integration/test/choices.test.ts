// n > 1 and best_of end to end, through the official `openai` client against a real cluster (nats, redis,
// prefill node, decode node, GPU kernels on this machine's WebGPU device):
//   - choice i of a request with seed s samples with seed s + i: it equals the solo request of seed s + i,
//     and n = 3 with a seed gives the same three choices twice;
//   - the prompt is prefilled once and its KV sent once (prefill jobs, and KV bytes the decode node stored,
//     counted against a solo request of the same prompt), and every page returns to the pool after the request;
//   - streaming chunks carry their choice's index, each choice its own finish reason; usage sums the choices;
//   - best_of returns the candidates of highest cumulative logprob.
import test from 'ava';
import type OpenAI from 'openai';
import { readFixtureJson } from '@latentwire/testing';
import { sum } from './helpers/metrics.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';

interface Case { readonly input_ids: number[] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;
/** 18 tokens: a full page and a partial one at page size 16 (copy-on-write); 32: two whole pages (shared, nothing copied). */
const partialPrompt = cases[0]!.input_ids;
const wholePagesPrompt = cases[1]!.input_ids.slice(0, 32);

let cluster: TestCluster;
test.before(async () => {
  cluster = await startCluster({ decodeNodes: 1, pageSize: 16, numPages: 64, maxBatch: 4 });
});
test.after.always(async () => {
  await cluster?.stop();
});


const sampling = { temperature: 1, top_p: 1, max_tokens: 8 } as const;

test.serial('n = 3 with a seed: three choices, each the solo request of seed + index, the same twice; one prefill, KV sent once, pages back', async (t) => {
  const { client, model, registries } = cluster;
  for (const prompt of [partialPrompt, wholePagesPrompt]) {
    const what = `${prompt.length}-token prompt`;
    const solos = [];
    for (let i = 0; i < 3; i++) solos.push(await client.completions.create({ model, prompt, ...sampling, seed: 1000 + i }));
    // KV data bytes the decode node stored (not chunks: how many chunks carry it depends on timing, since a
    // chunk packs layers that were ready together)
    const kv0 = await sum(registries.decode, 'latentwire_decode_kv_bytes_total');
    const jobs0 = await sum(registries.prefill, 'latentwire_prefill_jobs_total', { outcome: 'completed' });
    const r = await client.completions.create({ model, prompt, ...sampling, seed: 1000, n: 3 });
    const kvPerRequest = (await sum(registries.decode, 'latentwire_decode_kv_bytes_total')) - kv0;
    t.is((await sum(registries.prefill, 'latentwire_prefill_jobs_total', { outcome: 'completed' })) - jobs0, 1, `${what}: one prefill`);
    t.true(await cluster.pagesBack(), `${what}: pages back after n = 3`);

    t.deepEqual(r.choices.map((c) => c.index), [0, 1, 2], what);
    t.deepEqual(r.choices.map((c) => [c.text, c.finish_reason]), solos.map((s) => [s.choices[0]!.text, s.choices[0]!.finish_reason]), `${what}: choice i = solo seed + i`);
    t.is(r.usage!.prompt_tokens, prompt.length);
    t.is(r.usage!.completion_tokens, solos.reduce((a, s) => a + s.usage!.completion_tokens, 0), `${what}: usage sums the choices`);
    t.true(new Set(r.choices.map((c) => c.text)).size > 1, `${what}: the seeds differ, so do the choices`);

    const again = await client.completions.create({ model, prompt, ...sampling, seed: 1000, n: 3 });
    t.deepEqual(again.choices.map((c) => c.text), r.choices.map((c) => c.text), `${what}: reproducible`);

    // the KV of one solo request of the same prompt: the n = 3 request sent exactly as many bytes
    const kv1 = await sum(registries.decode, 'latentwire_decode_kv_bytes_total');
    await client.completions.create({ model, prompt, ...sampling, seed: 7 });
    t.true(kvPerRequest > 0);
    t.is(kvPerRequest, (await sum(registries.decode, 'latentwire_decode_kv_bytes_total')) - kv1, `${what}: the prompt's KV went once`);
  }
  t.true(await cluster.pagesBack());
  t.is(await sum(registries.decode, 'latentwire_decode_pages', { state: 'free' }), await sum(registries.decode, 'latentwire_decode_total_pages'));
});

test.serial('chat, streaming, n = 3: chunks carry their index, each choice ends once with its own finish reason, and equal the non-streamed choices', async (t) => {
  const { client, model } = cluster;
  const body = { model, messages: [{ role: 'user' as const, content: 'Tell me a story' }], ...sampling, max_tokens: 6, seed: 77, n: 3 };
  const whole = await client.chat.completions.create(body);
  t.deepEqual(whole.choices.map((c) => c.index), [0, 1, 2]);
  const text = ['', '', ''];
  const finish: (string | null)[][] = [[], [], []];
  const roles = [0, 0, 0];
  let usage;
  for await (const chunk of await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } })) {
    usage = chunk.usage ?? usage;
    for (const c of chunk.choices) {
      text[c.index] += c.delta.content ?? '';
      if (c.delta.role) roles[c.index]!++;
      if (c.finish_reason) finish[c.index]!.push(c.finish_reason);
    }
  }
  t.deepEqual(roles, [1, 1, 1]);
  t.deepEqual(text, whole.choices.map((c) => c.message.content));
  t.deepEqual(finish, whole.choices.map((c) => [c.finish_reason]));
  t.deepEqual(usage, whole.usage);
  t.true(await cluster.pagesBack());
});

test.serial('best_of: the candidates of highest cumulative logprob, best first; logprobs only when asked', async (t) => {
  const { client, model } = cluster;
  const body = { model, prompt: partialPrompt, ...sampling, max_tokens: 5, ignore_eos: true } as const;
  // the candidates are the solo requests of seeds 500, 501, 502 (ignore_eos: every token has a logprob)
  const solos: OpenAI.Completion[] = [];
  for (let i = 0; i < 4; i++) solos.push(await client.completions.create({ ...body, seed: 500 + i, logprobs: 0 } as never));
  const score = (s: OpenAI.Completion) => s.choices[0]!.logprobs!.token_logprobs!.reduce((a, b) => a + b!, 0);
  const ranked = [...solos].sort((a, b) => score(b) - score(a));
  const best: OpenAI.Completion = await client.completions.create({ ...body, seed: 500, best_of: 4, n: 2 } as never);
  t.deepEqual(best.choices.map((c) => c.index), [0, 1]);
  t.deepEqual(best.choices.map((c) => c.text), ranked.slice(0, 2).map((s) => s.choices[0]!.text));
  t.is(best.choices[0]!.logprobs, null, 'not asked for');
  t.is(best.usage!.completion_tokens, 4 * 5, 'every candidate generated counts');
  const withLp: OpenAI.Completion = await client.completions.create({ ...body, seed: 500, best_of: 4, logprobs: 1 } as never);
  t.is(withLp.choices.length, 1);
  t.is(withLp.choices[0]!.text, ranked[0]!.choices[0]!.text);
  t.is(withLp.choices[0]!.logprobs!.token_logprobs!.length, 5);
  t.true(await cluster.pagesBack());
});

test.serial('a stop string ends one choice while the others go on; bad n and best_of are 400s naming the field', async (t) => {
  const { client, model } = cluster;
  const plain: OpenAI.Completion = await client.completions.create({ model, prompt: partialPrompt, ...sampling, max_tokens: 12, ignore_eos: true, seed: 900, n: 2 } as never);
  // a stop string from the middle of choice 0's text: choice 0 stops there, choice 1 (other text) most likely runs on
  const t0 = plain.choices[0]!.text;
  const stop = t0.slice(Math.floor(t0.length / 2), Math.floor(t0.length / 2) + 2);
  const cut: OpenAI.Completion = await client.completions.create({ model, prompt: partialPrompt, ...sampling, max_tokens: 12, ignore_eos: true, seed: 900, n: 2, stop } as never);
  t.is(cut.choices[0]!.finish_reason, 'stop');
  t.true(t0.startsWith(cut.choices[0]!.text));
  if (!plain.choices[1]!.text.includes(stop)) {
    t.is(cut.choices[1]!.text, plain.choices[1]!.text);
    t.is(cut.choices[1]!.finish_reason, 'length');
  }
  t.true(await cluster.pagesBack());
  for (const [patch, param] of [[{ n: 0 }, 'n'], [{ n: 17 }, 'n'], [{ n: 2, best_of: 1 }, 'best_of'], [{ best_of: 2, stream: true }, 'best_of']] as const) {
    const err = await t.throwsAsync(client.completions.create({ model, prompt: 'Hi', ...patch } as never));
    t.is((err as { status?: number }).status, 400, JSON.stringify(patch));
    t.is((err as { param?: string }).param, param, JSON.stringify(patch));
  }
});

test.serial('more choices than batch slots wait for slots and still match their solo requests; a client that leaves mid-stream frees every choice\'s pages', async (t) => {
  const { client, model } = cluster;
  // maxBatch 4: the fifth choice waits for a slot, holding its pages
  const body = { model, prompt: partialPrompt, ...sampling, max_tokens: 4, seed: 300 };
  const r = await client.completions.create({ ...body, n: 5 });
  const last = await client.completions.create({ ...body, seed: 304 });
  t.deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3, 4]);
  t.is(r.choices[4]!.text, last.choices[0]!.text);
  t.true(await cluster.pagesBack());

  const abort = new AbortController();
  const res = await fetch(`${cluster.url}/v1/completions`, {
    method: 'POST', signal: abort.signal, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: partialPrompt, max_tokens: 200, temperature: 1, seed: 1, n: 3, stream: true, ignore_eos: true }),
  });
  t.is(res.status, 200);
  const reader = res.body!.getReader();
  await reader.read(); // decoding is under way
  const live = cluster.decode.reduce((a, d) => a + d.stack.engine.stats().running + d.stack.engine.stats().ready, 0);
  t.is(live, 3, 'three choices decoding (or about to)');
  abort.abort();
  t.true(await cluster.pagesBack(1000), 'pages back within 1 s');

  // each choice fits the context, all of them not the cache (64 pages of 16): a 400 that says so
  const err = await t.throwsAsync(client.completions.create({ model, prompt: partialPrompt, max_tokens: 400, n: 3 }));
  t.like(err, { status: 400, code: 'context_length_exceeded' });
  t.regex((err as Error).message, /3 choices need KV cache/);
});

test.serial('echo with logprobs: the prompt\'s logprobs, computed by the prefill, equal a float64 log-softmax of the reference logits; with n = 2 each choice carries them', async (t) => {
  const { client, model } = cluster;
  interface Ref { readonly input_ids: number[]; readonly greedy_ids: number[]; readonly step_logits: number[][] }
  const c = readFixtureJson<{ cases: Ref[] }>('reference.json').cases[0]!;
  // the reference's greedy tokens appended to the prompt: their prompt logprobs come from the logits that chose them
  const k = 3;
  const prompt = [...c.input_ids, ...c.greedy_ids.slice(0, k)];
  const r: OpenAI.Completion = await client.completions.create({ model, prompt, max_tokens: 2, temperature: 1, seed: 3, n: 2, echo: true, logprobs: 3 } as never);
  let worst = 0;
  for (const choice of r.choices) {
    const l = choice.logprobs!;
    t.is(l.tokens!.length, prompt.length + 2);
    t.is(l.token_logprobs![0] as number | null, null);
    for (let j = 0; j < k; j++) {
      const logits = c.step_logits[j]!;
      const mx = Math.max(...logits);
      const lse = mx + Math.log(logits.reduce((s, v) => s + Math.exp(v - mx), 0));
      const at = c.input_ids.length + j;
      worst = Math.max(worst, Math.abs(l.token_logprobs![at]! - (logits[c.greedy_ids[j]!]! - lse)));
      t.is(Object.keys(l.top_logprobs![at]!).length >= 3, true);
    }
    t.deepEqual(l.token_logprobs!.slice(0, prompt.length), r.choices[0]!.logprobs!.token_logprobs!.slice(0, prompt.length), 'the same prompt logprobs for every choice');
  }
  t.true(worst < 1e-3, `worst ${worst}`);
  t.log(`prompt logprobs: worst |Δ| ${worst.toExponential(2)} from float64`);
  t.true(await cluster.pagesBack());
});
