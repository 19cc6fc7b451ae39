// Reliability of admission, routing and liveness through the real HTTP app, NatsBackend, nats-server and
// Redis, with scripted decode nodes and BullMQ workers standing in for the prefill nodes: the prefill
// backlog's 429s, no prefill worker's 503, bursts spread over nodes, leases renewed while a job waits,
// silent-but-alive nodes kept, a NATS restart survived, draining nodes skipped, cancels retried until acked.
import test from 'ava';
import OpenAI from 'openai';
import { encodeMessage, prefillHeartbeatMessage } from '@latentwire/protocol';
import { startNatsServer } from '@latentwire/testing/servers';
import { EOS, MODEL_ID, REFERENCE } from '../http/helpers/fixture.js';
import { stopServers } from './helpers/servers.js';
import { startTestCluster, until, type TestCluster } from './helpers/test-cluster.js';

test.after.always(stopServers);

const c = REFERENCE[0]!;
const P = c.input_ids.length;
const reply = [...c.greedy_ids, EOS];
const ask = (tc: TestCluster, extra: { max_tokens?: number } = {}) =>
  tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 32, ...extra });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Every outcome of a batch of requests: 'ok', or the HTTP status of the error. */
const outcomes = (ps: Promise<unknown>[]) => Promise.all(ps.map((p) => p.then(() => 'ok' as const, (e: unknown) => (e instanceof OpenAI.APIError ? e.status : String(e)))));

test.serial('reliability - a burst past the prefill backlog limit gets 429s with Retry-After, no 500; the rest finish', async (t) => {
  // Each prefill "takes" P × 100 ms by its timing: one prompt alone would wait P × 100 ms, so a limit of
  // 2.5 × that admits two prompts into the backlog and refuses the rest.
  const tc = await startTestCluster(t, { prefillQueueMaxWaitMs: P * 250 });
  await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  tc.startPrefillWorker(async (job, node) => {
    await sleep(1000); // long enough that the whole burst arrives while the backlog stands
    node.send(job.requestId, 0, reply.slice(0, 1), undefined, undefined, { queueMs: 0, prefillMs: P * 100, kvTransferMs: 0 });
    node.send(job.requestId, 1, reply.slice(1), 'stop');
  }, 1);
  t.is((await ask(tc)).choices[0]!.finish_reason, 'stop'); // measures the throughput
  const burst = Array.from({ length: 8 }, () => ask(tc));
  const got = await outcomes(burst);
  t.deepEqual(got.filter((o) => o !== 'ok' && o !== 429), [], 'only successes and 429s');
  t.is(got.filter((o) => o === 'ok').length, 2, got.join());
  const err = await Promise.allSettled(burst).then((r) => r.find((x) => x.status === 'rejected') as PromiseRejectedResult);
  const e = err.reason as InstanceType<typeof OpenAI.RateLimitError>;
  t.true(Number(e.headers?.get('retry-after')) >= 1);
  t.like(e.error, { code: 'rate_limit_exceeded', type: 'invalid_request_error' });
  t.regex(e.message, /prefill queue is too long/);
});

test.serial('reliability - no prefill worker on the queue: 503 at once, before any reservation', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  const started = performance.now();
  const err = await t.throwsAsync(ask(tc), { instanceOf: OpenAI.InternalServerError });
  t.is(err!.status, 503);
  t.like(err!.error, { code: 'service_unavailable' });
  t.regex(err!.message, /No prefill worker/);
  t.true(performance.now() - started < 1000);
  t.is(a.reserves.length, 0);
});

test.serial('reliability - a burst of concurrent requests over two equal nodes lands on both', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a' });
  const b = await tc.node({ nodeId: 'node-b' });
  await tc.waitForNodes('node-a', 'node-b');
  tc.startPrefillWorker((job, node) => node.generate(job.requestId, reply, 'stop'));
  const got = await outcomes(Array.from({ length: 8 }, () => ask(tc)));
  t.deepEqual(got, Array(8).fill('ok'));
  t.log(`node-a ${a.reserves.length}, node-b ${b.reserves.length}`);
  t.is(a.reserves.length + b.reserves.length, 8);
  t.true(a.reserves.length >= 2 && b.reserves.length >= 2, `node-a ${a.reserves.length}, node-b ${b.reserves.length}`);
});

test.serial('reliability - a prefill job that waits several leases in the queue keeps its pages (renewed) and finishes', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a', leaseMs: 300 });
  await tc.waitForNodes('node-a');
  let alive: boolean | undefined;
  tc.startPrefillWorker(async (job, node) => {
    await sleep(1200); // four leases in the queue
    alive = node.leaseAlive(job.requestId);
    if (alive) await node.generate(job.requestId, reply, 'stop');
    else node.send(job.requestId, 0, [], 'error', 'the prefill\'s KV did not arrive within the reservation lease');
  });
  t.is((await ask(tc)).choices[0]!.finish_reason, 'stop');
  t.true(alive);
  t.true(a.renewals.length >= 3, `${a.renewals.length} renewals`);
  const renewed = a.renewals.length;
  await sleep(300);
  t.is(a.renewals.length, renewed, 'no renewal after the first tokens');
});

