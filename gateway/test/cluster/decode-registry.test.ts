// The decode registry over a real nats-server: nodes appear with their heartbeats and go when they stop,
// a restart (seq going back) is taken, and refused heartbeats are counted and ignored.
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { WIRE_VERSION, WireRejections, cancelMessage, encodeMessage, wireSubjects } from '@latentwire/protocol';
import type { ExecutionContext } from 'ava';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { DecodeRegistry, type NodeEvent } from '../../src/index.js';
import { ScriptedDecodeNode } from './helpers/scripted-decode-node.js';
import { servers, stopServers } from './helpers/servers.js';
import { until } from './helpers/test-cluster.js';

test.after.always(stopServers);

const TIMEOUT_MS = 400;
const PROBE_MS = 100;

async function setup(t: ExecutionContext) {
  const { natsUrl } = await servers();
  const subjects = wireSubjects(`test.${randomUUID().slice(0, 8)}`);
  const nc = await connect({ servers: natsUrl });
  const metrics = new Registry();
  const rejections = new WireRejections({ logger: pino({ level: 'silent' }), registry: metrics });
  const registry = new DecodeRegistry({ nc, subjects, heartbeatTimeoutMs: TIMEOUT_MS, probeTimeoutMs: PROBE_MS, rejections, logger: pino({ level: 'silent' }) });
  await registry.ready();
  const events: (NodeEvent & { at: number })[] = [];
  registry.onNodeEvent((e) => void events.push({ ...e, at: performance.now() }));
  const nodes: ScriptedDecodeNode[] = [];
  t.teardown(async () => {
    registry.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await nc.close();
  });
  const node = async (nodeId: string, fingerprint = 'fp-a', extra: { totalPages?: number; maxContext?: number } = {}) => {
    const n = await ScriptedDecodeNode.start({ nodeId, fingerprint, subjects, natsUrl, heartbeatMs: 50, ...extra });
    nodes.push(n);
    return n;
  };
  return { nc, subjects, registry, rejections, metrics, events, node };
}

test.serial('registry - nodes appear with heartbeats and disappear after the timeout', async (t) => {
  const { registry, events, node } = await setup(t);
  const a = await node('node-a', 'fp-a', { totalPages: 100, maxContext: 4096 });
  const b = await node('node-b', 'fp-a', { totalPages: 10, maxContext: 4096 });
  await until(() => registry.nodes().length === 2, 2000, 'two nodes');
  t.deepEqual(registry.compatible('fp-a').map((n) => n.nodeId), ['node-a', 'node-b']);
  t.is(registry.node('node-a')!.heartbeat.totalPages, 100);
  t.is(registry.maxRequestTokens('fp-a'), 100 * 16); // min(maxContext 4096, 100 pages · 16)

  a.pause();
  a.ignorePings = true; // gone: the probe of a silent node gets no pong either
  const silentFrom = performance.now();
  await until(() => registry.node('node-a') === undefined, 3 * TIMEOUT_MS, 'node-a dropped');
  const lost = events.find((e) => e.kind === 'lost' && e.nodeId === 'node-a')!;
  // Dropped between one and 1.25 timeouts after its last beat (the sweep runs every timeout / 4; the probe of a
  // node that does not answer costs at most the ping's round trip), with margin.
  t.true(lost.at - silentFrom >= TIMEOUT_MS - 60, `dropped after ${lost.at - silentFrom} ms`);
  t.true(lost.at - silentFrom <= 1.25 * TIMEOUT_MS + PROBE_MS + 250, `dropped after ${lost.at - silentFrom} ms`);
  t.deepEqual(registry.compatible('fp-a').map((n) => n.nodeId), ['node-b']);
  t.is(registry.maxRequestTokens('fp-a'), 10 * 16);

  // It comes back with its next heartbeat.
  a.resume();
  await until(() => registry.node('node-a') !== undefined, 1000, 'node-a back');
  b.pause();
  b.ignorePings = true;
  await until(() => registry.node('node-b') === undefined, 3 * TIMEOUT_MS, 'node-b dropped');
  t.deepEqual(registry.compatible('fp-a').map((n) => n.nodeId), ['node-a']);
});

