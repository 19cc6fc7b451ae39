// Resuming a request whose decode node was lost mid-stream, for the kinds whose state lived on that node,
// through the real HTTP app, NatsBackend, nats-server and Redis with scripted decode nodes and prefill: a
// request's continuation is the original request (its job the original job) with the tokens it already
// generated as the reserve's replayTokens, for the next node to replay; past RESUME_REPLAY_MAX_TOKENS they
// join the prompt instead (reserve and job carry them as resumeTokens, for the counts); an n = 2 request goes
// on choice by choice, each from its own tokens with its own seed, and counts as one request however it ends;
// an echo-with-logprobs request does not ask for the prompt's logprobs again. (Real nodes, token identity:
// integration/test/failover-resume.test.ts.)
import test from 'ava';
import { choiceRequestId } from '@latentwire/protocol';
import { EOS, MODEL_ID, REFERENCE, model } from '../http/helpers/fixture.js';
import { stopServers } from './helpers/servers.js';
import { startTestCluster } from './helpers/test-cluster.js';

test.after.always(stopServers);

const c = REFERENCE[0]!;
const ids = c.greedy_ids.filter((id) => id !== EOS).slice(0, 10);
const text = (tokens: readonly number[]) => model().tokenizer.decode(tokens, { skipSpecialTokens: true });
/** latentwire_gateway_requests_ended_total by outcome (those above 0). */
const ended = (metrics: string) => Object.fromEntries([...metrics.matchAll(/latentwire_gateway_requests_ended_total\{outcome="(\w+)"\} (\d+)/g)]
  .filter((m) => m[2] !== '0').map((m) => [m[1], Number(m[2])]));

/**
 * Starts a prefill worker whose decode node sends the first job's first k tokens, then is lost (restarted: the
 * gateway fails its streams and resumes them); later jobs generate ids[k..end). Returns the jobs as they come.
 */
function workerLosingNodeAfter(tc: Awaited<ReturnType<typeof startTestCluster>>, k: number, end = ids.length): import('@latentwire/protocol').PrefillJob[] {
  const jobs: import('@latentwire/protocol').PrefillJob[] = [];
  tc.startPrefillWorker(async (job, node) => {
    jobs.push(job);
    if (jobs.length === 1) {
      node.send(job.requestId, 0, ids.slice(0, k));
      await node.nc.flush();
      await new Promise((r) => setTimeout(r, 100));
      node.restart();
      return;
    }
    await node.generate(job.requestId, ids.slice(k, end), 'length');
  });
  return jobs;
}

/** A node lost after 4 tokens of a request with penalties; the jobs, and the node's reserves. */
async function lostAfterFour(t: import('ava').ExecutionContext, resumeReplayMaxTokens?: number) {
  const tc = await startTestCluster(t, resumeReplayMaxTokens === undefined ? {} : { resumeReplayMaxTokens });
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  const jobs = workerLosingNodeAfter(tc, 4);
  const r = await tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: ids.length, temperature: 0, frequency_penalty: 1.5, presence_penalty: 0.5 });
  t.is(r.choices[0]!.text, text(ids));
  t.is(r.choices[0]!.finish_reason, 'length');
  t.is(jobs.length, 2);
  const [first, second] = jobs;
  t.is(second!.requestId, `${first!.requestId}.r1`);
  const metrics = await tc.cluster.metricsRegistry.metrics();
  t.regex(metrics, /latentwire_gateway_resumes_total\{why="node_lost"\} 1/);
  t.deepEqual(ended(metrics), { length: 1 }, 'one request, one outcome: the lost attempt is no end');
  t.false('resumeTokens' in a.reserveOf(first!.requestId));
  t.false('replayTokens' in a.reserveOf(first!.requestId));
  return { first: first!, second: second!, reserve: a.reserveOf(second!.requestId) };
}

test.serial('resume - penalties: a node lost mid-stream; the continuation is the original request with the tokens already sent to replay, and the output goes on', async (t) => {
  const { first, second, reserve } = await lostAfterFour(t);
  const { requestId: _a, deadline: _d, ...job } = first;
  const { requestId: _b, deadline: _e, ...again } = second;
  t.deepEqual(again, job, 'the original job: the prompt alone, the original sampling');
  t.deepEqual(reserve.replayTokens, ids.slice(0, 4), 'the node gets the tokens to replay');
  t.false('resumeTokens' in reserve);
  t.is(reserve.sampling.counterStart, undefined, 'the counter reaches 4 by the replay');
  t.is(reserve.maxTokens, ids.length, 'the replayed tokens count in max_tokens');
  t.is(reserve.promptTokens, first.promptIds.length);
  t.is(reserve.sampling.frequencyPenalty, 1.5);
});

test.serial('resume - penalties past RESUME_REPLAY_MAX_TOKENS: the continuation prefills the tokens already sent again (reserve and job carry them)', async (t) => {
  const { first, second, reserve } = await lostAfterFour(t, 3);
  t.deepEqual(second.resumeTokens, ids.slice(0, 4));
  t.deepEqual(second.promptIds, [...first.promptIds, ...ids.slice(0, 4)]);
  t.deepEqual(reserve.resumeTokens, ids.slice(0, 4), 'the node gets the tokens to count');
  t.false('replayTokens' in reserve);
  t.is(reserve.sampling.counterStart, 4);
  t.is(reserve.maxTokens, ids.length - 4);
  t.is(reserve.sampling.frequencyPenalty, 1.5);
});

