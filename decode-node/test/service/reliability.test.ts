// The decode node's reliability paths over a real nats-server and real WebGPU on the tiny fixture: lease
// renewal, the ping probe, acknowledged cancels, cancelling the requests of a gateway gone silent, and drain.
// The test plays the gateway and the prefill node (Peer). Every test must leave every page free.
import test, { type ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { FIXTURE_DIR, startNatsServer } from '@latentwire/testing';
import { testGpu } from '@latentwire/gpu/testing';
import {
  SUBJECT_TYPES, cancelMessage, decodeMessage, encodeMessage, gatewayHeartbeatMessage, pingMessage, renewMessage, replayMessage, type Heartbeat, type Tokens,
} from '@latentwire/protocol';
import { decodeSettings } from '../../src/config.js';
import { loadDecodeStack, type DecodeStack } from '../../src/engine/load.js';
import { DecodeNodeService } from '../../src/service/decode-node-service.js';
import { Peer, waitFor } from './peer.js';

const NODE = 'decode-rel.1';
const LEASE_MS = 800;
const SETTINGS = { pageSize: 16, maxBatch: 4, numPages: 32, kvDtype: 'fp8_e4m3', maxContext: 128, maxWaiting: 8, leaseMs: LEASE_MS } as const;
let server: Awaited<ReturnType<typeof startNatsServer>>;
let nc: NatsConnection;
let stack: DecodeStack;

test.before(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
  stack = await loadDecodeStack(await testGpu(), FIXTURE_DIR, (cfg) => decodeSettings(cfg, {}, SETTINGS));
});

test.after.always(async () => {
  await nc?.close();
  await server?.stop();
  stack?.release();
});

function service(t: ExecutionContext, opts: { gatewaySilenceMs?: number; heartbeatMs?: number } = {}) {
  const svc = new DecodeNodeService({
    nats: server.url, nodeId: NODE, subjectPrefix: `t.${randomUUID().slice(0, 8)}`, stack,
    heartbeatMs: opts.heartbeatMs ?? 60_000, tokenFlushMs: 5, logger: pino({ level: 'silent' }), registry: new Registry(),
    gatewaySilenceMs: opts.gatewaySilenceMs,
  });
  t.teardown(() => svc.stop());
  const peer = new Peer(nc, svc.subjects, NODE, stack.folder.fingerprint, stack.model.cache.layout);
  return { svc, peer };
}

const total = () => stack.engine.stats().totalPages;
const free = () => stack.engine.stats().freePages;
const layers = () => stack.folder.config.numLayers;

/** A reserved request with every layer's KV in and prefill-done acked: decoding from here. */
async function decoding(peer: Peer, requestId: string, maxTokens: number, gatewayId?: string): Promise<{ done: Promise<Tokens[]> }> {
  const r = await peer.reserve(requestId, 5, maxTokens, gatewayId ? { gatewayId } : {});
  if (!r.ok) throw new Error(`reserve ${requestId}: ${r.reason}`);
  await peer.sendFiller(requestId, layers(), 5);
  const stream = await peer.tokens(requestId, undefined, 30_000);
  const ack = await peer.prefillDone({ requestId, promptTokens: 5, firstToken: 7 }, layers());
  if (!ack.ok) throw new Error(`prefill-done ${requestId}: ${ack.reason}`);
  return stream;
}

test.serial('reliability - renew keeps a reservation past its lease while the prefill waits; unrenewed it expires', async (t) => {
  const { svc, peer } = service(t);
  await svc.start();
  t.like(await peer.reserve('slow', 5, 8), { ok: true });
  const t0 = performance.now();
  while (performance.now() - t0 < 2.5 * LEASE_MS) {
    nc.publish(svc.subjects.control(NODE), encodeMessage(renewMessage({ requestIds: ['slow', 'unknown-id'] })));
    await sleep(LEASE_MS / 4);
  }
  t.truthy(stack.engine.scheduler.reservation('slow'), 'alive after 2.5 leases of renewals');
  t.true((await peer.sendFiller('slow', layers(), 5)).every((a) => a.ok), 'its KV is still taken');
  await waitFor(() => stack.engine.scheduler.reservation('slow') === undefined, 3 * LEASE_MS, 'the unrenewed lease to expire');
  t.is(free(), total());
});