test.serial('reliability - a node that misses heartbeats but answers the probe stays; one that does not answer is removed', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  const lost: string[] = [];
  tc.cluster.registry.onNodeEvent((e) => void (e.kind === 'lost' && lost.push(e.nodeId)));
  a.pause();
  await sleep(1500); // 2.5 heartbeat timeouts
  t.truthy(tc.cluster.registry.node('node-a'), 'kept: it answers pings');
  t.deepEqual(lost, []);
  a.ignorePings = true;
  await until(() => lost.length === 1, 3000, 'node-a lost');
  t.is(tc.cluster.registry.node('node-a'), undefined);
});

test.serial('reliability - a NATS server restart (~2 s) during streams fails no request and loses no node; tokens lost meanwhile are replayed', async (t) => {
  const first = await startNatsServer();
  const port = first.port;
  let server = first;
  t.teardown(() => server.stop());
  const tc = await startTestCluster(t, { natsUrl: first.url, requestIdleTimeoutMs: 15_000 });
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  const lost: string[] = [];
  tc.cluster.registry.onNodeEvent((e) => void (e.kind === 'lost' && lost.push(e.nodeId)));
  let jobs = 0;
  // one token a message, 150 ms apart: 4 s of streaming, across the restart
  tc.startPrefillWorker(async (job, node) => {
    jobs++;
    for (let i = 0; i < 27; i++) {
      node.send(job.requestId, i, [c.greedy_ids[i % c.greedy_ids.length]!], i === 26 ? "length" : undefined);
      await sleep(150);
    }
  });
  const streams = Array.from({ length: 4 }, () => ask(tc, { max_tokens: 27 }));
  await until(() => jobs === 4, 3000, 'four jobs running');
  await sleep(300); // some tokens out
  await first.stop();
  await sleep(2000);
  server = await startNatsServer({ port });
  const got = await outcomes(streams.map((p) => p.then((r) => {
    if (r.choices[0]!.finish_reason !== 'length' || r.usage!.completion_tokens !== 27) throw new Error(`incomplete: ${JSON.stringify(r.usage)}`);
  })));
  t.deepEqual(got, Array(4).fill('ok'));
  t.deepEqual(lost, []);
  t.truthy(tc.cluster.registry.node('node-a'));
  t.is(a.reserves.length, 4);
  t.log(`${a.replays.length} replay requests`);
  t.regex(await tc.cluster.metricsRegistry.metrics(), /latentwire_gateway_token_replays_total\{why="reconnect"\} [1-9]/);
});

test.serial('reliability - a draining node gets nothing new; a request of it still waiting for KV is handed to another node', async (t) => {
  const tc = await startTestCluster(t, { admissionWaitMs: 500 });
  const a = await tc.node({ nodeId: 'node-a', freePages: 500, totalPages: 500 });
  const b = await tc.node({ nodeId: 'node-b', freePages: 100 });
  await tc.waitForNodes('node-a', 'node-b');
  let held: { requestId: string } | undefined;
  tc.startPrefillWorker(async (job, node) => {
    if (node === a && !held) {
      held = job;
      return;
    }
    await node.generate(job.requestId, reply, 'stop');
  });
  const waiting = ask(tc);
  await until(() => held !== undefined, 3000, 'a job for node-a');
  a.figures.draining = true;
  a.beat();
  await until(() => tc.cluster.registry.node('node-a')?.heartbeat.draining === true, 1000, 'node-a draining');
  a.send(held!.requestId, 0, [], 'error', 'decode node draining (shutting down): the request had not started decoding here; retry it');
  t.is((await waiting).choices[0]!.finish_reason, 'stop', 'finished on node-b');
  t.is(b.reserves[0]!.requestId, `${held!.requestId}.r1`);
  t.regex(await tc.cluster.metricsRegistry.metrics(), /latentwire_gateway_resumes_total\{why="node_draining"\} 1/);
  for (let i = 0; i < 3; i++) t.is((await ask(tc)).choices[0]!.finish_reason, 'stop');
  t.is(a.reserves.length, 1, 'nothing new for the draining node');
  t.is(b.reserves.length, 4);
  t.like(await tc.cluster.backend.readiness(), { decodeNodes: 1 }, 'readiness counts only the node that takes requests');

  // with nowhere else to go (resumes spent), it is a 503 to retry
  const solo = await startTestCluster(t, { prefillResumes: 0 });
  const c1 = await solo.node({ nodeId: 'node-c' });
  await solo.waitForNodes('node-c');
  let job: { requestId: string } | undefined;
  solo.startPrefillWorker((j) => void (job = j));
  const pending = ask(solo);
  await until(() => job !== undefined, 3000, 'a job for node-c');
  c1.figures.draining = true;
  c1.beat();
  await until(() => solo.cluster.registry.node('node-c')?.heartbeat.draining === true, 1000, 'node-c draining');
  c1.send(job!.requestId, 0, [], 'error', 'decode node draining');
  const err = await t.throwsAsync(pending, { instanceOf: OpenAI.InternalServerError });
  t.is(err!.status, 503);
  t.like(err!.error, { code: 'service_unavailable' });
});

