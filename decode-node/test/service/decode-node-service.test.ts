// The decode node as a NATS service, against a real nats-server (max_payload 1500, so a page's rows cross
// in several kv-chunks) and real WebGPU on the tiny fixture. The test plays the gateway and the prefill
// node. One DecodeStack (fp8_e4m3 cache, the default dtype) serves every test of the file but the bf16
// handoff, which checks tokens against transformers (fp8 rounding changes this random model's greedy
// choices within a few tokens; see test/engine/fixture-decode.test.ts). Each test has its own subject
// prefix, service and metrics registry, and must leave every page free.
import test, { type ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, createInbox, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { WIRE_VERSION, latentKvLayout, latentLayoutKey, type LatentKvLayout, type Reserve } from '@latentwire/protocol';
import { loadPrefillModel, type PrefillModel } from '@latentwire/gpu/prefill';
import { FIXTURE_DIR, readFixtureJson, startNatsServer } from '@latentwire/testing';
import { testGpu } from '@latentwire/gpu/testing';
import {
  cancelMessage, decodeMessage, encodeMessage, kvChunkMessage, reserveMessage, SUBJECT_TYPES, tokensMessage,
  WIRE_REJECTED_METRIC, type Heartbeat, type KvAck, type KvRun, type Tokens, type WireRejectReason,
} from '@latentwire/protocol';
import { decodeSettings } from '../../src/config.js';
import { loadDecodeStack, type DecodeStack } from '../../src/engine/load.js';
import { DecodeNodeService } from '../../src/service/decode-node-service.js';
import { GREEDY, Peer, waitFor } from './peer.js';

interface Case { readonly input_ids: number[]; readonly greedy_ids: number[] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;

const NODE = 'decode-test.1';
const SETTINGS = { pageSize: 16, maxBatch: 4, numPages: 32, kvDtype: 'fp8_e4m3', maxContext: 128, maxWaiting: 8, leaseMs: 10_000 } as const;
let server: Awaited<ReturnType<typeof startNatsServer>>;
let nc: NatsConnection;
let stack: DecodeStack;
let prefillModel: PrefillModel; // the prefill node's own copy of the model

test.before(async () => {
  server = await startNatsServer({ maxPayload: 1500 });
  nc = await connect({ servers: server.url });
  const gpu = await testGpu();
  stack = await loadDecodeStack(gpu, FIXTURE_DIR, (cfg) => decodeSettings(cfg, {}, SETTINGS));
  prefillModel = loadPrefillModel(gpu, FIXTURE_DIR).model;
  // compile the prefill's pipelines for every case's length now: a first compile through lavapipe can outlast
  // the 10 s reservation lease the handoff tests run under
  for (const c of cases) (await prefillModel.prefill(c.input_ids, { sample: { ...GREEDY, counter: 0 } })).release();
});

test.after.always(async () => {
  await nc?.close();
  await server?.stop();
  stack?.release();
  prefillModel?.dispose();
});

/** A service on its own prefix (not started) and a peer speaking to it. */
function service(t: ExecutionContext, opts: { heartbeatMs?: number; tokenFlushMs?: number; logLines?: string[]; stack?: DecodeStack } = {}) {
  const on = opts.stack ?? stack;
  const registry = new Registry();
  const logger = opts.logLines ? pino({ level: 'info' }, { write: (s: string) => void opts.logLines!.push(s) }) : pino({ level: 'silent' });
  const svc = new DecodeNodeService({
    nats: server.url, nodeId: NODE, subjectPrefix: `t.${randomUUID().slice(0, 8)}`, stack: on,
    heartbeatMs: opts.heartbeatMs ?? 60_000, tokenFlushMs: opts.tokenFlushMs ?? 5, logger, registry,
  });
  t.teardown(() => svc.stop());
  const peer = new Peer(nc, svc.subjects, NODE, on.folder.fingerprint, on.model.cache.layout);
  return { svc, registry, peer };
}

const total = () => stack.engine.stats().totalPages;
const free = () => stack.engine.stats().freePages;

async function metricValues(registry: Registry, name: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await registry.getSingleMetric(name)!.get()).values) out[Object.values(v.labels).join('/') || '-'] = v.value;
  return out;
}

