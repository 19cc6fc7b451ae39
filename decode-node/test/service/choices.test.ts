// Choices (n > 1) on the decode node as a NATS service, the test playing gateway and prefill node: a reserve
// of n choices leases the prompt's full pages once and each choice's own; the KV arrives once; prefill-done
// with the choices' first tokens starts one sequence per choice, each on its own tokens subject
// (<requestId>.<i>); a choice its first token ends finishes at once, a cancelled one alone; a prefill-done whose
// first tokens do not match the reserved n is refused and frees everything.
import test, { type ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { choiceRequestId, type Tokens } from '@latentwire/protocol';
import { FIXTURE_DIR, startNatsServer } from '@latentwire/testing';
import { testGpu } from '@latentwire/gpu/testing';
import { decodeSettings } from '../../src/config.js';
import { loadDecodeStack, type DecodeStack } from '../../src/engine/load.js';
import { DecodeNodeService } from '../../src/service/decode-node-service.js';
import { Peer, waitFor } from './peer.js';

const NODE = 'decode-choices.1';
const SETTINGS = { pageSize: 16, maxBatch: 4, numPages: 32, kvDtype: 'fp8_e4m3', maxContext: 128, maxWaiting: 8, leaseMs: 10_000 } as const;
const EOS = 1;
let server: Awaited<ReturnType<typeof startNatsServer>>;
let nc: NatsConnection;
let stack: DecodeStack;

test.before(async () => {
  server = await startNatsServer({ maxPayload: 1500 });
  nc = await connect({ servers: server.url });
  stack = await loadDecodeStack(await testGpu(), FIXTURE_DIR, (cfg) => decodeSettings(cfg, {}, SETTINGS));
});

test.after.always(async () => {
  await nc?.close();
  await server?.stop();
  stack?.release();
});

async function started(t: ExecutionContext) {
  const svc = new DecodeNodeService({
    nats: server.url, nodeId: NODE, subjectPrefix: `t.${randomUUID().slice(0, 8)}`, stack,
    heartbeatMs: 60_000, tokenFlushMs: 5, logger: pino({ level: 'silent' }), registry: new Registry(),
  });
  t.teardown(() => svc.stop());
  await svc.start();
  return new Peer(nc, svc.subjects, NODE, stack.folder.fingerprint, stack.model.cache.layout);
}

const total = () => stack.engine.stats().totalPages;
const free = () => stack.engine.stats().freePages;
const ids = (ms: Tokens[]) => ms.flatMap((m) => m.tokens);

test.serial('choices - one reservation and one KV transfer for n = 3; each choice decodes on its own subject; one over at its first token, one cancelled alone; pages back', async (t) => {
  const peer = await started(t);
  const layers = stack.folder.config.numLayers;
  // 40 prompt tokens + 20 each: pagesFor(60) = 4 pages a choice, the 2 full prompt pages shared: 2 + 3 × 2
  t.like(await peer.reserve('ch', 40, 20, { n: 3, eosTokenIds: [EOS], sampling: { temperature: 1, topK: 0, topP: 1, seed: 9 } }), { ok: true, pages: 8 });
  t.is(free(), total() - 8);
  t.true((await peer.sendFiller('ch', layers, 40)).every((a) => a.ok));
  const streams = await Promise.all([0, 1, 2].map((i) => peer.tokens(choiceRequestId('ch', i), undefined, 30_000)));
  const ack = await peer.prefillDone({ requestId: 'ch', promptTokens: 40, firstToken: 5, moreChoices: [{ firstToken: 6 }, { firstToken: EOS }] }, layers);
  t.like(ack, { ok: true });
  const third = await streams[2]!.done;
  t.deepEqual(ids(third), [EOS], 'over at its first token');
  t.like(third.at(-1), { finishReason: 'stop', usage: { promptTokens: 40, completionTokens: 1 } });
  peer.cancel(choiceRequestId('ch', 0));
  const [first, second] = await Promise.all([streams[0]!.done, streams[1]!.done]);
  t.is(first.at(-1)!.finishReason, 'cancelled');
  t.is(ids(first)[0], 5);
  t.is(second.at(-1)!.finishReason, 'length');
  t.deepEqual(ids(second).length, 20);
  t.is(ids(second)[0], 6);
  await waitFor(() => free() === total(), 1000, 'every choice\'s pages');
});

test.serial('choices - a prefill-done whose first tokens do not match the reserved n is refused; the reservation and its pages go', async (t) => {
  const peer = await started(t);
  const layers = stack.folder.config.numLayers;
  t.like(await peer.reserve('bad', 20, 4, { n: 2 }), { ok: true, pages: 1 + 2 * 1 });
  t.true((await peer.sendFiller('bad', layers, 20)).every((a) => a.ok));
  const parent = await peer.tokens('bad', undefined, 5000);
  const ack = await peer.prefillDone({ requestId: 'bad', promptTokens: 20, firstToken: 5 }, layers);
  t.like(ack, { ok: false, reason: 'incompatible' });
  t.is(free(), total());
  // the gateway hears of it on the request's own subject
  t.like((await parent.done)[0], { seq: 0, finishReason: 'error' });
});
