// The wire codec: every message type round-trips, and every kind of bad input is refused with its exact
// reason code, counted and logged by WireRejections. (Chunking: wire/kv-chunking.test.ts; a real NATS
// server: wire/nats.test.ts.)
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import {
  MAX_PROMPT_LOGPROB_PAIRS, MAX_WIRE_CHOICES, choiceRequestId, choiceSampling,
  MESSAGE_TYPES, SUBJECT_TYPES, WIRE_REJECTED_METRIC, WIRE_VERSION, WireError, WireRejections, decodeMessage, describeMessage,
  encodeMessage, kvChunkChecksum, parsePrefillJob, type MessageType, type WireMessage, type WireRejectReason,
} from '../src/wire/index.js';
import { E4M3_KEY, FINGERPRINT, rawPack, samples, tampered } from './wire/samples.js';

const S = samples();

/** Decoded byte fields are Buffers (views into the message); compare them as plain Uint8Arrays. */
const plain = (m: WireMessage): WireMessage =>
  m.type === 'kv-chunk' ? { ...m, data: new Uint8Array(m.data) } : m;

function rejections() {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
  const registry = new Registry();
  return { rej: new WireRejections({ logger, registry }), lines, registry };
}

/** decodeMessage throws WireError(reason); WireRejections.decode drops it, counts it, logs one line. */
function expectRejected(t: ExecutionContext, bytes: Uint8Array, reason: WireRejectReason, expected?: readonly MessageType[]): WireError {
  const err = t.throws(() => decodeMessage(bytes, expected), { instanceOf: WireError })!;
  t.is(err.reason, reason, err.message);
  const { rej, lines } = rejections();
  t.is(rej.decode(bytes, 'lw.test', expected ?? MESSAGE_TYPES), undefined);
  t.is(rej.count(reason), 1);
  t.is(lines.length, 1);
  return err;
}

test('wire - every message type round-trips through encode and decode', (t) => {
  for (const type of MESSAGE_TYPES) {
    const m = S[type];
    t.is(m.type, type);
    const bytes = encodeMessage(m);
    t.deepEqual(plain(decodeMessage(bytes, [type])), m, type);
    t.deepEqual(plain(decodeMessage(bytes)), m, type);
  }
});

test('wire - penalties, logit_bias, logprobs and the prompt token set round-trip', (t) => {
  const sampling = { ...S.reserve.sampling, presencePenalty: -2, frequencyPenalty: 1.5, repetitionPenalty: 1.2, logitBias: [[7, 100], [0, -100]] as [number, number][], logprobs: 20 };
  const reserve = { ...S.reserve, sampling, promptTokenSet: Uint8Array.of(1, 0, 128) };
  const r = decodeMessage(encodeMessage(reserve));
  t.deepEqual({ ...r, promptTokenSet: Array.from((r as typeof reserve).promptTokenSet) }, { ...reserve, promptTokenSet: [1, 0, 128] });
  const logprobs = [{ logprob: -0.25, top: [[3, -0.25], [9, -1.5]] as [number, number][] }, { logprob: -3, top: [] }];
  const tokens = { ...S.tokens, tokens: [3, 4], finishReason: undefined, usage: undefined, logprobs } as WireMessage;
  t.deepEqual(decodeMessage(encodeMessage(tokens)), JSON.parse(JSON.stringify(tokens)));
  const done = { ...S['prefill-done'], firstLogprobs: logprobs[0]! };
  t.deepEqual(decodeMessage(encodeMessage(done)), done);
  // a sampling without the optional fields is still valid (peers that predate them)
  t.deepEqual(decodeMessage(encodeMessage(S.reserve)), S.reserve);
});

