// A request that ends early (client disconnect, stop string) is cancelled everywhere: a cancel on the
// decode node's control subject and on the prefill-cancel broadcast within a second, and its BullMQ job
// removed if no prefill worker had taken it.
import test from 'ava';
import { EOS, MODEL_ID, REFERENCE, model } from '../http/helpers/fixture.js';
import { stopServers } from './helpers/servers.js';
import { startTestCluster, until } from './helpers/test-cluster.js';

test.after.always(stopServers);

const c = REFERENCE[1]!;
const body = (extra: object = {}) => JSON.stringify({ model: MODEL_ID, prompt: c.prompt, max_tokens: 100, ...extra });
const post = (base: string, b: string, signal: AbortSignal) =>
  fetch(`${base}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b, signal });

test.serial('cancellation - a client gone while its prefill job waits: cancels reach the node and the prefill nodes, the job is removed', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  // A prefill worker is on the queue (so admission takes the request) but paused: the job stays waiting.
  await tc.startPrefillWorker(() => undefined).pause();
  const ac = new AbortController();
  const response = post(tc.gateway.base, body(), ac.signal).catch(() => undefined);
  await until(() => a.reserves.length === 1, 2000, 'the reservation');
  const requestId = a.reserves[0]!.requestId;
  await until(async () => (await tc.cluster.queue.getJobState(requestId)) === 'waiting', 2000, 'the waiting job');
  const job = await tc.cluster.queue.getJob(requestId);
  t.like(job!.data, { requestId, decodeNodeId: 'node-a', promptIds: c.input_ids });
  t.false('maxTokens' in job!.data, 'the generation settings went with the reserve, not the job');
  t.like(a.reserves[0], { maxTokens: 100, eosTokenIds: [EOS], stopTokenIds: [] });

  const abortedAt = performance.now();
  ac.abort();
  await response;
  await until(() => a.cancels.length === 1 && tc.prefillCancels.length === 1, 1000, 'both cancels within a second');
  t.true(a.cancels[0]!.at - abortedAt < 1000);
  t.true(tc.prefillCancels[0]!.at - abortedAt < 1000);
  t.like(a.cancels[0]!.message, { requestId, reason: 'client-disconnected' });
  t.like(tc.prefillCancels[0]!.message, { requestId, reason: 'client-disconnected' });
  t.is(await tc.cluster.queue.getJob(requestId), undefined);
});

test.serial('cancellation - a client gone mid-stream: cancels reach the node and the prefill nodes within a second', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  generateUntilCancelled(tc, 20);
  const ac = new AbortController();
  const res = await post(tc.gateway.base, body({ stream: true }), ac.signal);
  t.is(res.status, 200);
  const reader = res.body!.getReader();
  const first = await reader.read(); // some text has arrived
  t.false(first.done);
  const abortedAt = performance.now();
  ac.abort();
  await reader.read().catch(() => undefined);
  await until(() => a.cancels.length === 1 && tc.prefillCancels.length === 1, 1000, 'both cancels within a second');
  t.true(a.cancels[0]!.at - abortedAt < 1000);
  t.like(a.cancels[0]!.message, { requestId: a.reserves[0]!.requestId, reason: 'client-disconnected' });
});

test.serial('cancellation - a client gone while waiting for pages leaves the queue and sends no cancel', async (t) => {
  const tc = await startTestCluster(t, { admissionWaitMs: 5000 });
  const a = await tc.node({ nodeId: 'node-a', freePages: 0 });
  await tc.waitForNodes('node-a');
  await tc.startPrefillWorker(() => undefined).pause();
  const waiting = async () => /latentwire_gateway_admission_waiting (\d+)/.exec(await tc.cluster.metricsRegistry.metrics())?.[1];
  const ac = new AbortController();
  const response = post(tc.gateway.base, body(), ac.signal).catch(() => undefined);
  await until(async () => (await waiting()) === '1', 2000, 'one waiting');
  ac.abort();
  await response;
  await until(async () => (await waiting()) === '0', 1000, 'none waiting');
  await new Promise((r) => setTimeout(r, 200));
  t.is(a.reserves.length, 0);
  t.is(a.cancels.length, 0);
  t.is(tc.prefillCancels.length, 0);
});

test.serial('cancellation - a stop string ends the request at the gateway, and the node is told to stop', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  generateUntilCancelled(tc, 10);
  const tok = model().tokenizer;
  const stop = tok.decode(c.greedy_ids.slice(3, 5), { skipSpecialTokens: true });
  t.true(stop.trim().length > 0);
  const r = await tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 100, stop });
  t.is(r.choices[0]!.finish_reason, 'stop');
  await until(() => a.cancels.length === 1 && tc.prefillCancels.length === 1, 1000, 'both cancels');
  t.is(a.cancels[0]!.message.requestId, a.reserves[0]!.requestId);
  // a finish, not a cancellation (it used to be counted as 'cancelled')
  const ended = (await tc.cluster.backend.metrics.requests.get()).values;
  t.deepEqual(ended.map((v) => [v.labels.outcome, v.value]), [['stop', 1]]);
});

/** A node that keeps generating, a token every `ms`, until it is cancelled. */
function generateUntilCancelled(tc: Awaited<ReturnType<typeof startTestCluster>>, ms: number): void {
  tc.startPrefillWorker(async (job, node) => {
    for (let seq = 0; node.cancels.length === 0 && seq < 200; seq++) {
      node.send(job.requestId, seq, [c.greedy_ids[seq % c.greedy_ids.length]!]);
      await new Promise((r) => setTimeout(r, ms));
    }
  });
}