test.serial('reliability - a cancel is resent until the node acknowledges it, then no more', async (t) => {
  const tc = await startTestCluster(t, { cancelAckTimeoutMs: 100, cancelAttempts: 3 });
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  tc.startPrefillWorker((job, node) => node.send(job.requestId, 0, reply.slice(0, 2)));
  const run = async () => {
    const ac = new AbortController();
    const res = await fetch(`${tc.gateway.base}/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, signal: ac.signal,
      body: JSON.stringify({ model: MODEL_ID, prompt: c.prompt, max_tokens: 50, stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await reader.read().catch(() => undefined);
  };
  a.ignoreCancels = true;
  await run();
  await until(() => a.cancels.length === 3, 3000, 'three attempts');
  await sleep(400);
  t.is(a.cancels.length, 3, 'given up after CANCEL_ATTEMPTS');
  a.ignoreCancels = false;
  await run();
  await until(() => a.cancels.length === 4, 2000, 'the acked cancel');
  await sleep(400);
  t.is(a.cancels.length, 4, 'acked at once: sent once');
  const metrics = await tc.cluster.metricsRegistry.metrics();
  t.regex(metrics, /latentwire_gateway_node_cancels_total\{outcome="unacked"\} 1/);
  t.regex(metrics, /latentwire_gateway_node_cancels_total\{outcome="acked"\} 1/);
});

test.serial('reliability - a prefill worker that crashes holding a job: the request is re-queued at once and finishes on another worker', async (t) => {
  const tc = await startTestCluster(t, { prefillSilenceMs: 500 });
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  let taken: string | undefined;
  // Worker A announces the job it runs (as a prefill node's heartbeat does), then crashes: no more beats,
  // the job stays locked in BullMQ for its 30 s lock.
  const crashing = tc.startPrefillWorker(async (job) => {
    taken = job.requestId;
    tc.observer.publish(tc.subjects.prefillHeartbeat, encodeMessage(prefillHeartbeatMessage({
      workerId: 'prefill-crashing', seq: 0, intervalMs: 100, sentAt: Date.now(), jobs: [job.requestId],
    })));
    await new Promise(() => undefined);
  }, 1);
  const started = performance.now();
  const pending = ask(tc);
  await until(() => taken !== undefined, 3000, 'worker A holding the job');
  void crashing.close(true);
  tc.startPrefillWorker((job, node) => node.generate(job.requestId, reply, 'stop'));
  t.is((await pending).choices[0]!.finish_reason, 'stop');
  const ms = performance.now() - started;
  t.true(ms < 10_000, `answered after ${Math.round(ms)} ms (BullMQ's lock is 30 s)`);
  t.is(a.reserves.length, 2);
  t.is(a.reserves[1]!.requestId, `${taken}.r1`, 'the retry under a new wire id');
  await until(() => a.cancels.some((x) => x.message.requestId === taken), 2000, 'the lost attempt cancelled on the node');
  t.true(tc.prefillCancels.some((x) => x.message.requestId === taken), 'and on the prefill nodes, so the locked job is skipped later');
  t.regex(await tc.cluster.metricsRegistry.metrics(), /latentwire_gateway_resumes_total\{why="prefill_lost"\} 1/);
});

test.serial('reliability - the prefill workers\' heartbeats bound the prompt: the least limit a live worker states, a longer prompt a 400 before anything is queued', async (t) => {
  const tc = await startTestCluster(t, { prefillSilenceMs: 600 });
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  tc.startPrefillWorker((job, node) => node.generate(job.requestId, reply, 'stop'));
  const beat = (workerId: string, maxPromptTokens?: number) => tc.observer.publish(tc.subjects.prefillHeartbeat, encodeMessage(prefillHeartbeatMessage({
    workerId, seq: 0, intervalMs: 100, sentAt: Date.now(), jobs: [], ...(maxPromptTokens === undefined ? {} : { maxPromptTokens }),
  })));
  const health = async () => ((await (await fetch(`${tc.gateway.gw.url}/health`)).json()) as { max_prompt_tokens: number | null }).max_prompt_tokens;
  // a worker on a device that takes P - 1 tokens, one that takes P + 10, one that states no limit: the least binds
  let small = true;
  const beats = setInterval(() => {
    if (small) beat('prefill-small', P - 1);
    beat('prefill-big', P + 10);
    beat('prefill-any');
  }, 100);
  t.teardown(() => clearInterval(beats));
  await until(async () => (await health()) === P - 1, 3000, 'the least limit in /health');
  const err = await t.throwsAsync(ask(tc), { instanceOf: OpenAI.BadRequestError });
  t.like(err!.error, { code: 'context_length_exceeded', param: 'prompt' });
  t.regex(err!.message, new RegExp(`prompts of at most ${P - 1} tokens`));
  t.is(a.reserves.length, 0, 'nothing reserved or queued');
  // the small worker goes silent: once it is lost, the next least limit holds and the prompt is served
  small = false;
  await until(async () => (await health()) === P + 10, 3000, 'the small worker lost');
  t.is((await ask(tc)).choices[0]!.finish_reason, 'stop');
});
