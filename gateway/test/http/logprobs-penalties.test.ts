// The HTTP side of penalties, logit_bias and logprobs (computed on the GPU: integration/test for the real
// thing): ranges are 400s naming the field, accepted values reach the backend as wire fields (defaults as
// nothing), and logprobs from the backend come back in OpenAI's shapes for chat and completions, streamed
// and not, through the official client.
import test from 'ava';
import OpenAI from 'openai';
import { EOS, MODEL_ID, REFERENCE, model } from './helpers/fixture.js';
import { postRaw, startTestGateway } from './helpers/gateway.js';
import { ReplayBackend } from './helpers/replay-backend.js';

const ids = REFERENCE[0]!.greedy_ids;
/** Made-up logprobs: the token's is -id/1000, its alternatives id+1, id+2, ... one lower each. */
const fakeLogprobs = (id: number, top: number) => ({ logprob: -id / 1000, top: Array.from({ length: top }, (_, j) => [(id + j + 1) % 512, -id / 1000 - j - 1] as const) });
const replay = (): ReplayBackend => new ReplayBackend({ script: () => [...ids, EOS], logprobs: fakeLogprobs });
const decode = (id: number) => model().tokenizer.decode([id]);

test('penalties and logit_bias - out-of-range values are 400s naming the field, before any backend call', async (t) => {
  const backend = replay();
  const { base } = await startTestGateway(t, backend);
  const chat = { model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }] };
  const cases: [string, object, string][] = [
    ['/chat/completions', { presence_penalty: 2.5 }, 'presence_penalty'],
    ['/chat/completions', { frequency_penalty: -2.01 }, 'frequency_penalty'],
    ['/chat/completions', { repetition_penalty: 0 }, 'repetition_penalty'],
    ['/chat/completions', { repetition_penalty: -1 }, 'repetition_penalty'],
    ['/chat/completions', { logit_bias: { '512': 1 } }, 'logit_bias'], // the fixture's vocabulary is 512
    ['/chat/completions', { logit_bias: { abc: 1 } }, 'logit_bias'],
    ['/chat/completions', { logit_bias: { '5': 100.5 } }, 'logit_bias'],
    ['/chat/completions', { logit_bias: { '5': '1' } }, 'logit_bias'],
    ['/chat/completions', { logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
    ['/chat/completions', { top_logprobs: 3 }, 'top_logprobs'], // needs logprobs: true, as OpenAI
    ['/chat/completions', { logprobs: 1 }, 'logprobs'],
    ['/completions', { logprobs: 21 }, 'logprobs'],
    ['/completions', { logprobs: -1 }, 'logprobs'],
    ['/completions', { logprobs: true }, 'logprobs'],
  ];
  for (const [path, extra, param] of cases) {
    const body = path === '/completions' ? { model: MODEL_ID, prompt: 'Hi', ...extra } : { ...chat, ...extra };
    const r = await postRaw(base, path, JSON.stringify(body));
    t.is(r.status, 400, JSON.stringify(extra));
    // a bad logit_bias entry is named by its key (logit_bias.abc)
    t.true(r.json.error.param === param || r.json.error.param.startsWith(`${param}.`), `${JSON.stringify(extra)}: ${r.json.error.param}`);
  }
  t.is(backend.calls.length, 0);
});