test.serial('decode service - heartbeats announce identity and load, at start and every heartbeatMs; freePages follows a reserve; none after stop', async (t) => {
  const { svc, peer } = service(t, { heartbeatMs: 400 });
  const beats: Heartbeat[] = [];
  const sub = nc.subscribe(svc.subjects.heartbeat, { callback: (_e, m) => void beats.push(decodeMessage(m.data, SUBJECT_TYPES.heartbeat)) });
  t.teardown(() => sub.unsubscribe());
  await nc.flush();
  const before = Date.now();
  await svc.start();
  await waitFor(() => beats.length >= 1, 300, 'the heartbeat sent at start'); // well before the first period
  t.deepEqual({ ...beats[0]!, sentAt: 0, startedAt: 0 }, {
    v: WIRE_VERSION, type: 'heartbeat', nodeId: NODE, fingerprint: stack.folder.fingerprint, layoutKey: 'latent-v1/fp8_e4m3/r64+16/p16',
    kvDtype: 'fp8_e4m3', pageSize: 16, totalPages: 32, freePages: 32, running: 0, waiting: 0, maxBatch: 4, maxContext: 128, seq: 0, sentAt: 0,
    model: 'tiny-deepseek-v2', reservedPages: 0, tokensOut: 0, startedAt: 0,
  });
  t.true(beats[0]!.sentAt >= before && beats[0]!.sentAt <= Date.now());
  t.true(beats[0]!.startedAt! >= before - 60_000 && beats[0]!.startedAt! <= beats[0]!.sentAt); // the service was built just before

  const reply = await peer.reserve('hb-1', 18, 16);
  t.like(reply, { ok: true, pages: 3, freePages: 29 });
  t.true(reply.leaseMs > 9000 && reply.leaseMs <= 10_000, `leaseMs ${reply.leaseMs}`);
  await waitFor(() => beats.some((b) => b.freePages === 29), 2000, 'a heartbeat with 3 pages reserved');
  t.is(beats.find((b) => b.freePages === 29)!.reservedPages, 3); // held for the prefill's KV, not yet in use
  t.deepEqual(beats.map((b) => b.seq), beats.map((_, i) => i));
  peer.cancel('hb-1');
  await waitFor(() => free() === total(), 1000, 'the reservation to end');

  await svc.stop();
  const n = beats.length;
  await sleep(1000); // 2.5 periods
  t.is(beats.length, n, 'no heartbeat after stop()');
});

interface HandoffResult { readonly messages: Tokens[]; readonly tokens: number[] }

