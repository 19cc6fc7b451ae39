// Request parameters: what reaches the backend, and OpenAI-style 400s for everything malformed, checked
// before any backend call.
import test from 'ava';
import OpenAI from 'openai';
import { EOS, MODEL_ID, REFERENCE } from './helpers/fixture.js';
import { postRaw, startTestGateway } from './helpers/gateway.js';
import { ReplayBackend } from './helpers/replay-backend.js';

const c = REFERENCE[0]!;
const replay = (maxRequestTokens?: number): ReplayBackend =>
  new ReplayBackend({ script: () => [...c.greedy_ids, EOS], ...(maxRequestTokens === undefined ? {} : { maxRequestTokens }) });
/** Our extensions (top_k, ignore_eos, stop_token_ids) go through the official client as extra body fields. */
type WithExtensions<T> = T & { top_k?: number; ignore_eos?: boolean; stop_token_ids?: number[] };

test('parameters - temperature, top_p, top_k and seed (mod 2^32) reach the backend', async (t) => {
  const backend = replay();
  const { client } = await startTestGateway(t, backend);
  const chat: WithExtensions<OpenAI.ChatCompletionCreateParamsNonStreaming> = {
    model: MODEL_ID,
    messages: [{ role: 'user', content: 'Hi' }],
    temperature: 0.7,
    top_p: 0.9,
    top_k: 40,
    seed: 1234,
  };
  await client.chat.completions.create(chat);
  const completion: WithExtensions<OpenAI.CompletionCreateParamsNonStreaming> = { model: MODEL_ID, prompt: 'Hi', temperature: 0, top_p: 0.25, top_k: 1, seed: -5 };
  await client.completions.create(completion);
  t.deepEqual(backend.calls[0]!.request.sampling, { temperature: 0.7, topP: 0.9, topK: 40, seed: 1234 });
  // a negative seed is taken modulo 2^32 (the sampler's seed width, and what the wire carries)
  t.deepEqual(backend.calls[1]!.request.sampling, { temperature: 0, topP: 0.25, topK: 1, seed: 2 ** 32 - 5 });
});

test('parameters - defaults: OpenAI sampling, a fresh random seed per request, max_tokens 16 for completions and DEFAULT_MAX_TOKENS or what fits for chat', async (t) => {
  const backend = replay();
  const { client } = await startTestGateway(t, backend);
  await client.completions.create({ model: MODEL_ID, prompt: c.prompt });
  await client.completions.create({ model: MODEL_ID, prompt: c.prompt, temperature: null, seed: null });
  const [a, b] = backend.calls.map((x) => x.request);
  // generation_config.json of the tiny model does not ask for sampling, so OpenAI's defaults apply.
  t.like(a!.sampling, { temperature: 1, topP: 1, topK: 0 });
  t.true(Number.isInteger(a!.sampling.seed) && Number.isInteger(b!.sampling.seed));
  t.not(a!.sampling.seed, b!.sampling.seed); // 1 in 2^32 to fail by chance
  t.is(a!.maxTokens, 16);
  await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }] });
  t.is(backend.calls.at(-1)!.request.maxTokens, 1024);
  t.deepEqual(a!.stopTokenIds, [EOS]);
  t.false(a!.ignoreEos);
  t.true(a!.requestId.length > 0 && a!.requestId !== b!.requestId);
});

test('parameters - ignore_eos drops EOS from the stop ids; stop_token_ids are added', async (t) => {
  const backend = new ReplayBackend({ script: () => [...c.greedy_ids, EOS, ...c.greedy_ids] });
  const { client } = await startTestGateway(t, backend);
  const req: WithExtensions<OpenAI.CompletionCreateParamsNonStreaming> = { model: MODEL_ID, prompt: 'Hi', ignore_eos: true, stop_token_ids: [7, 9], max_tokens: 20 };
  const r = await client.completions.create(req);
  t.deepEqual(backend.calls[0]!.request.stopTokenIds, [7, 9]);
  t.true(backend.calls[0]!.request.ignoreEos);
  // Generation ran past EOS to max_tokens.
  t.is(r.choices[0]!.finish_reason, 'length');
  t.is(r.usage!.completion_tokens, 20);
});

test('parameters - an unknown field is a 400 naming it (nothing is silently ignored), at the top level and in a message', async (t) => {
  const backend = replay();
  const { base } = await startTestGateway(t, backend);
  const r = await postRaw(base, '/completions', JSON.stringify({ model: MODEL_ID, prompt: 'Hi', max_tokens: 2, user: 'u1', frobnicate: { x: 1 } }));
  t.is(r.status, 400);
  t.deepEqual(r.json, { error: { message: 'Unrecognized request argument supplied: frobnicate', type: 'invalid_request_error', param: 'frobnicate', code: 'unknown_parameter' } });
  const m = await postRaw(base, '/chat/completions', JSON.stringify({ model: MODEL_ID, messages: [{ role: 'user', content: 'Hi', mood: 'x' }] }));
  t.like(m.json.error, { param: 'messages[0].mood', code: 'unknown_parameter' });
  t.is(backend.calls.length, 0);
});