test('wire - choices (n > 1): the reserve\'s n, the job\'s n and prefill-done\'s moreChoices round-trip; n = 1 messages are unchanged', (t) => {
  const reserve = { ...S.reserve, n: 3 };
  t.deepEqual(decodeMessage(encodeMessage(reserve)), reserve);
  const done = { ...S['prefill-done'], moreChoices: [{ firstToken: 4 }, { firstToken: 9, firstLogprobs: { logprob: -0.5, top: [[9, -0.5]] as [number, number][] } }] };
  t.deepEqual(decodeMessage(encodeMessage(done)), done);
  const job = { v: 2, requestId: 'req-1', decodeNodeId: 'decode-0', promptIds: [0, 5], layoutKey: E4M3_KEY, fingerprint: FINGERPRINT, deadline: 1, sampling: S.reserve.sampling, n: 3 };
  t.deepEqual(parsePrefillJob(JSON.parse(JSON.stringify(job))), job);
  t.throws(() => parsePrefillJob({ ...job, n: 0 }), { message: /\bn\b/ });
  t.throws(() => parsePrefillJob({ ...job, n: MAX_WIRE_CHOICES + 1 }), { message: /\bn\b/ });
  // a peer that predates choices: a one-choice message carries none of the fields
  t.false('n' in S.reserve);
  t.false('moreChoices' in S['prefill-done']);
  t.is(choiceRequestId('req-1', 2), 'req-1.2');
  t.is(choiceSampling({ ...S.reserve.sampling, seed: 0xffffffff }, 2).seed, 1);
});

test('wire - a resume carries the tokens already generated: on the reserve and the job (the tail of its prompt); bad ones are refused', (t) => {
  const reserve = { ...S.reserve, resumeTokens: [7, 0, 7] };
  t.deepEqual(decodeMessage(encodeMessage(reserve)), reserve);
  t.false('resumeTokens' in decodeMessage(encodeMessage(S.reserve)));
  const job = { v: 2, requestId: 'req-1.r1', decodeNodeId: 'decode-0', promptIds: [0, 5, 7, 0, 7], layoutKey: E4M3_KEY, fingerprint: FINGERPRINT, deadline: 1, sampling: S.reserve.sampling, resumeTokens: [7, 0, 7] };
  t.deepEqual(parsePrefillJob(JSON.parse(JSON.stringify(job))), job);
  t.regex(t.throws(() => parsePrefillJob({ ...job, resumeTokens: [7, 1, 7] }))!.message, /resumeTokens: must equal the tail of promptIds/);
  t.regex(t.throws(() => parsePrefillJob({ ...job, resumeTokens: [0, 5, 7, 0, 7] }))!.message, /resumeTokens: 5 resume tokens in a prompt of 5/);
  t.regex(t.throws(() => parsePrefillJob({ ...job, n: 2 }))!.message, /resumeTokens: not with n > 1/);
  t.regex(t.throws(() => parsePrefillJob({ ...job, resumeTokens: [7, -1] }))!.message, /resumeTokens/);
  t.throws(() => encodeMessage({ ...S.reserve, resumeTokens: [1], n: 3 }), { instanceOf: WireError });
});

test('wire - a replayed resume carries the tokens already generated on the reserve only (after the prompt, inside maxTokens); bad ones are refused', (t) => {
  const reserve = { ...S.reserve, replayTokens: [7, 0, 7] };
  t.deepEqual(decodeMessage(encodeMessage(reserve)), reserve);
  t.false('replayTokens' in decodeMessage(encodeMessage(S.reserve)));
  // they are not the prompt's tail: as many as the prompt has, or more, are fine while one completion token is left
  const many = { ...S.reserve, maxTokens: S.reserve.promptTokens + 2, replayTokens: Array.from({ length: S.reserve.promptTokens + 1 }, () => 3) };
  t.deepEqual(decodeMessage(encodeMessage(many)), many);
  const reject = (patch: object, why: RegExp) => t.regex(t.throws(() => encodeMessage({ ...S.reserve, ...patch }), { instanceOf: WireError })!.message, why);
  reject({ maxTokens: 3, replayTokens: [1, 2, 3] }, /replayTokens: 3 of maxTokens 3/);
  reject({ replayTokens: [1], n: 2 }, /replayTokens with n > 1/);
  reject({ replayTokens: [1], resumeTokens: [1] }, /replayTokens with resumeTokens/);
  reject({ replayTokens: [1, -1] }, /replayTokens/);
});

