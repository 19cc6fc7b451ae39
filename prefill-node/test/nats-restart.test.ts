// A prefill job that starts while its node's NATS connection is down (a nats-server restart): it waits for the
// reconnect instead of failing every attempt at once (each send would throw: no server INFO), then streams its
// KV and prefill-done as usual; the request is not lost to the restart.
import test from 'ava';
import { loadPrefillModel } from '@latentwire/gpu/prefill';
import { testGpu } from '@latentwire/gpu/testing';
import { FIXTURE_DIR, freePort, readFixtureJson, startNatsServer, startRedisServer } from '@latentwire/testing';
import { FakeDecodeNode } from './helpers/fake-decode-node.js';
import { sleep, startTestNode, type Cluster } from './helpers/cluster.js';

const ids = readFixtureJson<{ cases: { input_ids: number[] }[] }>('reference.json').cases[0]!.input_ids;

test('prefill node - a job that starts while NATS restarts waits for the reconnect and completes, its attempts not burnt', async (t) => {
  const port = await freePort();
  let nats = await startNatsServer({ port });
  const [redis, gpu] = await Promise.all([startRedisServer(), testGpu()]);
  const { model, folder } = loadPrefillModel(gpu, FIXTURE_DIR);
  const cluster: Cluster = { natsUrl: nats.url, redisUrl: redis.url, gpu, model, folder, stop: async () => undefined };
  t.teardown(async () => {
    model.dispose();
    await Promise.all([nats.stop(), redis.stop()]);
  });
  const node = await startTestNode(t, cluster, { promptIds: ids });
  const decode = await FakeDecodeNode.start(node.decodeNc, node.service.subjects, 'decode-a');
  await nats.stop();
  await sleep(300); // both connections see the server gone
  const id = await node.enqueue({ requestId: 'req-r', decodeNodeId: 'decode-a' }, { attempts: 3, backoff: { type: 'fixed', delay: 50 } });
  await sleep(1000); // the job is picked up meanwhile (Redis is up) and must not burn its attempts
  nats = await startNatsServer({ port });
  const job = await node.finished(id, 30_000);
  t.is(await job.getState(), 'completed', job.failedReason);
  t.is(job.attemptsStarted, 1, 'one attempt: it waited instead of failing');
  t.is(decode.done.length, 1, 'prefill-done reached the decode node');
  t.is(decode.failed.length, 0);
});
