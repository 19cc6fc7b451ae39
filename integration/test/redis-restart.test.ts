// A redis-server restart under load: the streams already decoding do not need Redis (their prefill job is
// done) and finish token for token as in a calm run; BullMQ's connections (gateway queue, prefill worker)
// come back by themselves, and a request sent after the restart is served. Redis keeps nothing on disk here, so
// jobs still waiting in the queue at the restart would be lost (the gateway then fails them after
// REQUEST_IDLE_TIMEOUT_MS); none are waiting in this test. Nothing but Redis restarts: the gateway sees no decode
// node restart or loss.
import test from 'ava';
import { freePort, startRedisServer } from '@latentwire/testing';
import { startCluster, type TestCluster } from './helpers/cluster.js';

test('redis restart - streams in flight finish as in a calm run; requests after the restart are served', async (t) => {
  const port = await freePort();
  let redis = await startRedisServer({ port });
  let cluster: TestCluster | undefined;
  t.teardown(async () => {
    await cluster?.stop();
    await redis.stop();
  });
  cluster = await startCluster({ decodeNodes: 1, redisUrl: redis.url });
  const { client, model } = cluster;
  // only Redis restarts: the gateway must see no decode node restart or go lost meanwhile
  const nodeEvents: string[] = [];
  cluster.gateway.registry.onNodeEvent((e) => void ((e.kind === 'restarted' || e.kind === 'lost') && nodeEvents.push(`${e.nodeId} ${e.kind}`)));
  const prompts = ['The quick brown fox', 'Once upon a time', 'In the beginning'];
  const body = (prompt: string) => ({ model, prompt, max_tokens: 40, temperature: 0, ignore_eos: true } as const);
  const calm = await Promise.all(prompts.map(async (p) => (await client.completions.create(body(p))).choices[0]!.text));

  let started = 0;
  const streams = prompts.map(async (p) => {
    let text = '';
    let counted = false;
    for await (const chunk of await client.completions.create({ ...body(p), stream: true })) {
      text += chunk.choices[0]?.text ?? '';
      if (!counted && text !== '') {
        counted = true;
        started++;
      }
    }
    return text;
  });
  for (const t0 = Date.now(); started < prompts.length; await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() - t0 > 60_000) throw new Error('the streams never started');
  }
  await redis.stop();
  await new Promise((r) => setTimeout(r, 1000));
  redis = await startRedisServer({ port });

  t.deepEqual(await Promise.all(streams), calm, 'every stream in flight finished as in the calm run');
  // BullMQ reconnects on its own; the first request after the restart may wait for it
  const after = await client.completions.create(body(prompts[0]!));
  t.is(after.choices[0]!.text, calm[0]);
  t.true(await cluster.pagesBack());
  t.deepEqual(nodeEvents, [], 'no decode node restarted or was lost');
});