/** Reserve → real prefill streaming kv-chunks → prefill-done for every fixture case, on `on`; the tokens messages. */
async function handoffAll(t: ExecutionContext, on: DecodeStack, maxTokens: number, tokenFlushMs: number, packLayers = false): Promise<HandoffResult[]> {
  const { svc, registry, peer } = service(t, { stack: on, tokenFlushMs });
  await svc.start();
  const cfg = on.folder.config;
  const streams: Promise<Tokens[]>[] = [];
  let chunks = 0, spanning = 0;
  for (const [b, c] of cases.entries()) {
    const id = `case-${b}`;
    t.like(await peer.reserve(id, c.input_ids.length, maxTokens, { eosTokenIds: cfg.eosTokenIds }), { ok: true, pages: Math.ceil((c.input_ids.length + maxTokens) / 16) });
    streams.push((await peer.tokens(id)).done); // subscribed before prefill-done
    const { firstToken, acks, chunks: sent } = await peer.prefill(prefillModel, id, c.input_ids, { packLayers });
    t.true(acks.every((a) => a.ok), JSON.stringify(acks.find((a) => !a.ok)));
    chunks += acks.length;
    spanning += sent.filter((m) => m.moreRuns !== undefined).length;
    const ack = await peer.prefillDone({ requestId: id, promptTokens: c.input_ids.length, firstToken }, cfg.numLayers);
    t.deepEqual(ack, { v: WIRE_VERSION, type: 'prefill-done-ack', requestId: id, ok: true });
  }
  const results = (await Promise.all(streams)).map((messages) => ({ messages, tokens: messages.flatMap((m) => m.tokens) }));
  for (const [b, c] of cases.entries()) {
    const { messages } = results[b]!;
    t.deepEqual(messages.map((m) => m.seq), messages.map((_, i) => i), `case ${b}: seq counts from 0`);
    t.like(messages.at(-1), { finishReason: 'length', usage: { promptTokens: c.input_ids.length, completionTokens: maxTokens } });
    t.true(messages.slice(0, -1).every((m) => m.finishReason === undefined && m.usage === undefined));
    t.is(results[b]!.tokens.length, maxTokens);
  }
  await on.engine.idle();
  t.is(on.engine.stats().freePages, on.engine.stats().totalPages, 'every page back in the pool');

  const kvBytes = cfg.numLayers * cases.reduce((n, c) => n + c.input_ids.length, 0) * on.model.cache.layout.tokenBytes;
  t.deepEqual(await metricValues(registry, 'latentwire_decode_kv_bytes_total'), { '-': kvBytes });
  t.deepEqual(await metricValues(registry, 'latentwire_decode_requests_admitted_total'), { '-': cases.length });
  t.deepEqual(await metricValues(registry, 'latentwire_decode_requests_finished_total'), { length: cases.length });
  const pages = cfg.numLayers * cases.reduce((n, c) => n + Math.ceil(c.input_ids.length / 16), 0);
  t.true(chunks > pages, `pages were split to fit max_payload (${chunks} chunks for ${pages} pages)`);
  if (packLayers) t.true(spanning > 0, 'some kv-chunks spanned layers');
  t.log(`tokens messages per request: ${results.map((r) => r.messages.length).join(', ')}`);
  return results;
}

test.serial('decode service - full handoff over NATS (bf16 cache, kv-chunks spanning layers): real prefill streams KV, the node decodes the reference greedy ids', async (t) => {
  const gpu = await testGpu();
  const bf16Stack = await loadDecodeStack(gpu, FIXTURE_DIR, (cfg) => decodeSettings(cfg, {}, { ...SETTINGS, kvDtype: 'bf16' }));
  t.teardown(() => bf16Stack.release());
  const maxTokens = 16;
  // every layer queued before sending: chunks pack the tail of one layer with the start of the next, and each
  // run must land in its own layer's pages for the greedy ids to match
  const results = await handoffAll(t, bf16Stack, maxTokens, 5, true);
  for (const [b, c] of cases.entries()) t.deepEqual(results[b]!.tokens, c.greedy_ids.slice(0, maxTokens), `case ${b} (${c.input_ids.length} prompt tokens)`);
});

test.serial('decode service - full handoff over NATS (fp8_e4m3 cache, scales on the wire, tokens coalesced): the tokens of the same request decoded locally', async (t) => {
  const maxTokens = 16;
  const results = await handoffAll(t, stack, maxTokens, 200);
  // 200 ms outlasts a step even on lavapipe, so a message carries several steps' tokens
  t.true(results.every((r) => r.messages.length < maxTokens), 'tokens coalesced into fewer messages');
  const cfg = stack.folder.config;
  for (const [b, c] of cases.entries()) {
    const local = await new Promise<number[]>((resolve, reject) => {
      const got: number[] = [];
      stack.engine.submit({ id: `local-${b}`, promptIds: c.input_ids, maxTokens, sampling: GREEDY, eosTokenIds: cfg.eosTokenIds }, {
        onTokens: (tok) => void got.push(...tok),
        onFinish: (reason, _u, err) => (reason === 'error' ? reject(err) : resolve(got)),
      });
    });
    t.deepEqual(results[b]!.tokens, local, `case ${b}: handed-off KV decodes as the node's own prefill does`);
    const agree = local.findIndex((tok, i) => tok !== c.greedy_ids[i]);
    t.log(`case ${b}: fp8 greedy ids follow transformers' for ${agree < 0 ? maxTokens : agree} of ${maxTokens} tokens`);
  }
  await stack.engine.idle();
  t.is(free(), total());
});