test('wire - prompt logprobs (echo with logprobs) round-trip on the job, prefill-done and tokens; bounded in pairs', (t) => {
  const entries = [{ logprob: -1.5, top: [[3, -0.5]] as [number, number][] }, { logprob: -0.25, top: [] }];
  const done = { ...S['prefill-done'], promptLogprobs: entries };
  t.deepEqual(decodeMessage(encodeMessage(done)), done);
  const tokens = { ...S.tokens, finishReason: undefined, usage: undefined, promptLogprobs: entries } as WireMessage;
  t.deepEqual(decodeMessage(encodeMessage(tokens)), JSON.parse(JSON.stringify(tokens)));
  const job = { v: 2, requestId: 'req-1', decodeNodeId: 'decode-0', promptIds: [0, 5], layoutKey: E4M3_KEY, fingerprint: FINGERPRINT, deadline: 1, sampling: S.reserve.sampling, promptLogprobs: 5 };
  t.deepEqual(parsePrefillJob(JSON.parse(JSON.stringify(job))), job);
  t.throws(() => parsePrefillJob({ ...job, promptLogprobs: 21 }), { message: /promptLogprobs/ });
  const tooMany = Array.from({ length: MAX_PROMPT_LOGPROB_PAIRS / 2 + 1 }, () => ({ logprob: -1, top: [[1, -1]] as [number, number][] }));
  t.throws(() => encodeMessage({ ...S['prefill-done'], promptLogprobs: tooMany } as WireMessage));
});

test('wire - a prefill job carries the same sampling fields (BullMQ stores it as JSON) and names a bad one', (t) => {
  const job = {
    v: 2, requestId: 'req-1', decodeNodeId: 'decode-0', promptIds: [0, 5, 9], layoutKey: E4M3_KEY, fingerprint: FINGERPRINT, deadline: 1,
    sampling: { temperature: 0, topK: 0, topP: 1, seed: 1, repetitionPenalty: 1.3, logitBias: [[5, -100]], logprobs: 0 },
  };
  t.deepEqual(parsePrefillJob(JSON.parse(JSON.stringify(job))), job);
  const err = t.throws(() => parsePrefillJob({ ...job, sampling: { ...job.sampling, logitBias: [[5, -101]] } }));
  t.regex(err!.message, /sampling\.logitBias/);
});

test('wire - a grammar (constrained decoding) rides with the sampling of a reserve and a prefill job; an oversized one is refused', (t) => {
  const grammar = { root: { t: 'obj', props: [{ key: 'a', node: { t: 'arr', items: { t: 'num' }, min: 1 }, required: true }] } };
  const reserve = { ...S.reserve, sampling: { ...S.reserve.sampling, grammar } };
  t.deepEqual(decodeMessage(encodeMessage(reserve)), reserve);
  const job = {
    v: 2, requestId: 'req-1', decodeNodeId: 'decode-0', promptIds: [0, 5, 9], layoutKey: E4M3_KEY, fingerprint: FINGERPRINT, deadline: 1,
    sampling: { temperature: 0, topK: 0, topP: 1, seed: 1, grammar },
  };
  t.deepEqual(parsePrefillJob(JSON.parse(JSON.stringify(job))), job);
  const huge = { root: { t: 'lit', options: ['x'.repeat(70_000)] } };
  t.regex(t.throws(() => parsePrefillJob({ ...job, sampling: { ...job.sampling, grammar: huge } }))!.message, /sampling\.grammar/);
});

test('wire - kv-chunk bytes survive exactly and decode as views into the message', (t) => {
  const m = S['kv-chunk'];
  const bytes = encodeMessage(m);
  const d = decodeMessage(bytes, SUBJECT_TYPES.kv);
  t.deepEqual(new Uint8Array(d.data), m.data);
  t.is(d.checksum, kvChunkChecksum(m.data));
  t.is(d.data.buffer, bytes.buffer); // no copy: a view into the received message
});

