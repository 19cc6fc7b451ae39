// How prefill jobs end when things go wrong, against a real nats-server, redis-server and the tiny fixture on
// WebGPU: refusals and cancels end a job quietly without retry and stop its sends; bad jobs fail at once;
// ack timeouts and malformed replies are retried with backoff, and the last attempt frees the reservation.
import test from 'ava';
import { cancelMessage, decodeMessage, encodeMessage, kvAckMessage, prefillDoneAckMessage, SUBJECT_TYPES, WIRE_REJECTED_METRIC, type PrefillHeartbeat } from '@latentwire/protocol';
import { readFixtureJson } from '@latentwire/testing';
import { FakeDecodeNode, okAck } from './helpers/fake-decode-node.js';
import { metricValue, sleep, startCluster, startTestNode, type Cluster } from './helpers/cluster.js';

const ids = readFixtureJson<{ cases: { input_ids: number[] }[] }>('reference.json').cases[0]!.input_ids;
/** Long enough for a chunk that was going to be sent to have arrived. */
const GRACE_MS = 300;
const RETRY = { attempts: 3, backoff: { type: 'fixed', delay: 50 } } as const;

let cluster: Cluster;
test.before(async () => void (cluster = await startCluster()));
test.after.always(() => cluster?.stop());

test.serial('prefill node - a kv-ack refused as cancelled ends the job quietly, without retry or further chunks', async (t) => {
  // window 1 B: one chunk in flight at a time, so nothing may follow the refused one
  const node = await startTestNode(t, cluster, { promptIds: ids, maxInFlightBytes: 1 });
  const decode = await FakeDecodeNode.start(node.decodeNc, node.service.subjects, 'decode-a', {
    kvReply: (m) => encodeMessage(kvAckMessage({ requestId: m.requestId, layer: m.layer, tokenStart: m.tokenStart, ok: false, reason: 'cancelled' })),
  });
  const job = await node.finished(await node.enqueue({ requestId: 'req-c', decodeNodeId: 'decode-a' }, RETRY));
  await sleep(GRACE_MS);
  t.is(await job.getState(), 'completed');
  t.like(job.returnvalue, { outcome: 'gone', requestId: 'req-c' });
  t.is(job.attemptsStarted, 1);
  t.is(decode.chunks.length, 1);
  t.is(decode.done.length + decode.failed.length, 0);
  t.is(await metricValue(node.registry, 'latentwire_prefill_jobs_total', { outcome: 'gone' }), 1);
});

test.serial('prefill node - a cancel on prefill-cancel mid-stream stops the sends at once and the job is not retried', async (t) => {
  const node = await startTestNode(t, cluster, { promptIds: ids, maxInFlightBytes: 1 });
  // the first chunk: the cancel goes out while its ack is held back and the other layers wait for the window
  // (chunks span layers, so the whole prompt may take as few as two chunks: a later one might never come)
  const cancelAt = 0;
  let sentBeforeCancel = -1;
  const decode = await FakeDecodeNode.start(node.decodeNc, node.service.subjects, 'decode-a', {
    ackDelayMs: GRACE_MS,
    onChunk: (m, i) => {
      if (i !== cancelAt) return;
      sentBeforeCancel = i + 1;
      node.decodeNc.publish(node.service.subjects.prefillCancel, encodeMessage(cancelMessage({ requestId: m.requestId, reason: 'client-disconnected' })));
    },
  });
  const job = await node.finished(await node.enqueue({ requestId: 'req-x', decodeNodeId: 'decode-a' }, RETRY));
  await sleep(GRACE_MS);
  t.is(await job.getState(), 'completed');
  t.like(job.returnvalue, { outcome: 'cancelled', requestId: 'req-x' });
  t.is(job.attemptsStarted, 1);
  t.is(decode.chunks.length, sentBeforeCancel, 'no chunk after the cancel');
  t.is(decode.done.length + decode.failed.length, 0);
  t.is(await metricValue(node.registry, 'latentwire_prefill_jobs_total', { outcome: 'cancelled' }), 1);
});

