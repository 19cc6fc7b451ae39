// Nothing silently ignored: every OpenAI field the server does not implement is a 400 naming it, through the
// (penalties, logit_bias and logprobs are implemented: logprobs-penalties.test.ts)
// official client and plain fetch alike; its default value, and the fields OpenAI documents as hints or
// bookkeeping, are accepted and change nothing the backend is asked.
import test from 'ava';
import OpenAI from 'openai';
import { EOS, MODEL_ID, REFERENCE } from './helpers/fixture.js';
import { postRaw, startTestGateway } from './helpers/gateway.js';
import { ReplayBackend } from './helpers/replay-backend.js';

const replay = (): ReplayBackend => new ReplayBackend({ script: () => [...REFERENCE[0]!.greedy_ids, EOS] });
const tool = { type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } };

type Endpoint = 'chat' | 'completions';
/** [endpoint, field, a value that asks for something not implemented, code] */
const refused: [Endpoint, string, unknown, 'unsupported_value' | 'unsupported_parameter'][] = [
  // response_format, tools and tool_choice are implemented: structured-output.test.ts
  ['chat', 'functions', [tool.function], 'unsupported_value'],
  ['chat', 'function_call', { name: 'f' }, 'unsupported_value'],
  ['chat', 'modalities', ['text', 'audio'], 'unsupported_value'],
  ['chat', 'audio', { voice: 'alloy', format: 'wav' }, 'unsupported_parameter'],
  ['chat', 'prediction', { type: 'content', content: 'x' }, 'unsupported_parameter'],
  ['chat', 'reasoning_effort', 'low', 'unsupported_parameter'],
  ['chat', 'verbosity', 'low', 'unsupported_parameter'],
  ['chat', 'web_search_options', {}, 'unsupported_parameter'],
  ['chat', 'moderation', { model: 'omni-moderation-latest' }, 'unsupported_parameter'],
  ['chat', 'echo', true, 'unsupported_value'],
  ['completions', 'suffix', ' end', 'unsupported_value'],
];

const base = (e: Endpoint) => (e === 'chat' ? { model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }] } : { model: MODEL_ID, prompt: 'Hi' });

test('explicit fields - each unimplemented field is a 400 naming it, through the official client and plain fetch, before any backend call', async (t) => {
  const backend = replay();
  const { client, base: url } = await startTestGateway(t, backend);
  for (const [endpoint, field, value, code] of refused) {
    const what = `${endpoint} ${field}=${JSON.stringify(value)}`;
    const body = { ...base(endpoint), [field]: value };
    // The client's types do not list every field (repetition_penalty, echo on chat): sent as given.
    const call = endpoint === 'chat' ? client.chat.completions.create(body as never) : client.completions.create(body as never);
    const err = await t.throwsAsync(call, { instanceOf: OpenAI.BadRequestError }, what);
    t.is(err?.param, field, what);
    t.is(err?.code, code, what);
    t.regex(err?.message ?? '', new RegExp(`'${field}'`), what);
    const raw = await postRaw(url, endpoint === 'chat' ? '/chat/completions' : '/completions', JSON.stringify(body));
    t.is(raw.status, 400, what);
    t.deepEqual(Object.keys(raw.json.error).sort(), ['code', 'message', 'param', 'type'], what);
    t.like(raw.json.error, { type: 'invalid_request_error', param: field, code }, what);
  }
  // streaming requests are refused the same way, before the stream opens
  const err = await t.throwsAsync(client.chat.completions.create({ ...base('chat'), stream: true, functions: [tool.function] } as never), { instanceOf: OpenAI.BadRequestError });
  t.is(err?.param, 'functions');
  t.is(backend.calls.length, 0);
});

test('explicit fields - malformed tool messages and tool calls in the conversation are 400s naming them', async (t) => {
  const backend = replay();
  const { base: url } = await startTestGateway(t, backend);
  const call = { id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } };
  const cases: [object[], string][] = [
    [[{ role: 'user', content: 'Hi', tool_calls: [call] }], 'messages[0].tool_calls'],
    [[{ role: 'user', content: 'Hi' }, { role: 'assistant', content: null, tool_calls: [{ ...call, type: 'custom' }] }], 'messages[1].tool_calls[0].type'],
    [[{ role: 'user', content: 'Hi' }, { role: 'tool', content: '1' }], 'messages[1].tool_call_id'],
    [[{ role: 'function', name: 'f', content: '1' }], 'messages[0].role'],
    [[{ role: 'user', content: [{ type: 'text', text: 'Hi', cache_control: {} }] }], 'messages[0].content[0].cache_control'],
  ];
  for (const [messages, param] of cases) {
    const r = await postRaw(url, '/chat/completions', JSON.stringify({ model: MODEL_ID, messages }));
    t.is(r.status, 400, param);
    t.is(r.json.error.param, param);
  }
  t.is(backend.calls.length, 0);
});

test('explicit fields - defaults of unimplemented fields and the accepted-and-ignored fields change nothing the backend is asked', async (t) => {
  const backend = replay();
  const { client } = await startTestGateway(t, backend);
  const plain = { model: MODEL_ID, messages: [{ role: 'user' as const, content: 'Hi' }], seed: 7, max_tokens: 4 };
  await client.chat.completions.create(plain);
  const harmlessChat = {
    ...plain,
    messages: [{ role: 'user' as const, content: [{ type: 'text' as const, text: 'Hi' }], name: 'ann' }],
    logprobs: false, top_logprobs: 0, presence_penalty: 0, frequency_penalty: 0, repetition_penalty: 1, logit_bias: {}, n: 1,
    response_format: { type: 'text' as const }, tools: [], tool_choice: 'none' as const, parallel_tool_calls: true, functions: [], function_call: 'auto' as const,
    modalities: ['text' as const], echo: false, audio: null, prediction: null, reasoning_effort: null, verbosity: null, web_search_options: null, moderation: null,
    user: 'u1', safety_identifier: 'h1', metadata: { team: 'a' }, store: false, service_tier: 'auto' as const,
    prompt_cache_key: 'k', prompt_cache_retention: '24h' as const, prompt_cache_options: { ttl: '30m' },
  };
  await client.chat.completions.create(harmlessChat as never);
  // streaming: stream_options' include_obfuscation is accepted and ignored
  for await (const _ of await client.chat.completions.create({ ...plain, stream: true, stream_options: { include_usage: true, include_obfuscation: true } })) void _;
  const [a, b, s] = backend.calls.map((c) => ({ ...c.request, requestId: '', trace: undefined }));
  t.deepEqual(b, a);
  t.deepEqual(s, a);
  const comp = { model: MODEL_ID, prompt: 'Hi', seed: 7, max_tokens: 4 };
  await client.completions.create(comp);
  await client.completions.create({ ...comp, echo: false, suffix: '', best_of: 1, n: 1, presence_penalty: 0, frequency_penalty: 0, logit_bias: {}, logprobs: null, user: 'u1' });
  const [c, d] = backend.calls.slice(3).map((x) => ({ ...x.request, requestId: '', trace: undefined }));
  t.deepEqual(d, c);
});