test('wire - optional fields are absent on the wire, not undefined', (t) => {
  const d = decodeMessage(encodeMessage(S['reserve-reply']), ['reserve-reply']);
  t.false('reason' in d);
  const withUndefined = { ...S.tokens, error: undefined } as WireMessage;
  t.false('error' in decodeMessage(encodeMessage(withUndefined)));
});

test('wire - unknown fields are dropped on decode and encode', (t) => {
  const d = decodeMessage(tampered(S.cancel, { extra: 'x' }));
  t.deepEqual(d, S.cancel);
  t.deepEqual(decodeMessage(encodeMessage({ ...S.cancel, extra: 1 } as WireMessage)), S.cancel);
});

test('wire - a heartbeat without the cluster-view fields (an older node) decodes; an older reader drops them', (t) => {
  const { model, reservedPages, tokensOut, startedAt, ...older } = S.heartbeat;
  t.deepEqual([model, reservedPages, tokensOut, startedAt].map((x) => x !== undefined), [true, true, true, true]);
  const d = decodeMessage(tampered(S.heartbeat, { model: undefined, reservedPages: undefined, tokensOut: undefined, startedAt: undefined }), ['heartbeat']);
  t.deepEqual(d, older);
  // what a reader built before them does with a newer node's beat: the same as with any unknown key
  t.deepEqual(decodeMessage(tampered(older, { nextYearsField: 3 }), ['heartbeat']), older);
});

test('wire - describeMessage is redacted: no payload bytes, token ids or sampled token', (t) => {
  const kv = describeMessage(S['kv-chunk']);
  t.like(kv, { type: 'kv-chunk', requestId: 'req-7f3a.1', layer: 5, tokenStart: 70, tokenCount: 4, dataBytes: 4 * 644 });
  for (const type of MESSAGE_TYPES) {
    const d = describeMessage(S[type]);
    t.is(d['type'], type);
    for (const v of Object.values(d)) t.true(v === undefined || ['string', 'number', 'boolean'].includes(typeof v), type);
  }
  const done = JSON.stringify(describeMessage(S['prefill-done']));
  t.false(done.includes('128000'));
  t.false(JSON.stringify(describeMessage(S.reserve)).includes('100,101'));
  const tokens = describeMessage({ ...S.tokens, tokens: [31337, 4242], finishReason: undefined, usage: undefined } as WireMessage);
  t.false(JSON.stringify(tokens).includes('31337'));
  t.is(tokens['tokenCount'], 2);
});

test('wire - garbage and non-map bytes are malformed', (t) => {
  const garbage: Uint8Array[] = [
    new Uint8Array(0),
    Uint8Array.of(0xc1), // never used in msgpack
    Uint8Array.of(1, 2, 3), // a fixint, then trailing bytes
    new TextEncoder().encode('{"v":1,"type":"cancel"}'), // JSON is not msgpack
    rawPack([1, 'heartbeat']),
    rawPack('cancel'),
    rawPack(null),
    rawPack(new Uint8Array([1, 2])),
  ];
  for (const g of garbage) expectRejected(t, g, 'malformed');
});

test('wire - truncated bytes are malformed', (t) => {
  const bytes = encodeMessage(S['kv-chunk']);
  for (const n of [1, 10, bytes.byteLength >> 1, bytes.byteLength - 1]) expectRejected(t, bytes.subarray(0, n), 'malformed');
});

test('wire - a missing or other version is refused as version', (t) => {
  for (const v of [WIRE_VERSION - 1, WIRE_VERSION + 1, 0, String(WIRE_VERSION), undefined, null]) expectRejected(t, tampered(S.cancel, { v }), 'version');
});

test('wire - an unknown or missing type is unknown-type', (t) => {
  for (const type of ['bogus', 'Heartbeat', 42, undefined, 'constructor', '__proto__']) {
    const err = expectRejected(t, tampered(S.cancel, { type }), 'unknown-type');
    t.is(err.messageType, undefined);
  }
});

