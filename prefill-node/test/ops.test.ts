// The prefill node's operations port: /health while it loads, /ready once the model is loaded, the worker
// takes jobs and NATS is connected; /metrics; SIGTERM exits 0.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { freePort, pollUntil, startEntry, startNatsServer, startRedisServer } from '@latentwire/testing';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

test('prefill node ops - /health while loading, /ready once on the queue and NATS, /metrics, SIGTERM exits 0', async (t) => {
  const [nats, redis] = await Promise.all([startNatsServer(), startRedisServer()]);
  t.teardown(() => Promise.all([nats.stop(), redis.stop()]));
  const port = await freePort();
  const { child, exited, stderr } = startEntry(MAIN, { NATS_URL: nats.url, REDIS_URL: redis.url, PREFILL_METRICS_PORT: String(port), NATS_SUBJECT_PREFIX: 'ops', LOG_LEVEL: 'warn' });
  t.teardown(() => void child.kill('SIGKILL'));

  const base = `http://127.0.0.1:${port}`;
  await pollUntil(`${base}/health`, (s) => s === 200, 30_000);
  const ready = await pollUntil(`${base}/ready`, (s) => s === 200, 120_000, 20);
  t.like(JSON.parse(ready.body), { ready: true, stage: 'serving', natsConnected: true });
  t.regex(await (await fetch(`${base}/metrics`)).text(), /latentwire_prefill_/);

  child.kill('SIGTERM');
  t.is(await exited, 0, stderr());
});
