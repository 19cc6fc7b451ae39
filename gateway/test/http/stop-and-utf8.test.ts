// Stop strings matched across token boundaries and multi-byte characters split over tokens, with crafted
// token sequences (byte-level BPE: 'é' is two byte tokens, '🙂' four; " S","T","O","P" spell a stop word).
import test from 'ava';
import type OpenAI from 'openai';
import { EOS, MODEL_ID, model } from './helpers/fixture.js';
import { startTestGateway } from './helpers/gateway.js';
import { ReplayBackend } from './helpers/replay-backend.js';

const tok = model().tokenizer;
const ids = (text: string): number[] => tok.encode(text, { addBos: false });
const pieces = (text: string): string[] => ids(text).map((id) => tok.decode([id]));

/** Replays `text`'s tokens, then keeps going (loops) so only the gateway can end the request. */
const endless = (text: string): ReplayBackend => new ReplayBackend({ script: () => ids(text + ' and on and on'), loop: true });
const once = (text: string): ReplayBackend => new ReplayBackend({ script: () => [...ids(text), EOS] });

test('stop strings - fixture sanity: the crafted texts really split across tokens', (t) => {
  t.deepEqual(pieces('Hello world STOP here').slice(-5), [' S', 'T', 'O', 'P', ' here']);
  t.deepEqual(ids('café').slice(-2), [129, 104]);
  t.true(pieces('café').slice(-2).every((p) => p === '\uFFFD'));
  t.is(ids('🙂').length, 4);
});

type Extensions = { stop_token_ids?: number[] };

/** Streams a chat request and returns its content deltas and finish reason. */
async function streamChat(client: OpenAI, extra: Partial<OpenAI.ChatCompletionCreateParamsStreaming>) {
  const stream = await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }], ...extra, stream: true });
  const deltas: string[] = [];
  let finish: string | null = null;
  for await (const c of stream) {
    const content = c.choices[0]?.delta.content;
    if (content) deltas.push(content);
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  return { deltas, finish };
}

test('stop strings - a stop spread over four tokens is never emitted, ends with stop and aborts the backend', async (t) => {
  const backend = endless('Hello world STOP here');
  const { client } = await startTestGateway(t, backend);
  const { deltas, finish } = await streamChat(client, { stop: 'STOP' });
  t.is(deltas.join(''), 'Hello world ');
  t.false(deltas.some((d) => d.includes('S')));
  t.is(finish, 'stop');
  t.truthy(backend.calls[0]!.abortedAt, 'the backend signal was aborted');

  const whole = await client.completions.create({ model: MODEL_ID, prompt: 'x', stop: ['STOP'] });
  t.is(whole.choices[0]!.text, 'Hello world ');
  t.is(whole.choices[0]!.finish_reason, 'stop');
  // Tokens up to the one that completed the match (H e l lo ␠w or l d ␠S T O P).
  t.is(whole.usage!.completion_tokens, 12);
  t.truthy(backend.calls[1]!.abortedAt);
});

test('stop strings - a stop string starting mid-token cuts inside that token', async (t) => {
  const { client } = await startTestGateway(t, endless('Hello world STOP here'));
  // Over ' w','or','l','d',' S': the match starts at the 'r' of 'or'.
  const r = await client.completions.create({ model: MODEL_ID, prompt: 'x', stop: 'rld S' });
  t.is(r.choices[0]!.text, 'Hello wo');
  const s = await streamChat(client, { stop: 'rld S' });
  t.is(s.deltas.join(''), 'Hello wo');
});

test('stop strings - with several stops the text ends before the first one to appear', async (t) => {
  const { client } = await startTestGateway(t, endless('The answer is 42. END of text'));
  const r = await client.completions.create({ model: MODEL_ID, prompt: 'x', stop: [' of', '42', 'END'] });
  t.is(r.choices[0]!.text, 'The answer is ');
  t.is(r.choices[0]!.finish_reason, 'stop');
});

test('stop strings - held-back text that never completes a stop is released, also at max_tokens', async (t) => {
  const text = 'The answer is 42. END of text';
  const backend = once(text);
  const { client } = await startTestGateway(t, backend);
  const full = await streamChat(client, { stop: ['END!', 'answer was'] });
  t.is(full.deltas.join(''), text);
  t.is(full.finish, 'stop'); // EOS
  t.falsy(backend.calls[0]!.abortedAt, 'a backend that finished by itself is not aborted');
  // Cut right after 'EN' (a prefix of 'END!' the matcher was holding): the held text is output.
  const n = ids(text).findIndex((_, i) => tok.decode(ids(text).slice(0, i + 1)).endsWith('EN')) + 1;
  const cut = await client.completions.create({ model: MODEL_ID, prompt: 'x', stop: ['END!'], max_tokens: n });
  t.is(cut.choices[0]!.text, 'The answer is 42. EN');
  t.is(cut.choices[0]!.finish_reason, 'length');
});

test('stop strings - a stop that is a multi-byte character split over two tokens', async (t) => {
  const backend = endless('un café noir');
  const { client } = await startTestGateway(t, backend);
  const s = await streamChat(client, { stop: 'é' });
  t.is(s.deltas.join(''), 'un caf');
  t.is(s.finish, 'stop');
  t.truthy(backend.calls[0]!.abortedAt);
});

test('stop strings - stop_token_ids end with stop, are counted, and add no text', async (t) => {
  const backend = once('The answer is 42. END of text');
  const { client } = await startTestGateway(t, backend);
  const dot = tok.tokenToId('.')!;
  const req: OpenAI.CompletionCreateParamsNonStreaming & Extensions = { model: MODEL_ID, prompt: 'x', stop_token_ids: [dot] };
  const r = await client.completions.create(req);
  t.is(r.choices[0]!.text, 'The answer is 42');
  t.is(r.choices[0]!.finish_reason, 'stop');
  t.is(r.usage!.completion_tokens, ids('The answer is 42.').length);
  t.deepEqual(backend.calls[0]!.request.stopTokenIds, [EOS, dot]);
});

test('utf-8 - streamed deltas never carry half a character; their concatenation is the decoded text', async (t) => {
  const text = '🙂 héllo 世界 — naïve café 🙂🙂';
  for (const tokensPerEvent of [1, 2]) {
    const backend = new ReplayBackend({ script: () => [...ids(text), EOS], tokensPerEvent });
    const { client } = await startTestGateway(t, backend);
    const s = await streamChat(client, {});
    t.is(s.deltas.join(''), text);
    t.false(s.deltas.some((d) => d.includes('\uFFFD')), JSON.stringify(s.deltas));
    // Some events completed no character, so there are fewer deltas than tokens.
    t.true(s.deltas.length < ids(text).length / tokensPerEvent);
  }
});

test('utf-8 - a reply cut by max_tokens inside a character ends as a full decode would (U+FFFD)', async (t) => {
  const { client } = await startTestGateway(t, once('ok 🙂'));
  const n = ids('ok 🙂').length - 1;
  const r = await client.completions.create({ model: MODEL_ID, prompt: 'x', max_tokens: n });
  t.is(r.choices[0]!.text, tok.decode(ids('ok 🙂').slice(0, n)));
  t.true(r.choices[0]!.text.endsWith('\uFFFD'));
  t.is(r.choices[0]!.finish_reason, 'length');
});
