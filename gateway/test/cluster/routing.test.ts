// Admission and routing through the real HTTP app, NatsBackend, nats-server and Redis, with scripted decode
// nodes and a BullMQ worker standing in for the prefill nodes.
import test from 'ava';
import OpenAI from 'openai';
import { EOS, MODEL_ID, REFERENCE, model } from '../http/helpers/fixture.js';
import { startRedisServer, stopServers } from './helpers/servers.js';
import { FINGERPRINT, startTestCluster, until, type TestCluster } from './helpers/test-cluster.js';

test.after.always(stopServers);

const c = REFERENCE[0]!;
const reply = [...c.greedy_ids, EOS];
/** prompt + 32 completion tokens: 1-3 pages of 16 tokens. */
const ask = (tc: TestCluster) => tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 32 });
const generateReply = (tc: TestCluster) => tc.startPrefillWorker((job, node) => node.generate(job.requestId, reply, 'stop'));

test.serial('routing - requests go to the node with more headroom', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a', freePages: 50 });
  const b = await tc.node({ nodeId: 'node-b', freePages: 200 });
  await tc.waitForNodes('node-a', 'node-b');
  const jobs: string[] = [];
  tc.startPrefillWorker((job, node) => {
    jobs.push(job.decodeNodeId);
    return node.generate(job.requestId, reply, 'stop');
  });
  for (let i = 0; i < 3; i++) t.is((await ask(tc)).choices[0]!.finish_reason, 'stop');
  t.is(a.reserves.length, 0);
  t.is(b.reserves.length, 3);
  t.deepEqual(jobs, ['node-b', 'node-b', 'node-b']);
  t.like(b.reserves[0], { promptTokens: c.input_ids.length, maxTokens: 32, fingerprint: FINGERPRINT(), layoutKey: 'latent-v1/fp8_e4m3/r64+16/p16' });

  // node-b fills up (its next heartbeat says so): node-a has the headroom now.
  b.figures.freePages = 10;
  await until(() => tc.cluster.registry.node('node-b')!.freePages === 10, 1000, 'node-b heartbeat');
  await ask(tc);
  t.is(a.reserves.length, 1);
  t.is(jobs.at(-1), 'node-a');
});

test.serial('routing - a refusal from one node sends the request to the other', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a', freePages: 200, onReserve: () => 'queue-full' });
  const b = await tc.node({ nodeId: 'node-b', freePages: 50 });
  await tc.waitForNodes('node-a', 'node-b');
  generateReply(tc);
  const r = await ask(tc);
  t.is(r.choices[0]!.text, model().tokenizer.decode(c.greedy_ids, { skipSpecialTokens: true }));
  t.is(a.reserves.length, 1);
  t.is(b.reserves.length, 1);
  t.is(a.reserves[0]!.requestId, b.reserves[0]!.requestId);
});

test.serial('routing - a node that does not answer in time is skipped and told to drop a late grant', async (t) => {
  const tc = await startTestCluster(t, { reserveTimeoutMs: 200 });
  const a = await tc.node({ nodeId: 'node-a', freePages: 200, onReserve: () => 'silent' });
  const b = await tc.node({ nodeId: 'node-b', freePages: 50 });
  await tc.waitForNodes('node-a', 'node-b');
  generateReply(tc);
  const started = performance.now();
  await ask(tc);
  t.true(performance.now() - started >= 200);
  t.is(b.reserves.length, 1);
  await until(() => a.cancels.length === 1, 1000, 'cancel at node-a');
  t.like(a.cancels[0]!.message, { requestId: a.reserves[0]!.requestId, reason: 'deadline' });
});

test.serial('routing - with no free pages anywhere a request waits, and runs once a heartbeat shows room', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a', freePages: 0 });
  await tc.waitForNodes('node-a');
  generateReply(tc);
  const started = performance.now();
  const pending = ask(tc);
  await new Promise((r) => setTimeout(r, 400));
  t.is(a.reserves.length, 0); // known full: not asked
  a.figures.freePages = 100;
  const r = await pending;
  t.is(r.choices[0]!.finish_reason, 'stop');
  t.true(performance.now() - started >= 400);
  t.is(a.reserves.length, 1);
});