test.serial('prefill node - a job whose request was cancelled before it started is skipped', async (t) => {
  const node = await startTestNode(t, cluster, { promptIds: ids });
  const decode = await FakeDecodeNode.start(node.decodeNc, node.service.subjects, 'decode-a');
  node.decodeNc.publish(node.service.subjects.prefillCancel, encodeMessage(cancelMessage({ requestId: 'req-early', reason: 'deadline' })));
  for (let i = 0; !node.service.cancellations.isCancelled('req-early'); i++) {
    if (i > 200) return t.fail('cancel never arrived');
    await sleep(10);
  }
  const job = await node.finished(await node.enqueue({ requestId: 'req-early', decodeNodeId: 'decode-a' }, RETRY));
  t.like(job.returnvalue, { outcome: 'cancelled' });
  t.is(decode.chunks.length, 0);
});

test.serial('prefill node - invalid job data, another model or a passed deadline fail at once without retry', async (t) => {
  const node = await startTestNode(t, cluster, { promptIds: ids });
  const decode = await FakeDecodeNode.start(node.decodeNc, node.service.subjects, 'decode-a');
  const invalid = await node.finished((await node.queue.add('prefill', { v: 2, requestId: 'req-bad' }, RETRY)).id!);
  const otherModel = await node.finished(await node.enqueue({ requestId: 'req-model', decodeNodeId: 'decode-a', fingerprint: 'f'.repeat(64) }, RETRY));
  const late = await node.finished(await node.enqueue({ requestId: 'req-late', decodeNodeId: 'decode-a', deadline: Date.now() - 1000 }, RETRY));
  for (const job of [invalid, otherModel, late]) {
    t.is(await job.getState(), 'failed');
    t.is(job.attemptsStarted, 1, `${job.data.requestId} not retried`);
  }
  t.regex(invalid.failedReason, /prefill job .*decodeNodeId/);
  t.regex(otherModel.failedReason, /this node serves/);
  t.regex(late.failedReason, /deadline passed/);
  await sleep(100);
  // the decode node is told, so it frees the pages now (the invalid job names no node it could trust)
  t.deepEqual(decode.failed.map((m) => m.requestId).sort(), ['req-late', 'req-model']);
  t.is(decode.chunks.length, 0);
  t.is(await metricValue(node.registry, 'latentwire_prefill_jobs_total', { outcome: 'rejected' }), 3);
});

test.serial('prefill node - a prompt longer than its device can prefill (maxPromptTokens) is refused at once, without retry', async (t) => {
  const node = await startTestNode(t, cluster, { promptIds: ids, maxPromptTokens: ids.length - 1, heartbeatMs: 50 });
  // its heartbeats state the limit, so a gateway refuses longer prompts before queueing them
  const beats: PrefillHeartbeat[] = [];
  const sub = node.decodeNc.subscribe(node.service.subjects.prefillHeartbeat, { callback: (_e, m) => void beats.push(decodeMessage(m.data, SUBJECT_TYPES.prefillHeartbeat)) });
  t.teardown(() => sub.unsubscribe());
  const decode = await FakeDecodeNode.start(node.decodeNc, node.service.subjects, 'decode-a');
  const long = await node.finished(await node.enqueue({ requestId: 'req-long', decodeNodeId: 'decode-a' }, RETRY));
  t.is(await long.getState(), 'failed');
  t.is(long.attemptsStarted, 1);
  t.regex(long.failedReason, new RegExp(`${ids.length} tokens exceeds the ${ids.length - 1} this node's device can prefill`));
  const fits = await node.finished(await node.enqueue({ requestId: 'req-fits', decodeNodeId: 'decode-a', promptIds: ids.slice(1) }, RETRY));
  t.is(await fits.getState(), 'completed');
  await sleep(100);
  t.deepEqual(decode.failed.map((m) => m.requestId), ['req-long']);
  t.is(decode.chunks.filter((m) => m.requestId === 'req-long').length, 0);
  t.true(beats.length > 0 && beats.every((b) => b.maxPromptTokens === ids.length - 1), 'every heartbeat states the limit');
});