/** A kv-chunk of zero rows (valid bytes in every dtype) for tokens [tokenStart, tokenStart + n), over any pages. */
function zeroChunk(requestId: string, layer: number, tokenStart: number, n: number, layout: LatentKvLayout, moreRuns?: KvRun[]) {
  const tokens = n + (moreRuns ?? []).reduce((s, r) => s + r.tokenCount, 0);
  return kvChunkMessage({ requestId, layer, layoutKey: latentLayoutKey(layout), tokenStart, tokenCount: n, moreRuns, data: new Uint8Array(tokens * layout.tokenBytes) });
}

async function sendChunk(peer: Peer, bytes: Uint8Array): Promise<KvAck> {
  return decodeMessage((await nc.request(peer.subjects.kv(NODE), bytes, { timeout: 5000 })).data, SUBJECT_TYPES.kvReply);
}

test.serial('decode service - kv-chunks outside a live reservation are refused with reasons; prefill-done before every page is incomplete, and prefill-failed, free the pages and tell the gateway', async (t) => {
  const { svc, peer } = service(t);
  await svc.start();
  const layout = stack.model.cache.layout;
  const layers = stack.folder.config.numLayers;
  t.like(await sendChunk(peer, encodeMessage(zeroChunk('nobody', 0, 0, 4, layout))), { ok: false, reason: 'no-reservation', requestId: 'nobody' });

  t.like(await peer.reserve('oor', 20, 4), { ok: true, pages: 2 }); // 24 tokens: pages 0 and 1
  const bf16 = latentKvLayout({ kvLoraRank: 64, ropeDim: 16, pageSize: 16, dtype: 'bf16' });
  for (const [what, chunk, reason] of [
    ['a layer the model lacks', zeroChunk('oor', layers, 0, 4, layout), 'out-of-range'],
    ['tokens past the prompt', zeroChunk('oor', 0, 18, 4, layout), 'out-of-range'],
    ['a page past the reservation', zeroChunk('oor', 0, 32, 2, layout), 'out-of-range'],
    ['another layout', zeroChunk('oor', 0, 0, 4, bf16), 'incompatible'],
    ['a second run in a layer the model lacks', zeroChunk('oor', 0, 16, 4, layout, [{ layer: layers, tokenStart: 0, tokenCount: 4 }]), 'out-of-range'],
    ['a second run past the prompt', zeroChunk('oor', 0, 16, 4, layout, [{ layer: 1, tokenStart: 20, tokenCount: 4 }]), 'out-of-range'],
  ] as const) {
    t.like(await sendChunk(peer, encodeMessage(chunk)), { ok: false, reason }, what);
  }
  t.like(await sendChunk(peer, encodeMessage(zeroChunk('oor', 0, 16, 4, layout))), { ok: true, layer: 0, tokenStart: 16 });
  t.like(await sendChunk(peer, encodeMessage(zeroChunk('oor', 0, 14, 4, layout))), { ok: true, layer: 0, tokenStart: 14 }, 'a run over two pages');
  t.like(await sendChunk(peer, encodeMessage(zeroChunk('oor', 0, 16, 4, layout, [{ layer: 1, tokenStart: 0, tokenCount: 2 }]))), { ok: true, layer: 0, tokenStart: 16 }, 'runs in two layers');
  peer.cancel('oor');
  await waitFor(() => free() === total(), 1000, 'the cancelled reservation');
  t.like(await sendChunk(peer, encodeMessage(zeroChunk('oor', 0, 0, 4, layout))), { ok: false, reason: 'cancelled' }, 'a chunk after cancel');

  t.like(await peer.reserve('inc', 40, 8), { ok: true, pages: 3 });
  const incTokens = await peer.tokens('inc', undefined, 5000);
  const acks = await peer.sendFiller('inc', layers, 40, { layer: layers - 1, page: 1 });
  t.true(acks.every((a) => a.ok));
  t.is(free(), total() - 3);
  const ack = await peer.prefillDone({ requestId: 'inc', promptTokens: 40, firstToken: 5 }, layers);
  t.like(ack, { ok: false, reason: 'incomplete' });
  t.is(ack.detail, `layer ${layers - 1} has 24 of 40 prompt tokens ([0, 16) [32, 40))`);
  t.is(free(), total(), 'the refused handoff\'s pages are back');
  // the gateway hears of it at once: one final message with the reason
  t.like((await incTokens.done)[0], { seq: 0, tokens: [], finishReason: 'error' });
  t.like(await peer.prefillDone({ requestId: 'inc', promptTokens: 40, firstToken: 5 }, layers), { ok: false, reason: 'cancelled' });

  t.like(await peer.reserve('pf', 16, 16), { ok: true, pages: 2 });
  const pfTokens = await peer.tokens('pf', undefined, 5000);
  t.true((await peer.sendFiller('pf', 1, 16)).every((a) => a.ok));
  peer.prefillFailed('pf');
  await waitFor(() => free() === total(), 1000, 'the reservation of a failed prefill');
  const [final] = await pfTokens.done;
  t.like(final, { seq: 0, finishReason: 'error' });
  t.regex(final!.error!, /prefill failed/);
  t.like(await sendChunk(peer, encodeMessage(zeroChunk('pf', 1, 0, 4, layout))), { ok: false, reason: 'cancelled' });
  // a prefill-failed for a request this process never reserved (it restarted under the same id while the KV
  // was on its way): no error to the gateway, which re-routes the request once it sees the restart
  const strayTokens = await peer.tokens('never-here', undefined, 500);
  peer.prefillFailed('never-here');
  t.deepEqual(await strayTokens.done, [], 'no tokens message for a request it does not hold');
});

