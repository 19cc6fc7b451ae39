// Tokens messages from a (scripted) decode node, through NatsBackend and the HTTP app, as text: whole and
// streamed, and what a lost message, a node error, silence or a node restart become.
import test from 'ava';
import OpenAI from 'openai';
import { EOS, MODEL_ID, REFERENCE, model } from '../http/helpers/fixture.js';
import { stopServers } from './helpers/servers.js';
import { startTestCluster, until } from './helpers/test-cluster.js';

test.after.always(stopServers);

const tok = model().tokenizer;
const c = REFERENCE[1]!;
const text = tok.decode(c.greedy_ids, { skipSpecialTokens: true });

test.serial('streaming - tokens messages become the reference text, whole and streamed', async (t) => {
  const tc = await startTestCluster(t);
  await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  tc.startPrefillWorker((job, node) => node.generate(job.requestId, [...c.greedy_ids, EOS], 'stop', 3, 5));
  const { client } = tc.gateway;

  const whole = await client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 100 });
  t.is(whole.choices[0]!.text, text);
  t.is(whole.choices[0]!.finish_reason, 'stop');
  t.deepEqual(whole.usage, { prompt_tokens: c.input_ids.length, completion_tokens: c.greedy_ids.length + 1, total_tokens: c.input_ids.length + c.greedy_ids.length + 1 });

  const stream = await client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 100, stream: true });
  let streamed = '';
  let chunks = 0;
  let finish: string | null = null;
  for await (const chunk of stream) {
    streamed += chunk.choices[0]?.text ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
    chunks++;
  }
  t.is(streamed, text);
  t.is(finish, 'stop');
  t.true(chunks > 2, `${chunks} chunks`);
});

test.serial("streaming - the node's 'length' finish ends the request with finish_reason length", async (t) => {
  const tc = await startTestCluster(t);
  await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  tc.startPrefillWorker((job, node) => node.generate(job.requestId, c.greedy_ids.slice(0, node.reserveOf(job.requestId).maxTokens), 'length', 2));
  const r = await tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 5 });
  t.is(r.choices[0]!.finish_reason, 'length');
  t.is(r.choices[0]!.text, tok.decode(c.greedy_ids.slice(0, 5), { skipSpecialTokens: true }));
});

test.serial('streaming - a duplicate tokens message is dropped', async (t) => {
  const tc = await startTestCluster(t);
  await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  tc.startPrefillWorker((job, node) => {
    node.send(job.requestId, 0, c.greedy_ids.slice(0, 2));
    node.send(job.requestId, 0, c.greedy_ids.slice(0, 2));
    node.send(job.requestId, 1, [...c.greedy_ids.slice(2), EOS], 'stop');
  });
  const r = await tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 100 });
  t.is(r.choices[0]!.text, text);
});

test.serial('streaming - a lost message is asked for again (replay) and the text comes out whole', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  tc.startPrefillWorker(async (job, node) => {
    const ids = [...c.greedy_ids, EOS];
    node.send(job.requestId, 0, ids.slice(0, 3));
    node.send(job.requestId, 1, ids.slice(3, 6), undefined, undefined, undefined, true); // lost on the way
    node.send(job.requestId, 2, ids.slice(6), 'stop');
  });
  const r = await tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 100 });
  t.is(r.choices[0]!.text, text);
  t.deepEqual(a.replays.map((x) => x.fromSeq), [1]);
});

test.serial('streaming - a seq gap is an error (a 500, or an error chunk once streaming) and cancels the request', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  tc.startPrefillWorker(async (job, node) => {
    node.send(job.requestId, 0, c.greedy_ids.slice(0, 2));
    await new Promise((r) => setTimeout(r, 50));
    node.send(job.requestId, 2, c.greedy_ids.slice(4, 6)); // seq 1 lost, and not kept for replay either
  });
  const { client } = tc.gateway;
  const err = await t.throwsAsync(client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 100 }), { instanceOf: OpenAI.InternalServerError });
  t.is(err!.status, 500);
  await until(() => a.cancels.length === 1, 1000, 'cancel at the node');
  t.is(a.cancels[0]!.message.reason, 'decode-failed');

  const stream = await client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 100, stream: true });
  let streamed = '';
  await t.throwsAsync(
    (async () => {
      for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? '';
    })(),
    { instanceOf: OpenAI.APIError, message: /server had an error/ },
  );
  t.is(streamed, tok.decode(c.greedy_ids.slice(0, 2), { skipSpecialTokens: true }));
});

test.serial("streaming - a node's 'error' finish fails the request", async (t) => {
  const tc = await startTestCluster(t);
  await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  tc.startPrefillWorker((job, node) => node.send(job.requestId, 0, [], 'error', 'out of memory'));
  const err = await t.throwsAsync(tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 100 }), {
    instanceOf: OpenAI.InternalServerError,
  });
  t.is(err!.status, 500);
});

test.serial('streaming - silence past the idle timeout is an error, and the request is cancelled everywhere', async (t) => {
  const tc = await startTestCluster(t, { requestIdleTimeoutMs: 500 });
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  tc.startPrefillWorker((job, node) => node.send(job.requestId, 0, c.greedy_ids.slice(0, 2)));
  const started = performance.now();
  await t.throwsAsync(tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 100 }), { instanceOf: OpenAI.InternalServerError });
  const took = performance.now() - started;
  t.true(took >= 480 && took < 500 + 1500, `failed after ${took} ms`);
  await until(() => a.cancels.length === 1 && tc.prefillCancels.length === 1, 1000, 'cancels');
  t.is(a.cancels[0]!.message.reason, 'deadline');
  t.is(tc.prefillCancels[0]!.message.reason, 'deadline');
});

/** One node, one request decoding on it (2 tokens sent, then nothing): for the ways a node can vanish. */
// With PREFILL_RESUMES 0: the request may not go on elsewhere (node-loss resume is tested in
// integration/test/failures.test.ts with real decode nodes), so losing its node ends it.
async function requestOnOneNode(t: import('ava').ExecutionContext) {
  const tc = await startTestCluster(t, { requestIdleTimeoutMs: 10_000, prefillResumes: 0 });
  const node = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  tc.startPrefillWorker((job, n) => n.send(job.requestId, 0, c.greedy_ids.slice(0, 2)));
  const pending = tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 100 });
  await until(() => node.reserves.length === 1, 2000, 'the reservation');
  await new Promise((r) => setTimeout(r, 200));
  return { node, pending };
}

test.serial('streaming - a node restart fails its requests at once, not after the idle timeout', async (t) => {
  const { node, pending } = await requestOnOneNode(t);
  const restartedAt = performance.now();
  node.restart();
  await t.throwsAsync(pending, { instanceOf: OpenAI.InternalServerError });
  t.true(performance.now() - restartedAt < 1000);
});

test.serial('streaming - a node whose heartbeats stop (crashed) fails its requests when it is dropped, not after the idle timeout', async (t) => {
  const { node, pending } = await requestOnOneNode(t);
  const silentAt = performance.now();
  node.pause();
  node.ignorePings = true; // crashed: the gateway's probe gets no pong either
  await t.throwsAsync(pending, { instanceOf: OpenAI.InternalServerError });
  const took = performance.now() - silentAt;
  t.true(took < 600 + 1500, `failed ${took} ms after the last heartbeat (timeout 600 ms)`);
});