test.serial('prefill node - a decode node that never acks times out; the job is retried and its last attempt sends prefill-failed', async (t) => {
  const node = await startTestNode(t, cluster, { promptIds: ids, ackTimeoutMs: 300 });
  const decode = await FakeDecodeNode.start(node.decodeNc, node.service.subjects, 'decode-mute', { kvReply: () => undefined });
  const started = performance.now();
  const job = await node.finished(await node.enqueue({ requestId: 'req-t', decodeNodeId: 'decode-mute' }, { attempts: 2, backoff: { type: 'fixed', delay: 50 } }));
  const ms = performance.now() - started;
  await sleep(100);
  t.is(await job.getState(), 'failed');
  t.is(job.attemptsMade, 2);
  t.regex(job.failedReason, /no kv-ack within 300 ms/);
  t.true(ms >= 2 * 300, `two attempts of ≥ 300 ms each took ${Math.round(ms)} ms`);
  t.deepEqual(decode.failed.map((m) => m.requestId), ['req-t'], 'prefill-failed once, after the last attempt');
  t.regex(decode.failed[0]!.reason, /no kv-ack/);
  t.is(decode.done.length, 0);
  t.is(await metricValue(node.registry, 'latentwire_prefill_jobs_total', { outcome: 'retry' }), 1);
  t.is(await metricValue(node.registry, 'latentwire_prefill_jobs_total', { outcome: 'failed' }), 1);
  t.is(await metricValue(node.registry, 'latentwire_prefill_kv_in_flight_bytes'), 0);
});

test.serial('prefill node - a garbage kv-ack is refused and counted, the attempt retried, and the node keeps working', async (t) => {
  const node = await startTestNode(t, cluster, { promptIds: ids });
  const decode = await FakeDecodeNode.start(node.decodeNc, node.service.subjects, 'decode-a', {
    kvReply: (m, i) => (i === 0 ? Uint8Array.of(0xc1, 0x00, 0xff) : okAck(m)), // 0xc1: never valid msgpack
  });
  const job = await node.finished(await node.enqueue({ requestId: 'req-g', decodeNodeId: 'decode-a' }, RETRY));
  t.is(await job.getState(), 'completed', job.failedReason);
  t.like(job.returnvalue, { outcome: 'completed' });
  t.is(job.attemptsStarted, 2);
  t.is(await metricValue(node.registry, WIRE_REJECTED_METRIC, { type: 'unknown', reason: 'malformed' }), 1);
  t.is(await metricValue(node.registry, 'latentwire_prefill_jobs_total', { outcome: 'retry' }), 1);
  t.is(decode.done.length, 1);
  t.is(decode.failed.length, 0);
});

test.serial('prefill node - a prefill-done refused as incomplete fails the job without retry (the decode node dropped the reservation)', async (t) => {
  const node = await startTestNode(t, cluster, { promptIds: ids });
  const decode = await FakeDecodeNode.start(node.decodeNc, node.service.subjects, 'decode-a', {
    doneReply: (m) => encodeMessage(prefillDoneAckMessage({ requestId: m.requestId, ok: false, reason: 'incomplete', detail: 'layer 1 page 0' })),
  });
  const job = await node.finished(await node.enqueue({ requestId: 'req-i', decodeNodeId: 'decode-a' }, RETRY));
  t.is(await job.getState(), 'failed');
  t.is(job.attemptsStarted, 1);
  t.regex(job.failedReason, /refused prefill-done of req-i: incomplete \(layer 1 page 0\)/);
  await sleep(100);
  t.is(decode.done.length, 1);
  t.deepEqual(decode.failed.map((m) => m.requestId), ['req-i']);
});