test.serial('decode service - reserve refusals: incompatible layout, model or resume tokens, too large, duplicate id, no pages', async (t) => {
  const { svc, registry, peer } = service(t);
  await svc.start();
  const bf16Key = latentLayoutKey(latentKvLayout({ kvLoraRank: 64, ropeDim: 16, pageSize: 16, dtype: 'bf16' }));
  t.like(await peer.reserve('r0', 10, 10, { layoutKey: bf16Key }), { ok: false, reason: 'incompatible', pages: 0, leaseMs: 0, freePages: 32 });
  t.like(await peer.reserve('r0', 10, 10, { fingerprint: 'f'.repeat(64) }), { ok: false, reason: 'incompatible' });
  t.like(await peer.reserve('r0', 100, 100), { ok: false, reason: 'too-large' });
  // a resume's tokens (already generated on a lost node) outside this model's vocabulary
  t.like(await peer.reserve('r0', 10, 10, { resumeTokens: [5, stack.folder.config.vocabSize] }), { ok: false, reason: 'incompatible' });
  // replay tokens a resumed stream cannot have had: a stop token (it had ended), one outside the vocabulary
  t.like(await peer.reserve('r0', 10, 10, { replayTokens: [5, 1], eosTokenIds: [1] }), { ok: false, reason: 'incompatible' });
  t.like(await peer.reserve('r0', 10, 10, { replayTokens: [stack.folder.config.vocabSize] }), { ok: false, reason: 'incompatible' });
  for (let i = 0; i < 4; i++) t.like(await peer.reserve(`full-${i}`, 100, 28), { ok: true, pages: 8 });
  t.like(await peer.reserve('full-0', 1, 1), { ok: false, reason: 'duplicate-id', freePages: 0 });
  t.like(await peer.reserve('r1', 1, 1), { ok: false, reason: 'no-pages' });
  for (let i = 0; i < 4; i++) peer.cancel(`full-${i}`);
  await waitFor(() => free() === total(), 1000, 'the reservations to end');
  t.deepEqual(await metricValues(registry, 'latentwire_decode_refusals_total'), {
    'reserve/incompatible': 5, 'reserve/too-large': 1, 'reserve/duplicate-id': 1, 'reserve/no-pages': 1,
  });
});