test('wire - a type the subject does not carry is unexpected-type', (t) => {
  const err = expectRejected(t, encodeMessage(S.heartbeat), 'unexpected-type', SUBJECT_TYPES.kv);
  t.is(err.messageType, 'heartbeat');
  expectRejected(t, encodeMessage(S.tokens), 'unexpected-type', SUBJECT_TYPES.control);
  t.is(decodeMessage(encodeMessage(S.cancel), SUBJECT_TYPES.control).type, 'cancel');
  t.is(decodeMessage(encodeMessage(S.renew), SUBJECT_TYPES.control).type, 'renew');
  t.is(decodeMessage(encodeMessage(S['cancel-ack']), SUBJECT_TYPES.cancelReply).type, 'cancel-ack');
  expectRejected(t, encodeMessage(S.ping), 'unexpected-type', SUBJECT_TYPES.control);
  expectRejected(t, encodeMessage(S['gateway-heartbeat']), 'unexpected-type', SUBJECT_TYPES.heartbeat);
});

test('wire - optional reliability fields: a heartbeat without draining and a reserve without gatewayId still decode', (t) => {
  const { draining: _d, ...hb } = { ...S.heartbeat, draining: true };
  t.is(decodeMessage(encodeMessage(hb as WireMessage)).type, 'heartbeat');
  t.true((decodeMessage(encodeMessage({ ...S.heartbeat, draining: true })) as typeof S.heartbeat).draining);
  t.is((decodeMessage(encodeMessage({ ...S.reserve, gatewayId: 'gw-1' })) as typeof S.reserve).gatewayId, 'gw-1');
  t.false('gatewayId' in decodeMessage(encodeMessage(S.reserve)));
});

