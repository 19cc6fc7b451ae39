// POST /tokenize and /detokenize as vLLM serves them, and assistant prefill (continue_final_message) as the
// chat endpoint renders it: golden ids of the fixture, the same ids a generation request sends, 400s.
import test from 'ava';
import OpenAI from 'openai';
import { EOS, MODEL_ID, REFERENCE, model } from './helpers/fixture.js';
import { startTestGateway } from './helpers/gateway.js';
import { ReplayBackend } from './helpers/replay-backend.js';

const c = REFERENCE[0]!;
const replay = (): ReplayBackend => new ReplayBackend({ script: () => [...c.greedy_ids, EOS] });
const post = async (url: string, path: string, body: unknown): Promise<{ status: number; json: any }> => {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
};
/** The user turn and a partial answer; continued, the prompt ends with "The answer is" (golden ids). */
const prefill = [{ role: 'user' as const, content: 'What is 2 + 2?' }, { role: 'assistant' as const, content: 'The answer is' }];
const OPEN = [0, 54, 483, 27, 222, 56, 73, 273, 309, 222, 19, 222, 12, 222, 19, 32, 200, 200, 34, 395, 74, 280, 66, 299, 27, 439, 400, 84, 88, 275, 309];

test('tokenize - a prompt gives the reference input_ids (bos added, as /v1/completions), count and max_model_len', async (t) => {
  const { gw } = await startTestGateway(t, replay());
  for (const body of [{ prompt: c.prompt }, { model: MODEL_ID, prompt: c.prompt }]) {
    const r = await post(gw.url, '/tokenize', body);
    t.is(r.status, 200);
    t.deepEqual(r.json, { count: c.input_ids.length, max_model_len: 2048, tokens: c.input_ids });
  }
  const back = await post(gw.url, '/detokenize', { tokens: c.input_ids });
  t.is(back.status, 200);
  // special tokens are kept, as vLLM's /detokenize does
  t.deepEqual(back.json, { prompt: `<｜begin▁of▁sentence｜>${c.prompt}` });
  t.deepEqual((await post(gw.url, '/detokenize', { model: MODEL_ID, tokens: [] })).json, { prompt: '' });
});

test('tokenize - messages give exactly the ids a chat request sends; add_generation_prompt and continue_final_message as vLLM', async (t) => {
  const backend = replay();
  const { gw, client } = await startTestGateway(t, backend);
  const messages = [{ role: 'user' as const, content: 'Hello, who are you?' }];
  const tok = await post(gw.url, '/tokenize', { messages });
  await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 2 });
  t.deepEqual(tok.json.tokens, backend.calls[0]!.request.promptIds);
  t.deepEqual(tok.json.tokens, model().chatTemplate!.encode(messages, { addGenerationPrompt: true }));
  const closed = await post(gw.url, '/tokenize', { messages: prefill, add_generation_prompt: false });
  t.deepEqual(closed.json.tokens, [...OPEN, EOS]);
  const open = await post(gw.url, '/tokenize', { messages: prefill, continue_final_message: true, add_generation_prompt: false });
  t.deepEqual(open.json.tokens, OPEN);
});

test('prefill - continue_final_message sends the golden open prompt (no eos after the partial answer); alone it implies add_generation_prompt false', async (t) => {
  const backend = replay();
  const { client } = await startTestGateway(t, backend);
  type Prefill = OpenAI.ChatCompletionCreateParamsNonStreaming & { continue_final_message?: boolean; add_generation_prompt?: boolean };
  const req: Prefill = { model: MODEL_ID, messages: prefill, max_tokens: 3, continue_final_message: true, add_generation_prompt: false };
  const r = await client.chat.completions.create(req);
  t.deepEqual(backend.calls[0]!.request.promptIds, OPEN);
  // The reply is the continuation only: the partial message is not repeated (as vLLM's default, echo off).
  t.is(r.choices[0]!.message.content, model().tokenizer.decode(c.greedy_ids.slice(0, 3), { skipSpecialTokens: true }));
  await client.chat.completions.create({ ...req, add_generation_prompt: undefined } as Prefill);
  t.deepEqual(backend.calls[1]!.request.promptIds, OPEN);
  // The default (a generation prompt) closes the assistant turn and opens a new one.
  await client.chat.completions.create({ model: MODEL_ID, messages: prefill, max_tokens: 1 });
  t.deepEqual(backend.calls[2]!.request.promptIds, [...OPEN, EOS, ...model().tokenizer.encode('Assistant:', { addBos: false })]);
});

test('prefill - both flags true, or a final message that is not the assistant\'s, are 400s naming the field', async (t) => {
  const backend = replay();
  const { gw, client } = await startTestGateway(t, backend);
  const both = { model: MODEL_ID, messages: prefill, continue_final_message: true, add_generation_prompt: true };
  const err = await t.throwsAsync(client.chat.completions.create(both as never), { instanceOf: OpenAI.BadRequestError });
  t.is(err?.param, 'continue_final_message');
  t.regex(err?.message ?? '', /Cannot set both `continue_final_message` and `add_generation_prompt`/);
  t.like((await post(gw.url, '/tokenize', both)).json.error, { param: 'continue_final_message', type: 'invalid_request_error' });
  const user = await post(gw.url, '/v1/chat/completions', { model: MODEL_ID, messages: [prefill[0]], continue_final_message: true });
  t.is(user.status, 400);
  t.like(user.json.error, { param: 'messages' });
  t.regex(user.json.error.message, /last message must be an assistant message/);
  t.is(backend.calls.length, 0);
});

test('tokenize - bad bodies are OpenAI-style 400s naming the field; an unknown model is a 404', async (t) => {
  const { gw } = await startTestGateway(t, replay());
  const cases: [string, unknown, number, string | null][] = [
    ['/tokenize', {}, 400, 'prompt'],
    ['/tokenize', { prompt: 5 }, 400, 'prompt'],
    ['/tokenize', { prompt: 'x', add_special_tokens: false }, 400, 'add_special_tokens'],
    ['/tokenize', { messages: [] }, 400, 'messages'],
    ['/tokenize', { messages: [{ role: 'user' }] }, 400, 'messages[0].content'],
    ['/tokenize', { messages: prefill, add_generation_prompt: 'yes' }, 400, 'add_generation_prompt'],
    ['/tokenize', { model: 'gpt-4o', prompt: 'x' }, 404, null],
    ['/detokenize', {}, 400, 'tokens'],
    ['/detokenize', { tokens: [1, -2] }, 400, 'tokens[1]'],
    ['/detokenize', { tokens: [1, 2.5] }, 400, 'tokens[1]'],
    ['/detokenize', { tokens: [1, 99999] }, 400, 'tokens'],
    ['/detokenize', { tokens: 'abc' }, 400, 'tokens'],
    ['/detokenize', { model: 'gpt-4o', tokens: [1] }, 404, null],
  ];
  for (const [path, body, status, param] of cases) {
    const r = await post(gw.url, path, body);
    const what = `${path} ${JSON.stringify(body)}`;
    t.is(r.status, status, what);
    t.like(r.json.error, { type: 'invalid_request_error', param }, what);
  }
  // a prompt longer than the context is counted: the client learns by how much
  const long = await post(gw.url, '/tokenize', { prompt: 'word '.repeat(2100) });
  t.is(long.status, 200);
  t.true(long.json.count > long.json.max_model_len);
});