test.serial('decode service - a replayed resume: the prompt\'s KV, prefill-done, then only the tokens after the replayed ones, equal to the uninterrupted stream\'s', async (t) => {
  const { svc, peer } = service(t);
  await svc.start();
  const cfg = stack.folder.config;
  const prompt = cases[0]!.input_ids;
  const run = async (id: string, over: Partial<Reserve>, first?: number) => {
    t.like(await peer.reserve(id, prompt.length, 8, { eosTokenIds: [], ...over }), { ok: true });
    const { done } = await peer.tokens(id);
    const { firstToken, acks } = await peer.prefill(prefillModel, id, prompt);
    t.true(acks.every((a) => a.ok));
    t.like(await peer.prefillDone({ requestId: id, promptTokens: prompt.length, firstToken: first ?? firstToken }, cfg.numLayers), { ok: true });
    return done;
  };
  const calm = await run('calm', {});
  const ids = calm.flatMap((m) => m.tokens);
  t.is(ids.length, 8);
  // the continuation after 3 tokens: the same reserve with them as replayTokens; the prefill's token is not t_0
  const resumed = await run('calm.r1', { replayTokens: ids.slice(0, 3) }, (ids[0]! + 1) % cfg.vocabSize);
  t.deepEqual(resumed.flatMap((m) => m.tokens), ids.slice(3), 'nothing sent for the replayed tokens, then the same ones');
  t.is(resumed[0]!.seq, 0);
  t.like(resumed.at(-1), { finishReason: 'length', usage: { promptTokens: prompt.length, completionTokens: 5 } });
  await stack.engine.idle();
  t.is(free(), total());
});

test.serial('decode service - cancel mid-decode ends the request and frees its pages within a second', async (t) => {
  const { svc, registry, peer } = service(t);
  await svc.start();
  const layers = stack.folder.config.numLayers;
  t.like(await peer.reserve('long', 5, 100), { ok: true, pages: 7 });
  t.true((await peer.sendFiller('long', layers, 5)).every((a) => a.ok));
  let firstAt = 0;
  const { done } = await peer.tokens('long', () => void (firstAt ||= performance.now()));
  t.like(await peer.prefillDone({ requestId: 'long', promptTokens: 5, firstToken: 7 }, layers), { ok: true });
  await waitFor(() => firstAt > 0 && stack.engine.steps > 0, 5000, 'decoding to start');
  const t0 = performance.now();
  peer.cancel('long');
  const ms = await waitFor(() => free() === total(), 1000, 'the pages of the cancelled request');
  const msgs = await done;
  t.like(msgs.at(-1), { finishReason: 'cancelled', usage: { promptTokens: 5 } });
  const completion = msgs.at(-1)!.usage!.completionTokens;
  t.true(completion >= 1 && completion < 100, `${completion} tokens before the cancel`);
  t.is(msgs.flatMap((m) => m.tokens).length, completion);
  t.log(`pages free ${ms.toFixed(0)} ms after the cancel was sent (${(performance.now() - t0).toFixed(0)} ms to the final message)`);
  t.deepEqual(await metricValues(registry, 'latentwire_decode_requests_finished_total'), { cancelled: 1 });
});

/** Rewrites the value after msgpack map key `key` (a fixstr) in place: a fixint, or a same-length fixstr. */
function patch(bytes: Uint8Array, key: string, value: number | string): Uint8Array {
  const out = Uint8Array.from(bytes);
  const k = [0xa0 | key.length, ...Buffer.from(key)];
  const at = out.findIndex((_, i) => k.every((b, j) => out[i + j] === b));
  if (at < 0) throw new Error(`key ${key} not found`);
  const v = at + k.length;
  if (typeof value === 'number') {
    if (out[v]! > 0x7f || value > 0x7f) throw new Error(`${key}: only fixints`);
    out[v] = value;
  } else {
    if (out[v] !== (0xa0 | value.length)) throw new Error(`${key}: only same-length fixstrs`);
    out.set(Buffer.from(value), v + 1);
  }
  return out;
}

