// End to end through the product's own path: the official `openai` client → gateway (HTTP, tokenizer, chat
// template, routing) → a decode node reserves pages → BullMQ → prefill node (naive-order MLA, streams every
// layer's latent KV pages over NATS) → decode node (absorbed MLA, continuous batching) → tokens over NATS →
// SSE. Real nats-server, redis-server and WebGPU; expected tokens come from transformers (reference.json) or
// decoding in this process, and are compared as token ids read off the tokens subjects (wire-tokens.ts);
// the text the client gets is then checked to be those ids' detokenization.
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { openModelFolder } from '@latentwire/model';
import { FIXTURE_DIR, readFixtureJson } from '@latentwire/testing';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { WireTokens } from './helpers/wire-tokens.js';

type OpenAIChat = { choices: { message: { content: string | null } }[] };
interface Case { readonly input_ids: number[]; readonly greedy_ids: number[] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;
const folder = openModelFolder(FIXTURE_DIR);
const eos = new Set(folder.config.eosTokenIds);
const text = (ids: readonly number[]) => folder.tokenizer.decode(ids.filter((t) => !eos.has(t)), { skipSpecialTokens: true });
/** What a node sends for these greedy ids: up to and including the first EOS. */
const sent = (ids: readonly number[]) => {
  const end = ids.findIndex((t) => eos.has(t));
  return end < 0 ? [...ids] : ids.slice(0, end + 1);
};

let cluster: TestCluster;
let wire: WireTokens;
test.before(async () => {
  cluster = await startCluster({ decodeNodes: 2, kvDtype: 'bf16', pageSize: 16, numPages: 64, maxBatch: 16, admissionWaitMs: 1500 });
  wire = new WireTokens(cluster.nc, cluster.prefix);
});
test.after.always(async () => {
  wire?.stop();
  await cluster?.stop();
});

/** Greedy ids of `ids` by this process's own engine (the local path of decode node 0: prefill + absorbed decode). */
function localGreedy(ids: readonly number[], maxTokens: number, sampling = { temperature: 0, topK: 0, topP: 1, seed: 0 }): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const out: number[] = [];
    cluster.decode[0]!.stack.engine.submit({ id: `local-${randomUUID()}`, promptIds: ids, maxTokens, sampling, eosTokenIds: folder.config.eosTokenIds }, {
      onTokens: (t) => out.push(...t),
      onFinish: (reason, _u, err) => (reason === 'error' ? reject(err) : resolve(out)),
    });
  });
}

test.serial('completions: streamed and not, the tokens of in-process greedy decoding, with usage', async (t) => {
  const { client, model } = cluster;
  for (const c of cases) {
    const want = c.greedy_ids.slice(0, 12);
    const res = await client.completions.create({ model, prompt: c.input_ids, max_tokens: 12, temperature: 0 });
    t.deepEqual(await wire.ids(res.id), sent(want));
    t.is(res.choices[0]!.text, text(want));
    t.deepEqual(res.usage, { prompt_tokens: c.input_ids.length, completion_tokens: want.length, total_tokens: c.input_ids.length + want.length });
    t.is(res.choices[0]!.finish_reason, want.some((x) => eos.has(x)) ? 'stop' : 'length');
    const stream = await client.completions.create({ model, prompt: c.input_ids, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let streamed = '', id = '';
    let usage: unknown;
    for await (const chunk of stream) {
      id = chunk.id;
      streamed += chunk.choices[0]?.text ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    t.deepEqual(await wire.ids(id), sent(want));
    t.is(streamed, text(want));
    t.like(usage, { completion_tokens: want.length });
  }
  t.true(await cluster.pagesBack());
});

test.serial('chat: the chat template, streamed and not, equals local greedy decoding; seed makes sampling repeatable', async (t) => {
  const { client, model } = cluster;
  const messages = [{ role: 'user' as const, content: 'Hello, who are you?' }];
  const prompt = folder.chatTemplate!.encode(messages, { addGenerationPrompt: true });
  const want = await localGreedy(prompt, 10);
  const res = await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0 });
  t.deepEqual(await wire.ids(res.id), want);
  t.is(res.choices[0]!.message.content, text(want));
  t.is(res.usage!.prompt_tokens, prompt.length);
  let streamed = '', id = '';
  for await (const chunk of await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0, stream: true })) {
    id = chunk.id;
    streamed += chunk.choices[0]?.delta.content ?? '';
  }
  t.deepEqual(await wire.ids(id), want);
  t.is(streamed, text(want));
  // sampling with a seed: the same text twice, and the text the local engine samples with that seed
  const sampled = { temperature: 0.9, top_p: 0.95, seed: 1234 };
  const a = await client.chat.completions.create({ model, messages, max_tokens: 10, ...sampled });
  const b = await client.chat.completions.create({ model, messages, max_tokens: 10, ...sampled });
  const local = await localGreedy(prompt, 10, { temperature: 0.9, topK: 0, topP: 0.95, seed: 1234 });
  t.deepEqual(await wire.ids(a.id), local);
  t.deepEqual(await wire.ids(b.id), local);
  t.is(a.choices[0]!.message.content, text(local));
  t.true(await cluster.pagesBack());
});

