// Subjects built in one place, with names checked; maxPayloadOf without a server; layout keys read back.
import test from 'ava';
import { latentKvLayout, latentLayoutKey, KV_DTYPES } from '@latentwire/protocol';
import { SUBJECT_TYPES, WireUsageError, maxPayloadOf, parseLatentLayoutKey, wireSubjects } from '../../src/wire/index.js';

test('subjects - default prefix lw and the documented layout', (t) => {
  const s = wireSubjects();
  t.is(s.prefix, 'lw');
  t.is(s.heartbeat, 'lw.heartbeat');
  t.is(s.prefillCancel, 'lw.prefill.cancel');
  t.is(s.reserve('decode-0'), 'lw.decode.decode-0.reserve');
  t.is(s.kv('decode-0'), 'lw.decode.decode-0.kv');
  t.is(s.control('decode-0'), 'lw.decode.decode-0.control');
  t.is(s.ping('decode-0'), 'lw.decode.decode-0.ping');
  t.is(s.gatewayHeartbeat, 'lw.gateway.heartbeat');
  t.is(s.prefillHeartbeat, 'lw.prefill.heartbeat');
  t.is(s.tokens('chatcmpl-9f:1'), 'lw.tokens.chatcmpl-9f:1');
  t.is(wireSubjects('test.ab12').kv('n.1'), 'test.ab12.decode.n.1.kv');
  t.true(Object.isFrozen(s));
});

test('subjects - wildcards, whitespace, empty tokens and long ids are refused by name', (t) => {
  for (const p of ['', 'lw.', '.lw', 'l w', 'lw.*', 'lw.>', 'a..b', 'x'.repeat(65)]) {
    t.throws(() => wireSubjects(p), { instanceOf: WireUsageError, message: /subject prefix/ }, JSON.stringify(p));
  }
  const s = wireSubjects();
  for (const id of ['', 'a b', 'a*', '>', 'a.', '.a', 'a..b', 'a\tb', 'é', 'n'.repeat(129)]) {
    t.throws(() => s.kv(id), { instanceOf: WireUsageError, message: /^nodeId / }, JSON.stringify(id));
    t.throws(() => s.tokens(id), { instanceOf: WireUsageError, message: /^requestId / }, JSON.stringify(id));
  }
  t.notThrows(() => s.tokens('r'.repeat(128)));
});

test('subjects - each subject names the types it carries', (t) => {
  t.deepEqual(SUBJECT_TYPES.kv, ['kv-chunk']);
  t.deepEqual(SUBJECT_TYPES.control, ['prefill-done', 'prefill-failed', 'cancel', 'renew', 'replay']);
  t.deepEqual(SUBJECT_TYPES.ping, ['ping']);
  t.deepEqual(SUBJECT_TYPES.prefillCancel, ['cancel']);
});

test('max payload - read from the connection info, an error when there is none', (t) => {
  t.is(maxPayloadOf({ info: { max_payload: 1_048_576 } }), 1_048_576);
  t.throws(() => maxPayloadOf({}), { instanceOf: WireUsageError, message: /max_payload is unknown.*not connected/ });
  t.throws(() => maxPayloadOf({ info: { max_payload: 0 } }), { instanceOf: WireUsageError });
});

test('layout key - every key latentLayoutKey writes reads back; others do not', (t) => {
  for (const dtype of KV_DTYPES) {
    for (const [r, rope, p] of [[512, 64, 64], [64, 16, 16], [96, 64, 33]] as const) {
      const layout = latentKvLayout({ dtype, kvLoraRank: r, ropeDim: rope, pageSize: p });
      t.deepEqual(parseLatentLayoutKey(latentLayoutKey(layout)), layout);
    }
  }
  for (const bad of ['', 'latent-v1/fp8_e4m3/r512+64', 'latent-v2/bf16/r512+64/p64', 'latent-v1/fp16/r512+64/p64',
    'latent-v1/bf16/r512+64/p0', 'latent-v1/bf16/r512+64/p065', 'latent-v1/bf16/r512+64/p64 ', 'latent-v1/bf16/r99999999+64/p64']) {
    t.is(parseLatentLayoutKey(bad), undefined, bad);
  }
});
