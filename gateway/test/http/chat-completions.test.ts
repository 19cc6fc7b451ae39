// /v1/chat/completions through the official client: the chat template's golden prompt ids, streamed and
// whole responses, OpenAI's chunk sequence.
import test from 'ava';
import type OpenAI from 'openai';
import { EOS, MODEL_ID, REFERENCE, model } from './helpers/fixture.js';
import { postSse, startTestGateway } from './helpers/gateway.js';
import { ReplayBackend } from './helpers/replay-backend.js';

const tok = model().tokenizer;
const reply = REFERENCE[0]!.greedy_ids;
const replyText = tok.decode(reply, { skipSpecialTokens: true });
const chatBackend = (): ReplayBackend => new ReplayBackend({ script: () => [...reply, EOS] });

const BOS = '<｜begin▁of▁sentence｜>';
const EOS_TEXT = '<｜end▁of▁sentence｜>';

test('chat - messages are rendered with the model template (add_generation_prompt) into golden ids', async (t) => {
  const backend = chatBackend();
  const { client } = await startTestGateway(t, backend);
  await client.chat.completions.create({
    model: MODEL_ID,
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'What is 2 + 2?' },
      { role: 'assistant', content: '4' },
      // Text parts are joined with newlines.
      { role: 'user', content: [{ type: 'text', text: 'And 3 + 3?' }, { type: 'text', text: 'Thanks.' }] },
    ],
  });
  await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'developer', content: 'Be brief.' }, { role: 'user', content: 'Hi' }] });
  const expected = [
    `${BOS}Be brief.\n\nUser: What is 2 + 2?\n\nAssistant: 4${EOS_TEXT}User: And 3 + 3?\nThanks.\n\nAssistant:`,
    `${BOS}Be brief.\n\nUser: Hi\n\nAssistant:`,
  ];
  t.deepEqual(
    backend.calls.map((c) => c.request.promptIds),
    expected.map((s) => tok.encode(s, { addBos: false })),
  );
  t.is(backend.calls[1]!.request.promptIds[0], 0); // one bos, written by the template
  t.is(backend.calls[1]!.request.promptIds.filter((id) => id === 0).length, 1);
});

test('chat - a whole response: chat.completion, assistant message, finish_reason and usage', async (t) => {
  const backend = chatBackend();
  const { client } = await startTestGateway(t, backend);
  const r = await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }] });
  const promptTokens = backend.calls[0]!.request.promptIds.length;
  t.is(r.object, 'chat.completion');
  t.true(r.id.startsWith('chatcmpl-'));
  t.is(r.model, MODEL_ID);
  t.regex(r.system_fingerprint!, /^fp_[0-9a-f]{10}$/);
  t.deepEqual(r.choices, [{ index: 0, message: { role: 'assistant', content: replyText, refusal: null }, logprobs: null, finish_reason: 'stop' }]);
  t.deepEqual(r.usage, { prompt_tokens: promptTokens, completion_tokens: reply.length + 1, total_tokens: promptTokens + reply.length + 1 });
});

test('chat - max_completion_tokens and max_tokens both cap the reply with finish_reason length', async (t) => {
  const backend = chatBackend();
  const { client } = await startTestGateway(t, backend);
  const a = await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }], max_completion_tokens: 4 });
  const b = await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3 });
  // The newer name wins when both are sent.
  await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 9, max_completion_tokens: 2 });
  t.deepEqual(backend.calls.map((c) => c.request.maxTokens), [4, 3, 2]);
  t.is(a.choices[0]!.finish_reason, 'length');
  t.is(a.choices[0]!.message.content, tok.decode(reply.slice(0, 4), { skipSpecialTokens: true }));
  t.is(a.usage!.completion_tokens, 4);
  t.is(b.usage!.completion_tokens, 3);
});

test('chat - streamed deltas: role first, content equal to the whole reply, empty final delta with finish_reason', async (t) => {
  const { client } = await startTestGateway(t, chatBackend());
  const stream = await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }], stream: true });
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const c of stream) chunks.push(c);
  t.true(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id && c.id.startsWith('chatcmpl-')));
  t.deepEqual(chunks[0]!.choices[0]!.delta, { role: 'assistant', content: '' });
  t.deepEqual(chunks.at(-1)!.choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]);
  const middle = chunks.slice(1, -1);
  t.true(middle.every((c) => c.choices[0]!.finish_reason === null && c.choices[0]!.delta.content !== ''));
  t.is(middle.map((c) => c.choices[0]!.delta.content).join(''), replyText);
  t.false('usage' in chunks[0]!); // only with include_usage
});

test('chat - SSE with include_usage: usage null on every chunk, a usage chunk with no choices, then [DONE]', async (t) => {
  const backend = chatBackend();
  const { base } = await startTestGateway(t, backend);
  const { status, frames } = await postSse(base, '/chat/completions', {
    model: MODEL_ID,
    messages: [{ role: 'user', content: 'Hi' }],
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: 5,
  });
  t.is(status, 200);
  t.is(frames.at(-1), '[DONE]');
  t.false(frames.slice(0, -1).includes('[DONE]'));
  const chunks = frames.slice(0, -1).map((f) => JSON.parse(f));
  const promptTokens = backend.calls[0]!.request.promptIds.length;
  t.deepEqual(chunks.at(-1).choices, []);
  t.deepEqual(chunks.at(-1).usage, { prompt_tokens: promptTokens, completion_tokens: 5, total_tokens: promptTokens + 5 });
  t.is(chunks.at(-2).choices[0].finish_reason, 'length');
  t.true(chunks.slice(0, -1).every((c) => c.usage === null));
  t.is(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), tok.decode(reply.slice(0, 5), { skipSpecialTokens: true }));
});