test.serial('registry - a blocked event loop in the gateway is not the nodes\' silence: they get the stalled time back', async (t) => {
  const { registry, events, node } = await setup(t);
  const a = await node('node-a');
  await until(() => registry.node('node-a') !== undefined, 2000, 'node-a');
  // The node goes silent as the loop blocks: only the stall accounting keeps it past the block's end.
  a.pause();
  a.ignorePings = true;
  const end = performance.now() + 4 * TIMEOUT_MS;
  while (performance.now() < end) {
    // a long synchronous stretch (a huge JSON body, a slow tokenizer call): no timer, no socket read
  }
  await new Promise((r) => setTimeout(r, TIMEOUT_MS / 2));
  t.truthy(registry.node('node-a'), 'not dropped at once after the block');
  t.deepEqual(events.filter((e) => e.kind === 'lost'), []);
  // really silent: dropped a timeout later
  await until(() => registry.node('node-a') === undefined, 3 * TIMEOUT_MS, 'node-a dropped after the timeout');
});

test.serial('registry - a seq going backwards is a restart: the new heartbeat is taken', async (t) => {
  const { registry, events, node } = await setup(t);
  const a = await node('node-a');
  await until(() => (registry.node('node-a')?.heartbeat.seq ?? 0) >= 3, 2000, 'a few beats');
  a.pause();
  a.figures.freePages = 7;
  a.restart();
  await until(() => events.some((e) => e.kind === 'restarted'), 1000, 'restart event');
  t.is(registry.node('node-a')!.heartbeat.seq, 0);
  t.is(registry.node('node-a')!.freePages, 7);
});

test.serial('registry - compatible lists only nodes serving the fingerprint (and layout, when asked)', async (t) => {
  const { registry, node } = await setup(t);
  await node('node-a', 'fp-a');
  await node('node-other', 'fp-other');
  await until(() => registry.nodes().length === 2, 2000, 'two nodes');
  t.deepEqual(registry.compatible('fp-a').map((n) => n.nodeId), ['node-a']);
  t.deepEqual(registry.compatible('fp-other').map((n) => n.nodeId), ['node-other']);
  t.deepEqual(registry.compatible('fp-a', 'latent-v1/bf16/r64+16/p16'), []);
  t.is(registry.compatible('fp-a', 'latent-v1/fp8_e4m3/r64+16/p16').length, 1);
  t.is(registry.maxRequestTokens('fp-none'), undefined);
});

test.serial('registry - malformed heartbeats are counted and ignored', async (t) => {
  const { nc, subjects, registry, rejections, metrics, node } = await setup(t);
  nc.publish(subjects.heartbeat, new Uint8Array([0xc1])); // not msgpack
  nc.publish(subjects.heartbeat, encodeMessage(cancelMessage({ requestId: 'r1', reason: 'deadline' }))); // wrong type
  // {v: WIRE_VERSION, type: 'heartbeat'} and nothing else, hand-encoded: a fixmap of two entries.
  const enc = new TextEncoder();
  const bare = new Uint8Array([0x82, 0xa1, ...enc.encode('v'), WIRE_VERSION, 0xa4, ...enc.encode('type'), 0xa9, ...enc.encode('heartbeat')]);
  nc.publish(subjects.heartbeat, bare);
  await nc.flush();
  await node('node-a'); // a good one after the bad ones: it is still heard
  await until(() => registry.nodes().length === 1, 2000, 'the good node');
  t.is(rejections.count('malformed'), 1);
  t.is(rejections.count('unexpected-type'), 1);
  t.is(rejections.count('invalid'), 1);
  t.deepEqual(registry.nodes().map((n) => n.nodeId), ['node-a']);
  const text = await metrics.metrics();
  t.regex(text, /latentwire_wire_rejected_total\{type="heartbeat",reason="invalid"\} 1/);
  t.regex(text, /latentwire_wire_rejected_total\{type="unknown",reason="malformed"\} 1/);
});