test('penalties and logit_bias - accepted values reach the backend as wire sampling fields; the prompt set goes with repetition_penalty only', async (t) => {
  const backend = replay();
  const { client } = await startTestGateway(t, backend);
  const prompt = [5, 9, 9, 300];
  await client.completions.create({
    model: MODEL_ID, prompt, max_tokens: 2, presence_penalty: -2, frequency_penalty: 2, logit_bias: { '7': 100, '07': -50, '3': 0, '511': -100 }, logprobs: 3,
    repetition_penalty: 1.3,
  } as never);
  const s = backend.calls[0]!.request.sampling;
  t.like(s, { presencePenalty: -2, frequencyPenalty: 2, repetitionPenalty: 1.3, logprobs: 3 });
  // "7" and "07" name one token: the later wins; a 0 bias changes nothing and is dropped
  t.deepEqual(s.logitBias, [[7, -50], [511, -100]]);
  const set = backend.calls[0]!.request.promptTokenSet!;
  t.is(set.length, 64);
  t.deepEqual([...Array(512).keys()].filter((i) => set[i >> 3]! & (1 << (i & 7))), [5, 9, 300]);
  await client.completions.create({ model: MODEL_ID, prompt, max_tokens: 2, frequency_penalty: 1 });
  t.is(backend.calls[1]!.request.promptTokenSet, undefined);
  t.false('logprobs' in backend.calls[1]!.request.sampling);
  t.false('repetitionPenalty' in backend.calls[1]!.request.sampling);
});

test('logprobs - chat: content entries with token, logprob, bytes and top_logprobs, streamed and not; the stop token has none', async (t) => {
  const { client } = await startTestGateway(t, replay());
  const body = { model: MODEL_ID, messages: [{ role: 'user' as const, content: 'Hi' }], logprobs: true, top_logprobs: 2, max_tokens: 20 };
  const want = ids.map((id) => ({
    token: decode(id), logprob: -id / 1000, bytes: [...Buffer.from(decode(id))],
    top_logprobs: [1, 2].map((j) => ({ token: decode((id + j) % 512), logprob: -id / 1000 - (j - 1) - 1, bytes: [...Buffer.from(decode((id + j) % 512))] })),
  }));
  const r = await client.chat.completions.create(body);
  t.is(r.choices[0]!.finish_reason, 'stop');
  t.deepEqual(r.choices[0]!.logprobs, { content: want, refusal: null });
  const streamed: unknown[] = [];
  for await (const c of await client.chat.completions.create({ ...body, stream: true })) streamed.push(...(c.choices[0]?.logprobs?.content ?? []));
  t.deepEqual(streamed, want);
  // top_logprobs 0: the sampled token's logprob only
  const r0 = await client.chat.completions.create({ ...body, top_logprobs: 0 });
  t.deepEqual(r0.choices[0]!.logprobs!.content!.map((e) => e.top_logprobs), ids.map(() => []));
  // without logprobs: null, as before
  t.is((await client.chat.completions.create({ ...body, logprobs: false, top_logprobs: 0 })).choices[0]!.logprobs, null);
});

test('logprobs - completions: tokens, token_logprobs, top_logprobs (with the sampled token) and text_offset, streamed and not', async (t) => {
  const { client } = await startTestGateway(t, replay());
  const body = { model: MODEL_ID, prompt: 'Hi', logprobs: 1, max_tokens: 5 };
  const five = ids.slice(0, 5);
  const offsets = five.map((_, i) => five.slice(0, i).reduce((n, id) => n + decode(id).length, 0));
  const want = {
    tokens: five.map(decode),
    token_logprobs: five.map((id) => -id / 1000),
    top_logprobs: five.map((id) => ({ [decode((id + 1) % 512)]: -id / 1000 - 1, [decode(id)]: -id / 1000 })),
    text_offset: offsets,
  };
  const r = await client.completions.create(body);
  t.deepEqual(r.choices[0]!.logprobs, want);
  t.is(r.choices[0]!.text, five.map(decode).join(''));
  const got = { tokens: [] as string[], token_logprobs: [] as number[], top_logprobs: [] as unknown[], text_offset: [] as number[] };
  for await (const c of await client.completions.create({ ...body, stream: true })) {
    const lp = c.choices[0]?.logprobs;
    if (!lp) continue;
    got.tokens.push(...lp.tokens!);
    got.token_logprobs.push(...lp.token_logprobs!);
    got.top_logprobs.push(...lp.top_logprobs!);
    got.text_offset.push(...lp.text_offset!);
  }
  t.deepEqual(got, want);
});
