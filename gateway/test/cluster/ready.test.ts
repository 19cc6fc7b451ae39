// GET /ready: 503 naming what is missing until a decode node of the model is in the pool and a prefill worker
// listens on the queue, then 200; /health stays 200 throughout.
import test from 'ava';
import { stopServers } from './helpers/servers.js';
import { startTestCluster, until } from './helpers/test-cluster.js';

test.after.always(stopServers);

test.serial('ready - 503 without a decode node or a prefill worker, 200 once both serve the model', async (t) => {
  const tc = await startTestCluster(t);
  const ready = async () => {
    const r = await fetch(`${tc.gateway.gw.url}/ready`);
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  t.like(await ready(), { status: 503, body: { ready: false, decodeNodes: 0, prefillWorkers: 0, natsConnected: true } });
  t.is((await fetch(`${tc.gateway.gw.url}/health`)).status, 200);

  await tc.node({ nodeId: 'node-a' });
  await tc.waitForNodes('node-a');
  t.like(await ready(), { status: 503, body: { ready: false, decodeNodes: 1, prefillWorkers: 0 } });

  tc.startPrefillWorker(() => undefined);
  await until(async () => (await ready()).status === 200, 5000, 'ready once a worker listens');
  t.like(await ready(), { status: 200, body: { ready: true, decodeNodes: 1, prefillWorkers: 1 } });
});
