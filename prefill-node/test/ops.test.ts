// The prefill node's operations port: /health while it loads, /ready once the model is loaded, every shader is
// compiled and dispatched once (its readiness stages 'compiling shaders' and 'warming up' answer not ready), the
// worker takes jobs and NATS is connected; /metrics; SIGTERM exits 0.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { freePort, pollUntil, startEntry, startNatsServer, startRedisServer } from '@latentwire/testing';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

interface ReadyBody { ready: boolean; stage: string; shaders?: number; natsConnected: boolean }

test('prefill node ops - /health while loading, not ready while compiling shaders or warming up, /ready once compiled and warmed up, on the queue and NATS, /metrics, SIGTERM exits 0', async (t) => {
  const [nats, redis] = await Promise.all([startNatsServer(), startRedisServer()]);
  t.teardown(() => Promise.all([nats.stop(), redis.stop()]));
  const port = await freePort();
  const { child, exited, stderr } = startEntry(MAIN, { NATS_URL: nats.url, REDIS_URL: redis.url, PREFILL_METRICS_PORT: String(port), NATS_SUBJECT_PREFIX: 'ops', LOG_LEVEL: 'warn' });
  t.teardown(() => void child.kill('SIGKILL'));

  const base = `http://127.0.0.1:${port}`;
  await pollUntil(`${base}/health`, (s) => s === 200, 30_000);
  // every answer in order, from the first one the port gives: the stages it went through
  const seen: { status: number; body: ReadyBody }[] = [];
  const ready = await pollUntil(`${base}/ready`, (status, body) => {
    seen.push({ status, body: JSON.parse(body) as ReadyBody });
    return status === 200;
  }, 120_000, 10);
  const body = JSON.parse(ready.body) as ReadyBody;
  t.like(body, { ready: true, stage: 'serving', natsConnected: true });
  t.true((body.shaders ?? 0) > 0, `shaders compiled: ${body.shaders}`);
  const stages = [...new Set(seen.map((s) => s.body.stage))];
  t.log(`stages: ${stages.join(' → ')} (${seen.length} answers)`);
  // the compile takes seconds on lavapipe: polled every 10 ms, the stage is seen, and it is never ready
  const compiling = seen.filter((s) => s.body.stage === 'compiling shaders');
  t.true(compiling.length > 0, `the compile was seen (stages ${stages.join(', ')})`);
  t.true(compiling.every((s) => s.status === 503 && !s.body.ready && s.body.shaders === undefined));
  // nor while every pipeline is dispatched once (the warm-up: seconds on lavapipe with a warm shader cache)
  const warming = seen.filter((s) => s.body.stage === 'warming up');
  t.true(warming.length > 0 && warming.every((s) => s.status === 503 && !s.body.ready), 'the warm-up was seen, not ready');
  // the stages in start-up order: compile and warm-up end before the node connects and its worker takes the queue
  t.deepEqual(stages.filter((s) => s !== 'loading weights'), ['compiling shaders', 'warming up', 'connecting', 'serving'].filter((s) => stages.includes(s)));
  t.is(stages.at(-1), 'serving');
  t.regex(await (await fetch(`${base}/metrics`)).text(), /latentwire_prefill_/);

  child.kill('SIGTERM');
  t.is(await exited, 0, stderr());
});