/** Sends each body and expects a 400 with OpenAI's error shape naming `param`, with no backend call. */
const badRequests: [string, string, Record<string, unknown>, string | null, RegExp][] = [
  ['/chat/completions', 'n=0', { n: 0 }, 'n', /Invalid value for 'n'/],
  ['/chat/completions', 'n=1.5', { n: 1.5 }, 'n', /expected int/],
  ['/chat/completions', 'n past MAX_N', { n: 17 }, 'n', /at most 16 choices/],
  ['/completions', 'n past the wire bound', { n: 129 }, 'n', /Invalid value for 'n'/],
  ['/completions', 'best_of < n', { n: 3, best_of: 2 }, 'best_of', /best_of \(2\) must be greater than or equal to n \(3\)/],
  ['/completions', 'best_of past MAX_N', { best_of: 17 }, 'best_of', /at most 16 candidates/],
  ['/completions', 'best_of with stream', { best_of: 2, stream: true }, 'best_of', /cannot be used with 'stream'/],
  ['/chat/completions', 'best_of on chat', { best_of: 2 }, 'best_of', /Unrecognized request argument supplied: best_of/],
  ['/chat/completions', 'temperature "hot"', { temperature: 'hot' }, 'temperature', /expected number, received string/],
  ['/chat/completions', 'temperature 2.5', { temperature: 2.5 }, 'temperature', /<=2/],
  ['/chat/completions', 'max_tokens -1', { max_tokens: -1 }, 'max_tokens', /Invalid value for 'max_tokens'/],
  ['/completions', 'max_tokens 1.5', { max_tokens: 1.5 }, 'max_tokens', /expected int/],
  ['/chat/completions', 'max_completion_tokens 0', { max_completion_tokens: 0 }, 'max_completion_tokens', /Invalid value/],
  ['/chat/completions', 'top_p 0', { top_p: 0 }, 'top_p', /Invalid value/],
  ['/chat/completions', 'top_k -1', { top_k: -1 }, 'top_k', /Invalid value/],
  ['/chat/completions', 'seed 1.5', { seed: 1.5 }, 'seed', /Invalid value/],
  ['/chat/completions', 'five stop strings', { stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', /up to 4 strings/],
  ['/chat/completions', 'stop as a number', { stop: 3 }, 'stop', /a string or an array/],
  ['/chat/completions', 'stream "yes"', { stream: 'yes' }, 'stream', /expected boolean/],
  ['/chat/completions', 'stream_options without stream', { stream_options: { include_usage: true } }, 'stream_options', /only allowed when 'stream' is enabled/],
  ['/chat/completions', 'messages not an array', { messages: 'Hi' }, 'messages', /expected array/],
  ['/chat/completions', 'no messages', { messages: [] }, 'messages', /Invalid value/],
  ['/chat/completions', 'a tool message without tool_call_id', { messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].tool_call_id', /needs the tool_call_id/],
  ['/chat/completions', 'an image part', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages[0].content', /text parts/],
  ['/chat/completions', 'a user message without content', { messages: [{ role: 'user' }] }, 'messages[0].content', /needs content/],
  ['/chat/completions', 'stop_token_ids outside the vocabulary', { stop_token_ids: [512] }, 'stop_token_ids', /outside the vocabulary/],
  ['/completions', 'two prompts', { prompt: ['a', 'b'] }, 'prompt', /one prompt per request/],
  ['/completions', 'prompt ids outside the vocabulary', { prompt: [5, 99999] }, 'prompt', /outside the vocabulary/],
  ['/completions', 'no prompt', { prompt: undefined }, 'prompt', /Missing required parameter: 'prompt'/],
  ['/completions', 'no model', { model: undefined }, 'model', /Missing required parameter: 'model'/],
];

test('parameters - wrong types and ranges are 400s naming the parameter, before any backend call', async (t) => {
  const backend = replay();
  const { base } = await startTestGateway(t, backend);
  for (const [path, what, patch, param, message] of badRequests) {
    const body = { model: MODEL_ID, ...(path === '/completions' ? { prompt: 'Hi' } : { messages: [{ role: 'user', content: 'Hi' }] }), ...patch };
    const r = await postRaw(base, path, JSON.stringify(body));
    t.is(r.status, 400, what);
    t.deepEqual(Object.keys(r.json), ['error'], what);
    t.like(r.json.error, { type: 'invalid_request_error', param }, what);
    t.regex(r.json.error.message, message, what);
  }
  t.is(backend.calls.length, 0);
});

test('parameters - the official client surfaces n past MAX_N as a BadRequestError', async (t) => {
  const { client } = await startTestGateway(t, replay());
  const err = await t.throwsAsync(client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }], n: 17 }), {
    instanceOf: OpenAI.BadRequestError,
  });
  t.is(err!.status, 400);
  t.is(err!.param, 'n');
});