test.serial('routing - a wait that expires is a 429 with Retry-After', async (t) => {
  const tc = await startTestCluster(t, { admissionWaitMs: 800 });
  await tc.node({ nodeId: 'node-a', freePages: 0 });
  await tc.waitForNodes('node-a');
  generateReply(tc);
  const started = performance.now();
  const err = await t.throwsAsync(ask(tc), { instanceOf: OpenAI.RateLimitError });
  const waited = performance.now() - started;
  t.true(waited >= 780 && waited < 800 + 1500, `answered after ${waited} ms`);
  t.is(err!.headers?.get('retry-after'), '1');
  t.like(err!.error, { code: 'rate_limit_exceeded', type: 'invalid_request_error' });
  t.regex(err!.message, /within 800 ms/);
});

test.serial('routing - a full admission queue is a 429 at once; the one waiting still runs', async (t) => {
  const tc = await startTestCluster(t, { admissionQueueMax: 1, admissionWaitMs: 5000 });
  const a = await tc.node({ nodeId: 'node-a', freePages: 0 });
  await tc.waitForNodes('node-a');
  generateReply(tc);
  const first = ask(tc);
  await until(async () => /latentwire_gateway_admission_waiting 1/.test(await tc.cluster.metricsRegistry.metrics()), 2000, 'one waiting');
  const started = performance.now();
  const err = await t.throwsAsync(ask(tc), { instanceOf: OpenAI.RateLimitError });
  t.true(performance.now() - started < 1000);
  t.is(err!.headers?.get('retry-after'), '5');
  t.regex(err!.message, /Too many requests are waiting/);
  a.figures.freePages = 100;
  t.is((await first).choices[0]!.finish_reason, 'stop');
});

test.serial("routing - 'too-large' from every node is a 400 context_length_exceeded", async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a', onReserve: () => 'too-large' });
  const b = await tc.node({ nodeId: 'node-b', onReserve: () => 'too-large' });
  await tc.waitForNodes('node-a', 'node-b');
  generateReply(tc);
  const err = await t.throwsAsync(ask(tc), { instanceOf: OpenAI.BadRequestError });
  t.like(err!.error, { code: 'context_length_exceeded' });
  t.regex(err!.message, /maximum context length is 2048 tokens/);
  t.is(a.reserves.length + b.reserves.length, 2);
});

test.serial('routing - no decode node serving the model is a 503', async (t) => {
  const tc = await startTestCluster(t);
  await tc.node({ nodeId: 'node-other', fingerprint: 'another-model' });
  await until(() => tc.cluster.registry.nodes().length === 1, 2000, 'the other node');
  const err = await t.throwsAsync(ask(tc), { instanceOf: OpenAI.InternalServerError });
  t.is(err!.status, 503);
  t.like(err!.error, { code: 'service_unavailable' });
});

test.serial('routing - a prefill queue that cannot take the job within the lease is a 503, and the pages are handed back', async (t) => {
  const redis = await startRedisServer();
  t.teardown(() => redis.stop());
  const tc = await startTestCluster(t, { redisUrl: redis.url });
  const a = await tc.node({ nodeId: 'node-a', leaseMs: 300 });
  await tc.waitForNodes('node-a');
  await redis.stop(); // Redis gone: BullMQ holds the job until it reconnects, longer than the lease
  const started = performance.now();
  const err = await t.throwsAsync(ask(tc), { instanceOf: OpenAI.InternalServerError });
  t.is(err!.status, 503);
  t.like(err!.error, { code: 'service_unavailable' });
  t.true(performance.now() - started < 300 + 1500);
  await until(() => a.cancels.length === 1, 2000, 'cancel at the node');
  t.like(a.cancels[0]!.message, { requestId: a.reserves[0]!.requestId, reason: 'prefill-failed' });
});
