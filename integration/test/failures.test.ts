// Failures across real processes: gateway, prefill node and decode node each its own `node dist/src/main.js`,
// over a real nats-server and redis-server. kill -9 of the gateway mid-stream: the decode node hears its
// gateway-heartbeats stop and frees that request's pages within GATEWAY_SILENCE_MS and a sweep, instead of
// decoding it for nobody until max_tokens.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { SUBJECT_TYPES, decodeMessage, wireSubjects, type Heartbeat } from '@latentwire/protocol';
import { startNatsServer, startRedisServer } from '@latentwire/testing/servers';

const require = createRequire(import.meta.url);
/** A workspace's built entry point (dist/src/main.js next to its dist/src/index.js). */
const mainOf = (pkg: string) => join(dirname(require.resolve(pkg)), 'main.js');

function start(t: import('ava').ExecutionContext, file: string, env: Record<string, string>) {
  const child: ChildProcess = spawn(process.execPath, [file], { env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  const p = { child, out: '' };
  child.stdout!.on('data', (d: Buffer) => void (p.out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => void (p.out += d.toString()));
  return p;
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const t0 = performance.now();
  while (!(await cond())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return performance.now() - t0;
}

test('failures - kill -9 of the gateway mid-stream: the decode node cancels its request and frees the pages within a bound', async (t) => {
  const [nats, redis] = await Promise.all([startNatsServer(), startRedisServer()]);
  t.teardown(async () => void (await Promise.all([nats.stop(), redis.stop()])));
  const prefix = 'fail';
  const common = { NATS_URL: nats.url, REDIS_URL: redis.url, NATS_SUBJECT_PREFIX: prefix };
  const silenceMs = 1500;
  const decode = start(t, mainOf('@latentwire/decode-node'), {
    ...common, NODE_ID: 'decode-f', HEARTBEAT_MS: '200', GATEWAY_SILENCE_MS: String(silenceMs),
    PAGE_SIZE: '16', KV_CACHE_PAGES: '64', MAX_BATCH: '4', MAX_CONTEXT: '512',
  });
  start(t, mainOf('@latentwire/prefill-node'), common);
  const gateway = start(t, mainOf('@latentwire/gateway'), { ...common, GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: '0', GATEWAY_HEARTBEAT_MS: '200' });

  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  let last: Heartbeat | undefined;
  nc.subscribe(wireSubjects(prefix).heartbeat, { callback: (_e, m) => void (last = decodeMessage(m.data, SUBJECT_TYPES.heartbeat)) });
  await until(() => /"url":"([^"]+)"/.test(gateway.out), 60_000, 'the gateway listening');
  const url = /"url":"([^"]+)"/.exec(gateway.out)![1]!;
  await until(async () => (await fetch(`${url}/ready`).catch(() => undefined))?.status === 200, 180_000, 'the cluster ready');

  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny-deepseek-v2', prompt: 'The quick brown fox', max_tokens: 400, stream: true, ignore_eos: true }),
  });
  t.is(res.status, 200);
  const reader = res.body!.getReader();
  await reader.read(); // the stream is running
  await until(() => last !== undefined && last.running === 1, 10_000, 'the sequence decoding');
  const held = last!.totalPages - last!.freePages;
  t.true(held > 0);

  gateway.child.kill('SIGKILL');
  await reader.read().catch(() => undefined);
  const ms = await until(() => last!.freePages === last!.totalPages && last!.running === 0, silenceMs + 5000, 'every page free');
  t.log(`pages free ${Math.round(ms)} ms after kill -9 (silence limit ${silenceMs} ms)`);
  t.regex(decode.out, /request cancelled: its gateway went silent/);
  t.notRegex(decode.out, /"reason":"length"/, 'cancelled, not decoded to max_tokens');
});