test('parameters - malformed JSON, a non-object body and an empty body are 400s with an OpenAI body', async (t) => {
  const backend = replay();
  const { base } = await startTestGateway(t, backend);
  for (const [body, param] of [['{"model": "tiny-deepseek-v2", "messages": [', null], ['[1, 2]', null], ['"text"', null], ['', 'model']] as const) {
    const r = await postRaw(base, '/chat/completions', body);
    t.is(r.status, 400, body);
    t.like(r.json.error, { type: 'invalid_request_error', param, code: null }, body);
    t.is(typeof r.json.error.message, 'string');
  }
  const r = await postRaw(base, '/chat/completions', '{"model": ');
  t.regex(r.json.error.message, /could not parse the JSON body/);
  t.is(backend.calls.length, 0);
});

test('parameters - an unknown model is a 404 model_not_found, as at OpenAI', async (t) => {
  const backend = replay();
  const { client } = await startTestGateway(t, backend);
  const err = await t.throwsAsync(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] }), {
    instanceOf: OpenAI.NotFoundError,
  });
  t.like(err!.error, { code: 'model_not_found', type: 'invalid_request_error' });
  t.is(backend.calls.length, 0);
});

test('parameters - prompt + max_tokens beyond the model context is context_length_exceeded without a backend call', async (t) => {
  const backend = replay();
  const { client } = await startTestGateway(t, backend);
  const over = await t.throwsAsync(client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 2048 - c.input_ids.length + 1 }), {
    instanceOf: OpenAI.BadRequestError,
  });
  t.like(over!.error, { code: 'context_length_exceeded', param: 'prompt' });
  t.regex(over!.message, /maximum context length is 2048 tokens.*requested 2049 tokens/);
  // A prompt that alone fills the context, with max_tokens left to default.
  const long = Array.from({ length: 2048 }, (_, i) => 2 + (i % 500));
  const full = await t.throwsAsync(client.completions.create({ model: MODEL_ID, prompt: long }), { instanceOf: OpenAI.BadRequestError });
  t.like(full!.error, { code: 'context_length_exceeded' });
  const chat = await t.throwsAsync(
    client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'word '.repeat(2100) }] }),
    { instanceOf: OpenAI.BadRequestError },
  );
  t.like(chat!.error, { code: 'context_length_exceeded', param: 'messages' });
  t.is(backend.calls.length, 0);
  // Exactly the context is fine.
  await client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 2048 - c.input_ids.length });
  t.is(backend.calls.length, 1);
});

test('parameters - a prompt longer than the prefill workers take (maxPromptTokens) is a 400 before anything is queued, on both endpoints', async (t) => {
  const limit = c.input_ids.length - 1;
  const backend = new ReplayBackend({ script: () => [...c.greedy_ids, EOS], maxPromptTokens: limit });
  const { client, gw } = await startTestGateway(t, backend);
  const err = await t.throwsAsync(client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 4 }), { instanceOf: OpenAI.BadRequestError });
  t.like(err!.error, { code: 'context_length_exceeded', param: 'prompt' });
  t.regex(err!.message, new RegExp(`prompts of at most ${limit} tokens .*resulted in ${c.input_ids.length} tokens`));
  const chat = await t.throwsAsync(client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: c.prompt.repeat(4) }], max_tokens: 4 }), { instanceOf: OpenAI.BadRequestError });
  t.like(chat!.error, { code: 'context_length_exceeded', param: 'messages' });
  t.is(backend.calls.length, 0);
  const health = await (await fetch(`${gw.url}/health`)).json() as { max_prompt_tokens: number };
  t.is(health.max_prompt_tokens, limit);
  // a prompt at the limit goes through
  await client.completions.create({ model: MODEL_ID, prompt: c.input_ids.slice(0, limit), max_tokens: 2 });
  t.is(backend.calls.length, 1);
});

test('parameters - the backend limit (maxRequestTokens) is checked too, and bounds the default max_tokens', async (t) => {
  const limit = c.input_ids.length + 3;
  const backend = replay(limit);
  const { client } = await startTestGateway(t, backend);
  const err = await t.throwsAsync(client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 4 }), { instanceOf: OpenAI.BadRequestError });
  t.like(err!.error, { code: 'context_length_exceeded' });
  t.regex(err!.message, new RegExp(`at most ${limit} tokens`));
  t.is(backend.calls.length, 0);
  const r = await client.completions.create({ model: MODEL_ID, prompt: c.prompt });
  t.is(backend.calls[0]!.request.maxTokens, 3);
  t.is(r.choices[0]!.finish_reason, 'length');
});