test('wire - bad field values are invalid', (t) => {
  const kv = S['kv-chunk'];
  const cases: [WireMessage, Record<string, unknown>][] = [
    [kv, { layer: '5' }], // string for number
    [kv, { tokenStart: -64 }], // negative
    [kv, { tokenCount: 4.5 }], // non-integer
    [kv, { layer: 2 ** 32 }], // beyond u32
    [kv, { tokenCount: 0 }], // must be >= 1
    [kv, { layer: Number.NaN }],
    [kv, { requestId: 'r'.repeat(129) }], // id too long
    [kv, { requestId: '' }],
    [kv, { requestId: 'req 1' }], // whitespace
    [kv, { requestId: 'req.*' }], // wildcard
    [kv, { requestId: 'req..1' }], // empty subject token
    [kv, { requestId: undefined }], // missing
    [kv, { data: Array.from(kv.data) }], // array, not bin
    [kv, { data: undefined }],
    [kv, { layoutKey: 'latent-v1/fp8/r512+64/p64' }],
    [kv, { layoutKey: 'latent-v2/fp8_e4m3/r512+64/p64' }],
    [kv, { layoutKey: 'latent-v1/fp8_e4m3/r0512+64/p64' }], // not the formatter's spelling
    [S.heartbeat, { freePages: 5000 }], // > totalPages
    [S.heartbeat, { fingerprint: 'has space' }],
    [S.heartbeat, { sentAt: -1 }],
    [S.heartbeat, { reservedPages: 3097 }], // > totalPages - freePages
    [S.heartbeat, { tokensOut: -1 }],
    [S.heartbeat, { tokensOut: 2 ** 53 }], // not a safe integer
    [S.heartbeat, { model: 'two words' }],
    [S.heartbeat, { startedAt: 'yesterday' }],
    [S['reserve-reply'], { reason: 'no-pages' }], // a grant with a reason
    [S['reserve-reply'], { ok: 'yes' }],
    [S['kv-ack'], { ok: false }], // a refusal without a reason
    [S.reserve, { sampling: { temperature: 0.7, topK: 40, topP: 0, seed: 1 } }],
    [S.reserve, { stopTokenIds: [1, -2] }],
    [S['prefill-done'], { firstToken: 1.5 }],
    [S['prefill-done'], { moreChoices: [] }],
    [S['prefill-done'], { moreChoices: [{ firstToken: -1 }] }],
    [S.reserve, { n: 0 }],
    [S.reserve, { n: 129 }],
    [S['prefill-failed'], { reason: 'x'.repeat(1001) }],
    [S.cancel, { reason: 'because' }],
    [S.tokens, { tokens: [1, 2, 'three'] }],
    [S.tokens, { finishReason: 'error' }], // error text missing
    [S.tokens, { finishReason: undefined }], // usage without finishReason
    [S.tokens, { seq: -1 }],
    [S.reserve, { sampling: { ...S.reserve.sampling, presencePenalty: 2.5 } }],
    [S.reserve, { sampling: { ...S.reserve.sampling, repetitionPenalty: 0 } }],
    [S.reserve, { sampling: { ...S.reserve.sampling, counterStart: -1 } }],
    [S.reserve, { sampling: { ...S.reserve.sampling, logitBias: [[5, 101]] } }],
    [S.reserve, { sampling: { ...S.reserve.sampling, logitBias: [[5, 1], [5, 2]] } }], // ids repeat
    [S.reserve, { sampling: { ...S.reserve.sampling, logprobs: 21 } }],
    [S.reserve, { promptTokenSet: [1, 2] }], // array, not bin
    [S.tokens, { tokens: [1, 2], logprobs: [{ logprob: -1, top: [] }] }], // one entry for two tokens
    [S.tokens, { tokens: [1], logprobs: [{ logprob: -1, top: Array.from({ length: 21 }, (_, i) => [i, -2]) }] }],
    [S['prefill-done'], { firstLogprobs: { logprob: 'x', top: [] } }],
    [S.heartbeat, { draining: 'yes' }],
    [S.reserve, { gatewayId: 'gw 1' }],
    [S.renew, { requestIds: [] }], // nothing to renew
    [S.renew, { requestIds: Array.from({ length: 513 }, (_, i) => `r${i}`) }], // over MAX_RENEW_IDS
    [S.renew, { requestIds: ['ok', 'bad*'] }],
    [S['cancel-ack'], { ended: 1 }],
    [S.ping, { nonce: -1 }],
    [S.pong, { nodeId: '' }],
    [S['gateway-heartbeat'], { intervalMs: 0 }],
    [S['prefill-heartbeat'], { jobs: ['a b'] }],
    [S['prefill-heartbeat'], { maxPromptTokens: 0 }],
    [S.replay, { fromSeq: 1.5 }],
    [S.reserve, { resumeTokens: [1, -2] }],
    [S.reserve, { resumeTokens: 'abc' }],
    [S.reserve, { resumeTokens: Array.from({ length: S.reserve.promptTokens }, () => 1) }], // no prompt token left before them
    [S.reserve, { resumeTokens: [1], n: 2 }],
    [S.reserve, { replayTokens: [1, 2.5] }],
    [S.reserve, { replayTokens: Array.from({ length: S.reserve.maxTokens }, () => 1) }], // none left to generate
  ];
  for (const [m, patch] of cases) {
    const err = expectRejected(t, tampered(m, patch), 'invalid');
    t.is(err.messageType, m.type);
    t.true(err.message.startsWith(`${m.type}: `) && err.message.includes(Object.keys(patch)[0]!), err.message); // names the field
    if (process.env['WIRE_TEST_VERBOSE']) t.log(err.message);
  }
});

