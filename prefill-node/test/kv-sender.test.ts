// KvSender on its own (no GPU): synthetic layers to the fake decode node over a real nats-server with a
// 64 KiB max_payload. When the window has room each layer streams as it is handed over; when the window
// holds the sender back, later layers join the queue and chunks pack the tail of one layer with the next,
// every run landing in its own layer; failures and cancels still stop it.
import test from 'ava';
import { randomFillSync, randomUUID } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { kvChunkRuns, latentKvLayout, pagesFor, WireRejections, wireSubjects, type LatentKvLayout } from '@latentwire/protocol';
import { startNatsServer } from '@latentwire/testing';
import { KvSender, PrefillMetrics, prefillConnectOptions, SendWindows, type KvSendContext } from '../src/index.js';
import { FakeDecodeNode } from './helpers/fake-decode-node.js';

const MAX_PAYLOAD = 65_536;
const layout = latentKvLayout({ dtype: 'fp8_e4m3', kvLoraRank: 512, ropeDim: 64, pageSize: 16 }); // 10,304 B pages: 6 a chunk
const TOKENS = 16 * 8 + 5; // 9 pages a layer, the last partial: 6 + 3 pages per layer when sent alone
const LAYERS = 6;

async function setup(t: import('ava').ExecutionContext, opts: { windowBytes: number; ackDelayMs?: number }) {
  const server = await startNatsServer({ maxPayload: MAX_PAYLOAD });
  const nc = await connect({ servers: server.url, ...prefillConnectOptions(undefined) }); // the prefill node's own options
  const decodeNc = await connect({ servers: server.url });
  t.teardown(async () => { await nc.close(); await decodeNc.close(); await server.stop(); });
  const subjects = wireSubjects(`t.${randomUUID().slice(0, 8)}`);
  const decode = await FakeDecodeNode.start(decodeNc, subjects, 'decode-a', { ackDelayMs: opts.ackDelayMs });
  const registry = new Registry(), logger = pino({ level: 'silent' });
  const ctx: KvSendContext = {
    nc, subjects, logger, ackTimeoutMs: 10_000, windows: new SendWindows(opts.windowBytes),
    metrics: new PrefillMetrics(registry), rejections: new WireRejections({ logger, registry }),
  };
  const layers = Array.from({ length: LAYERS }, () => randomFillSync(new Uint8Array(pagesFor(layout, TOKENS) * layout.pageBytes)));
  return { ctx, decode, layers };
}

function assertPlaced(t: import('ava').ExecutionContext, decode: FakeDecodeNode, requestId: string, l: LatentKvLayout, layers: Uint8Array[]) {
  const got = decode.pages(requestId, l, LAYERS, TOKENS);
  for (let i = 0; i < LAYERS; i++) {
    // the partial last page's unused slots are not sent: compare the sent bytes only
    const last = (pagesFor(l, TOKENS) - 1) * l.pageBytes, filled = TOKENS % l.pageSize;
    const same = (a: number, b: number) => Buffer.from(got[i]!.subarray(a, b)).equals(layers[i]!.subarray(a, b));
    t.true(same(0, last + filled * l.rowBytes) && same(last + l.scalesOffset, last + l.scalesOffset + filled * l.scaleBytes), `layer ${i}`);
  }
}

test('kv sender - a window with room: each layer streams as it comes (no chunk waits for the next layer)', async (t) => {
  const { ctx, decode, layers } = await setup(t, { windowBytes: 64 << 20 });
  const sender = new KvSender(ctx, { requestId: 'req-1', decodeNodeId: 'decode-a', layout, tokens: TOKENS }, new AbortController().signal);
  for (let l = 0; l < LAYERS; l++) {
    await sender.sendLayer(l, layers[l]!);
    await sender.flush(); // compute between layers: the previous layer is out before the next exists
  }
  const chunks = decode.chunksOf('req-1');
  t.is(chunks.length, 2 * LAYERS, '6 + 3 pages a layer');
  t.true(chunks.every((c) => c.moreRuns === undefined));
  assertPlaced(t, decode, 'req-1', layout, layers);
});

test('kv sender - a full window: later layers join the queue and chunks span layers, filling max_payload', async (t) => {
  const { ctx, decode, layers } = await setup(t, { windowBytes: 1, ackDelayMs: 30 }); // one chunk in flight at a time
  const sender = new KvSender(ctx, { requestId: 'req-2', decodeNodeId: 'decode-a', layout, tokens: TOKENS }, new AbortController().signal);
  for (let l = 0; l < LAYERS; l++) await sender.sendLayer(l, layers[l]!);
  await sender.flush();
  const chunks = decode.chunksOf('req-2');
  const runs = chunks.flatMap((c) => kvChunkRuns(c));
  t.true(chunks.some((c) => c.moreRuns !== undefined), 'some chunk spans layers');
  t.true(chunks.length < 2 * LAYERS, `${chunks.length} chunks, fewer than one-layer chunks' ${2 * LAYERS}`);
  t.deepEqual(runs.map((r) => r.layer), [...runs.map((r) => r.layer)].sort((a, b) => a - b), 'layers in order');
  for (let l = 0; l < LAYERS; l++) t.is(runs.filter((r) => r.layer === l).reduce((s, r) => s + r.tokenCount, 0), TOKENS, `layer ${l}: every token once`);
  assertPlaced(t, decode, 'req-2', layout, layers);
  t.true(decode.maxInFlightBytes <= MAX_PAYLOAD);
  t.is(ctx.windows.inFlight('decode-a'), 0);
});

test('kv sender - a cancel while layers are queued stops it: sendLayer and flush throw the reason, nothing more is sent', async (t) => {
  const { ctx, decode, layers } = await setup(t, { windowBytes: 1, ackDelayMs: 100 });
  const cancel = new AbortController();
  const sender = new KvSender(ctx, { requestId: 'req-3', decodeNodeId: 'decode-a', layout, tokens: TOKENS }, cancel.signal);
  await sender.sendLayer(0, layers[0]!);
  const second = sender.sendLayer(1, layers[1]!); // waits: the first chunk holds the window
  cancel.abort(new Error('client gone'));
  await t.throwsAsync(second, { message: 'client gone' });
  await t.throwsAsync(sender.flush(), { message: 'client gone' });
  await t.throwsAsync(sender.sendLayer(2, layers[2]!), { message: 'client gone' });
  await new Promise((r) => setTimeout(r, 300));
  t.true(decode.chunksOf('req-3').length <= 2, `${decode.chunksOf('req-3').length} chunks after the cancel`);
  t.is(ctx.windows.inFlight('decode-a'), 0);
});

test('prefillConnectOptions - no async stack per request (every kv-chunk is one), credentials kept', (t) => {
  t.is(prefillConnectOptions(undefined).noAsyncTraces, true);
  const o = prefillConnectOptions({ user: 'u', pass: 'p' });
  t.like(o, { name: 'latentwire-prefill', noAsyncTraces: true, user: 'u', pass: 'p' });
});