test.serial('chat prefill: continue_final_message continues the partial assistant message, the greedy ids of a completion of the same open prompt', async (t) => {
  const { client, model } = cluster;
  const messages = [{ role: 'user' as const, content: 'What is 2 + 2?' }, { role: 'assistant' as const, content: 'The answer is' }];
  // the open prompt: it ends with the partial content, no end-of-turn token after it
  const open = folder.chatTemplate!.encode(messages, { continueFinalMessage: true });
  t.deepEqual(folder.chatTemplate!.encode(messages), [...open, ...folder.config.eosTokenIds.slice(0, 1)]);
  const want = await localGreedy(open, 10);
  const chat = await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0, continue_final_message: true, add_generation_prompt: false } as never);
  const completion = await client.completions.create({ model, prompt: open, max_tokens: 10, temperature: 0 });
  t.deepEqual(await wire.ids((chat as { id: string }).id), want);
  t.deepEqual(await wire.ids(completion.id), want);
  t.is((chat as OpenAIChat).choices[0]!.message.content, completion.choices[0]!.text);
  t.is(completion.usage!.prompt_tokens, open.length);
  t.true(await cluster.pagesBack());
});

test.serial('stop strings end the text before them (never emitted); max_tokens gives length', async (t) => {
  const { client, model } = cluster;
  const c = cases[0]!;
  const full = text(c.greedy_ids.slice(0, 12));
  const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
  const res = await client.completions.create({ model, prompt: c.input_ids, max_tokens: 12, temperature: 0, stop: [stop] });
  t.is(res.choices[0]!.text, full.slice(0, full.indexOf(stop)));
  t.is(res.choices[0]!.finish_reason, 'stop');
  const short = await client.completions.create({ model, prompt: c.input_ids, max_tokens: 3, temperature: 0 });
  t.is(short.choices[0]!.finish_reason, 'length');
  t.is(short.usage!.completion_tokens, 3);
  t.true(await cluster.pagesBack());
});

test.serial('32 concurrent streams spread over both decode nodes, every one exact; pages return', async (t) => {
  const { client, model } = cluster;
  const steps = cluster.decode.map((d) => d.stack.engine.steps);
  const results = await Promise.all(Array.from({ length: 32 }, async (_, i) => {
    const c = cases[i % cases.length]!;
    let s = '', id = '';
    for await (const chunk of await client.completions.create({ model, prompt: c.input_ids, max_tokens: 8, temperature: 0, stream: true })) {
      id = chunk.id;
      s += chunk.choices[0]?.text ?? '';
    }
    const want = c.greedy_ids.slice(0, 8);
    return JSON.stringify(await wire.ids(id)) === JSON.stringify(sent(want)) && s === text(want);
  }));
  t.is(results.filter(Boolean).length, 32);
  const used = cluster.decode.map((d, i) => d.stack.engine.steps - steps[i]!);
  t.log(`decode steps per node: ${used.join(', ')}`);
  t.true(used.every((n) => n > 0), 'both nodes decoded');
  t.true(await cluster.pagesBack(), 'every page returned');
});

