// TokenStream: the first token at once, later ones gathered for flushMs per message, seq from 0, the last
// message with reason and usage.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { WIRE_VERSION, decodeMessage, SUBJECT_TYPES, type Tokens } from '@latentwire/protocol';
import { TokenStream } from '../../src/service/token-stream.js';

function streamOf(flushMs: number) {
  const sent: Tokens[] = [];
  const done: string[] = [];
  const s = new TokenStream('req-1', flushMs, (b) => sent.push(decodeMessage(b, SUBJECT_TYPES.tokens)), (r) => done.push(r));
  return { s, sent, done };
}

test('token stream - the first token goes at once, later ones within flushMs share a message; the last carries reason and usage', async (t) => {
  const { s, sent, done } = streamOf(40);
  s.onTokens([4]);
  t.deepEqual(sent.map((m) => [m.seq, m.tokens]), [[0, [4]]], 'the first token is not held back');
  s.onTokens([5]);
  s.onTokens([6]);
  s.onTokens([7, 8]);
  t.is(sent.length, 1, 'nothing more before the flush timer');
  await sleep(120);
  t.deepEqual(sent.map((m) => [m.seq, m.tokens]), [[0, [4]], [1, [5, 6, 7, 8]]]);
  s.onTokens([9]);
  s.onFinish('length', { promptTokens: 3, completionTokens: 6 });
  t.deepEqual(sent.at(-1), { v: WIRE_VERSION, type: 'tokens', requestId: 'req-1', seq: 2, tokens: [9], finishReason: 'length', usage: { promptTokens: 3, completionTokens: 6 } });
  t.deepEqual(done, ['length']);
  s.onTokens([10]);
  s.onFinish('stop', { promptTokens: 3, completionTokens: 6 });
  await sleep(60);
  t.is(sent.length, 3, 'nothing after the final message');
});

test('token stream - flushMs 0 sends each call; an error finish carries its text', (t) => {
  const { s, sent } = streamOf(0);
  s.onTokens([1]);
  s.onTokens([2]);
  s.onFinish('error', { promptTokens: 4, completionTokens: 2 }, new Error('x'.repeat(2000)));
  t.deepEqual(sent.map((m) => m.seq), [0, 1, 2]);
  t.deepEqual(sent[2]!.tokens, []);
  t.is(sent[2]!.finishReason, 'error');
  t.is(sent[2]!.error!.length, 1000);
  t.true(sent[2]!.error!.startsWith('Error: xxx'));
});