test('wire - kv-chunk sizes that disagree are size', (t) => {
  const kv = S['kv-chunk'];
  const recrc = (data: Uint8Array, patch: Record<string, unknown> = {}) => tampered(kv, { data, checksum: kvChunkChecksum(data), ...patch });
  const err = expectRejected(t, recrc(kv.data.subarray(0, kv.data.byteLength - 1)), 'size');
  t.regex(err.message, /data 2575 bytes, expected 4 × 644 for latent-v1\/fp8_e4m3\/r512\+64\/p64/);
  expectRejected(t, recrc(kv.data.subarray(0, 4 * 640)), 'size'); // rows without their scales
  expectRejected(t, tampered(kv, { tokenCount: 5 }), 'size'); // 4 tokens of data
  expectRejected(t, tampered(kv, { layoutKey: 'latent-v1/bf16/r512+64/p64' }), 'size'); // another layout's token size
  expectRejected(t, tampered(kv, { tokenStart: 2 ** 32 - 2 }), 'size'); // the run passes u32
  // A run that crosses pages is fine: the layout places each page's part.
  t.is(decodeMessage(recrc(kv.data, { tokenStart: 62 }), SUBJECT_TYPES.kv).tokenStart, 62);
});

test('wire - one flipped byte in the data is a checksum failure', (t) => {
  const kv = S['kv-chunk'];
  const bytes = Uint8Array.from(encodeMessage(kv));
  const at = Buffer.from(bytes).indexOf(Buffer.from(kv.data)) + 1234;
  bytes[at]! ^= 0x10;
  const err = expectRejected(t, bytes, 'checksum');
  t.is(err.messageType, 'kv-chunk');
  expectRejected(t, tampered(kv, { checksum: (kv.checksum + 1) >>> 0 }), 'checksum');
});

test('wire - encodeMessage refuses what a receiver would refuse', (t) => {
  const bad = { ...S['kv-chunk'], tokenCount: 8 };
  t.is(t.throws(() => encodeMessage(bad), { instanceOf: WireError })?.reason, 'size');
  t.is(t.throws(() => encodeMessage({ ...S.cancel, requestId: 'a b' }), { instanceOf: WireError })?.reason, 'invalid');
});

test('wire - WireRejections counts by type and reason on the registry and logs one redacted line', async (t) => {
  const { rej, lines, registry } = rejections();
  const kv = S['kv-chunk'];
  rej.decode(tampered(kv, { checksum: 1 }), 'lw.decode.d0.kv', SUBJECT_TYPES.kv);
  rej.decode(tampered(kv, { checksum: 2 }), 'lw.decode.d0.kv', SUBJECT_TYPES.kv);
  rej.decode(Uint8Array.of(0xc1), 'lw.decode.d0.kv', SUBJECT_TYPES.kv);
  rej.decode(tampered(kv, { type: 'x'.repeat(5000) }), 'lw.decode.d0.kv', SUBJECT_TYPES.kv);
  t.is(rej.count('checksum'), 2);
  t.is(rej.count('malformed'), 1);
  t.is(rej.count('unknown-type'), 1);
  t.is(rej.count('size'), 0);
  const values = (await registry.getSingleMetric(WIRE_REJECTED_METRIC)!.get()).values;
  const value = (type: string, reason: string) => values.find((v) => v.labels['type'] === type && v.labels['reason'] === reason)?.value;
  t.is(value('kv-chunk', 'checksum'), 2);
  t.is(value('unknown', 'malformed'), 1);
  t.is(value('unknown', 'unknown-type'), 1); // the type string from the wire never becomes a label
  t.is(lines.length, 4);
  const line = JSON.parse(lines[0]!);
  t.like(line, { level: 40, subject: 'lw.decode.d0.kv', type: 'kv-chunk', reason: 'checksum', msg: 'wire message rejected' });
  t.true(lines.every((l) => l.length < 600)); // no payload bytes in the log
  // A second instance on the same registry shares the counter.
  const again = new WireRejections({ logger: pino({ level: 'silent' }), registry });
  again.decode(Uint8Array.of(0xc1), 'lw.x', SUBJECT_TYPES.kv);
  t.is(again.count('malformed'), 1);
  t.is((await registry.getSingleMetric(WIRE_REJECTED_METRIC)!.get()).values.find((v) => v.labels['reason'] === 'malformed')?.value, 2);
});