test.serial('a client that disconnects mid-stream frees the sequence\'s pages within a second', async (t) => {
  const abort = new AbortController();
  const res = await fetch(`${cluster.url}/v1/completions`, {
    method: 'POST', signal: abort.signal, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: cluster.model, prompt: cases[1]!.input_ids, max_tokens: 400, temperature: 0, stream: true, ignore_eos: true }),
  });
  const reader = res.body!.getReader();
  await reader.read(); // the first chunk: decoding is under way
  const busy = cluster.decode.map((d) => d.stack.engine.stats().running).reduce((a, b) => a + b, 0);
  t.is(busy, 1);
  const t0 = Date.now();
  abort.abort();
  t.true(await cluster.pagesBack(1000), 'pages back within 1 s');
  t.log(`pages back after ${Date.now() - t0} ms`);
});

test.serial('a request no node can hold waits, then gets 429 with Retry-After; bad requests get 400s', async (t) => {
  // fill both pools with reservations (the engine's own API, as a prefill that never arrives would)
  for (const d of cluster.decode) d.stack.engine.reserve('hog', 60 * 16);
  const res = await fetch(`${cluster.url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: cluster.model, prompt: cases[0]!.input_ids, max_tokens: 200, temperature: 0 }),
  });
  t.is(res.status, 429);
  t.truthy(res.headers.get('retry-after'));
  t.like(await res.json(), { error: { type: 'invalid_request_error' } });
  for (const d of cluster.decode) d.stack.engine.cancel('hog');
  t.true(await cluster.pagesBack());
  const post = (body: string) => fetch(`${cluster.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const malformed = await post('{"model": ');
  t.is(malformed.status, 400);
  const wrongType = await post(JSON.stringify({ model: cluster.model, messages: [{ role: 'user', content: 'hi' }], temperature: 'hot' }));
  t.is(wrongType.status, 400);
  t.like(await wrongType.json(), { error: { param: 'temperature' } });
  const tooLong = await fetch(`${cluster.url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: cluster.model, prompt: Array.from({ length: 1100 }, () => 5), max_tokens: 4 }),
  });
  t.is(tooLong.status, 400);
  t.like(await tooLong.json(), { error: { code: 'context_length_exceeded' } });
});

test.serial('forged and malformed NATS messages are rejected and counted; every service keeps serving', async (t) => {
  const { nc, prefix } = cluster;
  const garbage = new Uint8Array([0xc1, 0xff, 0x00, 0x13]);
  const before = cluster.decode[0]!.service.rejections.count('malformed');
  for (const d of cluster.decode) {
    for (const what of ['reserve', 'kv', 'control']) nc.publish(`${prefix}.decode.${d.id}.${what}`, garbage);
  }
  nc.publish(`${prefix}.heartbeat`, garbage);
  nc.publish(`${prefix}.prefill.cancel`, garbage);
  await nc.flush();
  await new Promise((r) => setTimeout(r, 300));
  t.is(cluster.decode[0]!.service.rejections.count('malformed') - before, 3);
  const c = cases[2]!;
  const res = await cluster.client.completions.create({ model: cluster.model, prompt: c.input_ids, max_tokens: 6, temperature: 0 });
  t.deepEqual(await wire.ids(res.id), sent(c.greedy_ids.slice(0, 6)));
  t.is(res.choices[0]!.text, text(c.greedy_ids.slice(0, 6)));
});

test.serial('a decode node that leaves the pool: its heartbeats stop, the gateway drops it, new requests go to the other', async (t) => {
  const [gone, stays] = cluster.decode as [typeof cluster.decode[0], typeof cluster.decode[0]];
  await gone.service.stop();
  const until = Date.now() + 5000;
  while (cluster.gateway.registry.nodes().some((n) => n.nodeId === gone.id) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(cluster.gateway.registry.nodes().map((n) => n.nodeId), [stays.id]);
  const steps = stays.stack.engine.steps;
  const results = await Promise.all(cases.map((c) => cluster.client.completions.create({ model: cluster.model, prompt: c.input_ids, max_tokens: 6, temperature: 0 })));
  t.deepEqual(await Promise.all(results.map((r) => wire.ids(r.id))), cases.map((c) => sent(c.greedy_ids.slice(0, 6))));
  t.deepEqual(results.map((r) => r.choices[0]!.text), cases.map((c) => text(c.greedy_ids.slice(0, 6))));
  t.true(stays.stack.engine.steps > steps, 'the remaining node served them');
});
