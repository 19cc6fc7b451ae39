// The decode node's operations port as an orchestrator uses it: /health answers while the model loads,
// /ready is 503 until the weights are loaded, every pipeline is compiled and the node is on NATS, then 200;
// /metrics serves Prometheus text; SIGTERM exits 0.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { freePort, pollUntil, startEntry, startNatsServer } from '@latentwire/testing';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

test('decode node ops - /health while loading, /ready only once it can serve, /metrics, SIGTERM exits 0', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const port = await freePort();
  const { child, exited, stderr } = startEntry(MAIN, { NATS_URL: nats.url, METRICS_PORT: String(port), NODE_ID: 'ops-test', NATS_SUBJECT_PREFIX: 'ops', LOG_LEVEL: 'warn' });
  t.teardown(() => void child.kill('SIGKILL'));

  const base = `http://127.0.0.1:${port}`;
  await pollUntil(`${base}/health`, (s) => s === 200, 30_000);
  const ready = await pollUntil(`${base}/ready`, (s) => s === 200, 120_000, 20);
  t.is(ready.statuses[0], 503, `not ready while it loads (${ready.statuses.length} polls)`);
  const body = JSON.parse(ready.body) as { ready: boolean; stage: string; shaders: number; natsConnected: boolean };
  t.like(body, { ready: true, stage: 'serving', natsConnected: true });
  t.true(body.shaders > 0);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.regex(metrics, /latentwire_decode_/);
  t.is((await fetch(`${base}/nope`)).status, 404);

  child.kill('SIGTERM');
  t.is(await exited, 0, stderr());
});