test.serial('decode service - malformed and forged messages on every subject are refused, counted and logged; the node still serves', async (t) => {
  const logLines: string[] = [];
  const { svc, registry, peer } = service(t, { logLines });
  await svc.start();
  const s = svc.subjects;
  const layout = stack.model.cache.layout;
  const reserve = encodeMessage(reserveMessage({
    requestId: 'x', promptTokens: 4, maxTokens: 4, sampling: GREEDY, stopTokenIds: [], eosTokenIds: [], fingerprint: peer.fingerprint, layoutKey: peer.layoutKey,
  }));
  const chunk = zeroChunk('x', 0, 0, 4, layout);
  const kv = encodeMessage(chunk);
  const cancel = encodeMessage(cancelMessage({ requestId: 'x', reason: 'deadline' }));
  const garbage = Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff);
  const sent: [string, Uint8Array, WireRejectReason][] = [];
  for (const [subject, valid] of [[s.reserve(NODE), reserve], [s.kv(NODE), kv], [s.control(NODE), cancel]] as const) {
    sent.push([subject, garbage, 'malformed'], [subject, valid.subarray(0, valid.length - 3), 'malformed'], [subject, patch(valid, 'v', WIRE_VERSION + 1), 'version']);
  }
  sent.push(
    [s.reserve(NODE), patch(reserve, 'type', 'reservX'), 'unknown-type'],
    [s.reserve(NODE), cancel, 'unexpected-type'],
    [s.kv(NODE), reserve, 'unexpected-type'],
    [s.control(NODE), encodeMessage(tokensMessage({ requestId: 'x', seq: 0, tokens: [1] })), 'unexpected-type'],
    [s.reserve(NODE), patch(reserve, 'promptTokens', 0), 'invalid'],
    [s.control(NODE), patch(cancel, 'reason', 'deadlinX'), 'invalid'],
    [s.kv(NODE), encodeMessage({ ...chunk, checksum: (chunk.checksum ^ 1) >>> 0 }), 'checksum'],
    [s.kv(NODE), patch(kv, 'tokenCount', 3), 'size'],
    [s.kv(NODE), patch(kv, 'layoutKey', chunk.layoutKey.replace('fp8_e4m3', 'fp8_e5m2')), 'size'], // that layout's tokens are smaller
  );
  for (const [subject, bytes] of sent) nc.publish(subject, bytes, { reply: createInbox() });
  // a refused request gets no reply: the requester's timeout reports it
  await t.throwsAsync(nc.request(s.reserve(NODE), garbage, { timeout: 300 }));
  const want: Partial<Record<WireRejectReason, number>> = {};
  for (const [, , reason] of [...sent, ['', garbage, 'malformed'] as const]) want[reason] = (want[reason] ?? 0) + 1;
  const reasons = Object.keys(want) as WireRejectReason[];
  await waitFor(() => reasons.every((r) => svc.rejections.count(r) === want[r]!), 3000, 'every refusal to be counted');
  const metric = await metricValues(registry, WIRE_REJECTED_METRIC);
  for (const r of reasons) t.is(Object.entries(metric).filter(([k]) => k.endsWith(`/${r}`)).reduce((n, [, v]) => n + v, 0), want[r]!, r);
  t.is(metric['unknown/malformed'], want.malformed!);
  t.is(metric['kv-chunk/checksum'], 1);
  t.is(logLines.filter((l) => l.includes('wire message rejected')).length, sent.length + 1);
  t.false(logLines.some((l) => l.includes('handler failed')));
  t.like(await peer.reserve('after', 4, 4), { ok: true }, 'a valid request is still served');
  peer.cancel('after');
  await waitFor(() => free() === total(), 1000, 'the reservation to end');
});
