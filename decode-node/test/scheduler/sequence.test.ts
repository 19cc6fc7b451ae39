// A sequence's stop conditions (pages for tokens: the layout's pagesFor, shared/protocol/test/kv) and status transitions.
import test from 'ava';
import { Sequence, type SequenceSpec } from '../../src/scheduler/index.js';

const running = (spec: Partial<SequenceSpec> = {}) => {
  const seq = new Sequence({ id: 's', promptLength: 5, maxNewTokens: 4, eosTokenIds: [2], stopTokenIds: [7], ...spec });
  seq.start();
  return seq;
};

test('reserves prompt + max_tokens; a fresh sequence feeds its prompt, then one token a step', (t) => {
  const seq = running();
  t.is(seq.reservedTokens, 9);
  t.is(seq.pendingTokens, 5);
  t.is(seq.acceptToken(11), null);
  t.is(seq.cachedTokens, 5);
  t.is(seq.pendingTokens, 1);
  t.is(seq.acceptToken(12), null);
  t.is(seq.cachedTokens, 6);
  t.deepEqual(seq.outputTokens, [11, 12]);
});

test('finishes on EOS, on a stop token, and at max_tokens; stop wins on the last token', (t) => {
  const eos = running();
  t.is(eos.acceptToken(2), 'stop');
  t.deepEqual(eos.outputTokens, [2], 'the stop token is kept; detokenization decides whether to show it');
  t.is(running().acceptToken(7), 'stop');
  const length = running({ maxNewTokens: 2 });
  t.is(length.acceptToken(3), null);
  t.is(length.acceptToken(3), 'length');
  const both = running({ maxNewTokens: 1 });
  t.is(both.acceptToken(7), 'stop');
});

test('a disaggregated sequence starts from the prefill node’s token and KV', (t) => {
  const seq = new Sequence({ id: 'd', promptLength: 5, maxNewTokens: 3, outputTokens: [9], cachedTokens: 5 });
  t.is(seq.totalTokens, 6);
  t.is(seq.pendingTokens, 1);
  seq.start();
  t.is(seq.acceptToken(1), null);
  t.is(seq.acceptToken(1), 'length', 'the prefill token counts toward max_tokens');
});

test('rejects specs with nothing to decode', (t) => {
  t.throws(() => new Sequence({ id: 'a', promptLength: 0, maxNewTokens: 1 }), { instanceOf: RangeError });
  t.throws(() => new Sequence({ id: 'b', promptLength: 3, maxNewTokens: 0 }), { instanceOf: RangeError });
  t.throws(() => new Sequence({ id: 'c', promptLength: 3, maxNewTokens: 1, outputTokens: [4] }), { message: /already finished/ });
  t.throws(() => new Sequence({ id: 'd', promptLength: 3, maxNewTokens: 4, eosTokenIds: [4], outputTokens: [4] }), { message: /already finished/ });
  t.throws(() => new Sequence({ id: 'e', promptLength: 3, maxNewTokens: 4, cachedTokens: 3 }), { instanceOf: RangeError });
});

test('status moves waiting → running → finished only', (t) => {
  const seq = new Sequence({ id: 's', promptLength: 2, maxNewTokens: 2 });
  t.is(seq.status, 'waiting');
  t.throws(() => seq.acceptToken(1), { message: /waiting/ });
  seq.start();
  t.throws(() => seq.start());
  seq.finish('cancelled');
  t.is(seq.status, 'finished');
  t.is(seq.finishReason, 'cancelled');
  t.throws(() => seq.finish('error'), { message: /finished twice/ });
  t.throws(() => seq.acceptToken(1));
});
