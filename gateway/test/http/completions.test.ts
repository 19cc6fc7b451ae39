// /v1/completions through the official client, replaying the model's transformers reference outputs.
import test from 'ava';
import { EOS, MODEL_ID, REFERENCE, model } from './helpers/fixture.js';
import { postSse, startTestGateway } from './helpers/gateway.js';
import { ReplayBackend } from './helpers/replay-backend.js';

const tok = model().tokenizer;
/** Replays each reference case's greedy ids (found by its prompt ids), then EOS. */
const referenceBackend = (tokensPerEvent = 1): ReplayBackend =>
  new ReplayBackend({
    tokensPerEvent,
    script: (req) => {
      const c = REFERENCE.find((r) => r.input_ids.join() === req.promptIds.join());
      if (!c) throw new Error('prompt is not a reference case');
      return [...c.greedy_ids, EOS];
    },
  });

test('completions - text prompts encode to the reference input_ids and the text is the detokenized greedy ids', async (t) => {
  const backend = referenceBackend();
  const { client } = await startTestGateway(t, backend);
  for (const c of REFERENCE) {
    const r = await client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 32 });
    t.deepEqual(backend.calls.at(-1)!.request.promptIds, c.input_ids);
    t.is(r.object, 'text_completion');
    t.is(r.model, MODEL_ID);
    t.true(r.id.startsWith('cmpl-'));
    t.is(r.choices.length, 1);
    t.is(r.choices[0]!.text, tok.decode(c.greedy_ids, { skipSpecialTokens: true }));
    t.is(r.choices[0]!.finish_reason, 'stop'); // EOS
    // EOS is a generated token: counted, never shown.
    t.deepEqual(r.usage, { prompt_tokens: c.input_ids.length, completion_tokens: c.greedy_ids.length + 1, total_tokens: c.input_ids.length + c.greedy_ids.length + 1 });
  }
});

test('completions - token id prompts, bare or in a one-element array, reach the backend unchanged', async (t) => {
  const backend = referenceBackend();
  const { client } = await startTestGateway(t, backend);
  const c = REFERENCE[0]!;
  await client.completions.create({ model: MODEL_ID, prompt: [...c.input_ids] });
  await client.completions.create({ model: MODEL_ID, prompt: [[...c.input_ids]] });
  await client.completions.create({ model: MODEL_ID, prompt: [c.prompt] });
  t.deepEqual(backend.calls.map((x) => x.request.promptIds), [c.input_ids, c.input_ids, c.input_ids]);
});

test('completions - max_tokens ends with length and counts exactly max_tokens', async (t) => {
  const backend = referenceBackend();
  const { client } = await startTestGateway(t, backend);
  const c = REFERENCE[1]!;
  for (const n of [1, 5, c.greedy_ids.length]) {
    const r = await client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: n });
    t.is(backend.calls.at(-1)!.request.maxTokens, n);
    t.is(r.choices[0]!.finish_reason, 'length');
    t.is(r.choices[0]!.text, tok.decode(c.greedy_ids.slice(0, n), { skipSpecialTokens: true }));
    t.deepEqual(r.usage, { prompt_tokens: c.input_ids.length, completion_tokens: n, total_tokens: c.input_ids.length + n });
  }
});

test('completions - streamed text equals the non-streamed text, for one and several tokens per event', async (t) => {
  for (const per of [1, 3]) {
    const { client } = await startTestGateway(t, referenceBackend(per));
    for (const c of REFERENCE) {
      const full = await client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 32 });
      const stream = await client.completions.create({ model: MODEL_ID, prompt: c.prompt, stream: true, max_tokens: 32 });
      let text = '';
      const finishes: (string | null)[] = [];
      for await (const chunk of stream) {
        t.is(chunk.object, 'text_completion');
        t.true(chunk.id.startsWith('cmpl-'));
        text += chunk.choices[0]!.text;
        finishes.push(chunk.choices[0]!.finish_reason);
      }
      t.is(text, full.choices[0]!.text);
      t.is(text, tok.decode(c.greedy_ids, { skipSpecialTokens: true }));
      // Only the last chunk finishes, with empty text.
      t.deepEqual(finishes.slice(0, -1).filter((f) => f !== null), []);
      t.is(finishes.at(-1), 'stop');
    }
  }
});

test('completions - SSE framing: data frames, a final finish chunk, the usage chunk, then [DONE]', async (t) => {
  const { base } = await startTestGateway(t, referenceBackend());
  const c = REFERENCE[2]!;
  const { status, contentType, frames } = await postSse(base, '/completions', {
    model: MODEL_ID,
    prompt: c.prompt,
    max_tokens: 6,
    stream: true,
    stream_options: { include_usage: true },
  });
  t.is(status, 200);
  t.is(contentType, 'text/event-stream; charset=utf-8');
  t.is(frames.at(-1), '[DONE]');
  const chunks = frames.slice(0, -1).map((f) => JSON.parse(f));
  const ids = new Set(chunks.map((x) => x.id));
  t.is(ids.size, 1);
  const usageChunk = chunks.at(-1);
  t.deepEqual(usageChunk.choices, []);
  t.deepEqual(usageChunk.usage, { prompt_tokens: c.input_ids.length, completion_tokens: 6, total_tokens: c.input_ids.length + 6 });
  const finish = chunks.at(-2);
  t.deepEqual(finish.choices, [{ index: 0, text: '', logprobs: null, finish_reason: 'length' }]);
  for (const x of chunks.slice(0, -1)) t.is(x.usage, null);
  t.is(chunks.slice(0, -2).map((x) => x.choices[0].text).join(''), tok.decode(c.greedy_ids.slice(0, 6), { skipSpecialTokens: true }));
});