test.serial('reliability - ping is answered with a pong naming the node; a cancel sent as a request is acknowledged', async (t) => {
  const { svc, peer } = service(t);
  await svc.start();
  const pong = decodeMessage((await nc.request(svc.subjects.ping(NODE), encodeMessage(pingMessage({ nonce: 42 })), { timeout: 2000 })).data, SUBJECT_TYPES.pingReply);
  t.like(pong, { type: 'pong', nodeId: NODE, nonce: 42 });
  t.falsy(pong.draining);
  t.like(await peer.reserve('c1', 5, 8), { ok: true });
  const cancel = () => nc.request(svc.subjects.control(NODE), encodeMessage(cancelMessage({ requestId: 'c1', reason: 'client-disconnected' })), { timeout: 2000 });
  t.like(decodeMessage((await cancel()).data, SUBJECT_TYPES.cancelReply), { requestId: 'c1', ended: true });
  t.like(decodeMessage((await cancel()).data, SUBJECT_TYPES.cancelReply), { requestId: 'c1', ended: false }, 'a retry is acked too');
  t.is(free(), total());
});

test.serial('reliability - the sequences of a gateway that goes silent are cancelled and their pages freed; a live gateway\'s are not', async (t) => {
  const silenceMs = 1500;
  const { svc, peer } = service(t, { gatewaySilenceMs: silenceMs });
  await svc.start();
  const beat = (gatewayId: string, seq: number) =>
    nc.publish(svc.subjects.gatewayHeartbeat, encodeMessage(gatewayHeartbeatMessage({ gatewayId, seq, intervalMs: 100, sentAt: Date.now() })));
  let seq = 0;
  let deadAlive = true;
  const timer = setInterval(() => {
    beat('gw-live', seq);
    if (deadAlive) beat('gw-dead', seq);
    seq++;
  }, 100);
  t.teardown(() => clearInterval(timer));
  const dead = await decoding(peer, 'of-dead', 120, 'gw-dead');
  const live = await decoding(peer, 'of-live', 24, 'gw-live');
  deadAlive = false; // kill -9 of gw-dead: its beats stop
  const stopped = performance.now();
  const msgs = await dead.done;
  t.is(msgs.at(-1)!.finishReason, 'cancelled');
  const ms = performance.now() - stopped;
  t.true(ms < silenceMs * 4 + 2000, `cancelled ${ms.toFixed(0)} ms after its gateway's last beat`);
  t.is((await live.done).at(-1)!.finishReason, 'length', 'the live gateway\'s request runs to its end');
  await waitFor(() => free() === total(), 2000, 'every page back');
});

test.serial('reliability - drain: draining announced at once, reserves refused, a request waiting for KV gets an error event, the running one finishes, every page free', async (t) => {
  const { svc, peer } = service(t, { heartbeatMs: 60_000 });
  await svc.start();
  const beats: Heartbeat[] = [];
  const sub = nc.subscribe(svc.subjects.heartbeat, { callback: (_e, m) => void beats.push(decodeMessage(m.data, SUBJECT_TYPES.heartbeat)) });
  t.teardown(() => sub.unsubscribe());
  await nc.flush();
  const running = await decoding(peer, 'running', 20);
  t.like(await peer.reserve('waiting', 5, 8), { ok: true });
  const waiting = await peer.tokens('waiting', undefined, 10_000);
  const drained = svc.drain(20_000);
  await waitFor(() => beats.some((b) => b.draining === true), 2000, 'a draining heartbeat');
  t.like(await peer.reserve('late', 5, 8), { ok: false, reason: 'queue-full' });
  const w = await waiting.done;
  t.like(w.at(-1), { finishReason: 'error' });
  t.regex(w.at(-1)!.error!, /draining/);
  const r = await running.done;
  t.is(r.at(-1)!.finishReason, 'length', 'the running sequence finished, not cut off');
  t.is(r.flatMap((m) => m.tokens).length, 20);
  t.deepEqual(await drained, { failedWaiting: 1, cutOff: 0 });
  t.is(free(), total());
});

test.serial('reliability - replay publishes a request\'s tokens messages again from a seq, also after it finished', async (t) => {
  const { svc, peer } = service(t);
  await svc.start();
  const first = await decoding(peer, 'rp', 12);
  const msgs = await first.done;
  t.is(msgs.at(-1)!.finishReason, 'length');
  const again = await peer.tokens('rp', undefined, 5000);
  nc.publish(svc.subjects.control(NODE), encodeMessage(replayMessage({ requestId: 'rp', fromSeq: 1 })));
  const replayed = await again.done;
  t.deepEqual(replayed, msgs.slice(1), 'the same messages from seq 1 on');
  t.is(free(), total());
});