test.serial('resume - n = 3: a node lost mid-stream; each unfinished choice goes on alone, replaying its own tokens with seed + i; a finished one stays finished', async (t) => {
  const tc = await startTestCluster(t);
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  const per = [ids.slice(0, 6), [...ids.slice(3, 9)]]; // choice 0's and choice 1's whole outputs
  const jobs: import('@latentwire/protocol').PrefillJob[] = [];
  tc.startPrefillWorker(async (job, node) => {
    jobs.push(job);
    if (jobs.length === 1) {
      t.is(job.n, 3);
      node.send(choiceRequestId(job.requestId, 0), 0, per[0]!.slice(0, 3));
      node.send(choiceRequestId(job.requestId, 1), 0, per[1]!.slice(0, 1));
      node.send(choiceRequestId(job.requestId, 2), 0, ids.slice(0, 2), 'stop');
      await node.nc.flush();
      await new Promise((r) => setTimeout(r, 150));
      node.restart();
      return;
    }
    const i = Number(/\.c(\d)\.r1$/.exec(job.requestId)![1]);
    await node.generate(job.requestId, per[i]!.slice(i === 0 ? 3 : 1), 'length');
  });
  const r = await tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 6, n: 3, temperature: 0.7, seed: 5 });
  const byIndex = [...r.choices].sort((x, y) => x.index - y.index);
  t.deepEqual(byIndex.map((ch) => ch.text), [...per.map(text), text(ids.slice(0, 2))]);
  t.deepEqual(byIndex.map((ch) => ch.finish_reason), ['length', 'length', 'stop']);
  t.is(jobs.length, 3, 'the finished choice is not resumed');
  const base = jobs[0]!.requestId;
  const cont = jobs.slice(1).sort((x, y) => x.requestId.localeCompare(y.requestId));
  t.deepEqual(cont.map((j) => j.requestId), [`${base}.c0.r1`, `${base}.c1.r1`]);
  t.deepEqual(cont.map((j) => j.n), [undefined, undefined], 'each choice alone');
  t.deepEqual(cont.map((j) => j.promptIds), [jobs[0]!.promptIds, jobs[0]!.promptIds], 'the prompt alone');
  t.deepEqual(cont.map((j) => j.sampling.seed), [jobs[0]!.sampling.seed, (jobs[0]!.sampling.seed + 1) >>> 0], 'choice i keeps seed + i');
  t.deepEqual(cont.map((j) => a.reserveOf(j.requestId).replayTokens), [per[0]!.slice(0, 3), per[1]!.slice(0, 1)], 'each choice replays its own tokens');
  t.deepEqual(cont.map((j) => a.reserveOf(j.requestId).maxTokens), [6, 6]);
  t.deepEqual(ended(await tc.cluster.metricsRegistry.metrics()), { stop: 1 }, 'one outcome for the request (a choice stopped), not one per choice');
});

test.serial('resume - n = 2: lost again with the resumes spent, the request ends with an error, every choice\'s attempt is cancelled, one error outcome', async (t) => {
  const tc = await startTestCluster(t); // PREFILL_RESUMES 1
  const a = await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  const jobs: string[] = [];
  tc.startPrefillWorker(async (job, node) => {
    jobs.push(job.requestId);
    if (jobs.length === 1) {
      node.send(choiceRequestId(job.requestId, 0), 0, ids.slice(0, 2));
      node.send(choiceRequestId(job.requestId, 1), 0, ids.slice(0, 1));
    } else {
      node.send(job.requestId, 0, ids.slice(2, 3));
      if (jobs.length < 3) return; // the second continuation's token, then the node is lost again
    }
    await node.nc.flush();
    await new Promise((r) => setTimeout(r, 150));
    node.restart();
  });
  const err = await t.throwsAsync(tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 6, n: 2, temperature: 0.7, seed: 5 }));
  t.is((err as { status?: number }).status, 500);
  t.is(jobs.length, 3, 'the first attempt and one continuation per choice');
  const base = jobs[0]!;
  await new Promise((r) => setTimeout(r, 300));
  const cancelled = new Set(a.cancels.map((x) => x.message.requestId));
  for (const id of [`${base}.c0.r1`, `${base}.c1.r1`]) t.true(cancelled.has(id), `${id} cancelled on the node (${[...cancelled].join(', ')})`);
  const metrics = await tc.cluster.metricsRegistry.metrics();
  t.deepEqual(ended(metrics), { error: 1 });
  t.regex(metrics, /latentwire_gateway_resumes_total\{why="node_lost"\} 1/, 'resumed once (the whole request), then no more');
});

test.serial('resume - echo with logprobs: the continuation asks for no prompt logprobs again (they went out with the first event)', async (t) => {
  const tc = await startTestCluster(t);
  await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  const jobs = workerLosingNodeAfter(tc, 3, 6);
  const r = await tc.gateway.client.completions.create({ model: MODEL_ID, prompt: c.prompt, max_tokens: 6, temperature: 0, echo: true, logprobs: 0 });
  t.is(r.choices[0]!.text, c.prompt + text(ids.slice(0, 6)));
  t.is(jobs.length, 2);
  t.is(jobs[0]!.promptLogprobs, 0, 'the first job computes them');
  t.false('promptLogprobs' in jobs[1]!, 'the continuation does not');
  t.false('resumeTokens' in jobs[1]!, 'replayed: no resume tokens in the job');
});
