// The process entry: its environment (defaults, and a bad value failing start-up by name), and a real run of
// dist/src/main.js against nats-server and redis-server: it serves a job, and SIGTERM lets the active job
// finish before the process exits 0.
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { connect } from '@nats-io/transport-node';
import { ConfigError } from '@latentwire/protocol';
import { latentKvLayout, latentLayoutKey } from '@latentwire/protocol';
import { openModelFolder } from '@latentwire/model';
import { FIXTURE_DIR, readFixtureJson, startNatsServer, startRedisServer } from '@latentwire/testing';
import { SUBJECT_TYPES, decodeMessage, prefillQueueName, wireSubjects, type PrefillHeartbeat, type PrefillJob } from '@latentwire/protocol';
import { prefillSettingsFromEnv, promptTokenLimit } from '../src/env.js';
import { FakeDecodeNode } from './helpers/fake-decode-node.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

test('env - defaults', (t) => {
  const s = prefillSettingsFromEnv({});
  t.like(s, {
    redisUrl: 'redis://127.0.0.1:6379', prefix: 'lw', concurrency: 2, logLevel: 'info',
    maxInFlightBytes: 8 << 20, ackTimeoutMs: 10_000, metricsPort: 0, ropeFreqPrecision: 'checkpoint', heartbeatMs: 1000, maxPromptTokens: 0,
  });
  t.deepEqual(s.natsServers, ['nats://127.0.0.1:4222']);
  t.true(s.modelDir.endsWith('/models/tiny-deepseek-v2'), s.modelDir);
  t.true(Object.isFrozen(s));
});

test('env - every bad value is named', (t) => {
  const bad = {
    PREFILL_CONCURRENCY: '0', KV_SEND_WINDOW_BYTES: '8MiB', KV_ACK_TIMEOUT_MS: '-1', REDIS_URL: 'http://127.0.0.1:6379',
    NATS_URL: 'localhost', NATS_SUBJECT_PREFIX: 'lw..x', PREFILL_HEARTBEAT_MS: 'often', PREFILL_MAX_PROMPT_TOKENS: '-1',
  };
  for (const [name, value] of Object.entries(bad)) {
    const err = t.throws(() => prefillSettingsFromEnv({ [name]: value }), { instanceOf: ConfigError });
    t.true(err!.message.includes(`${name}=`), `${name}: ${err!.message}`);
  }
});

test('env - the prompt limit: the operator\'s cap and the device\'s, whichever is lower, none when neither is under the context', (t) => {
  t.is(promptTokenLimit(0, 2048, undefined), undefined);
  t.is(promptTokenLimit(2048, 2048, undefined), undefined, 'a cap at the context caps nothing');
  t.is(promptTokenLimit(100, 2048, undefined), 100);
  t.is(promptTokenLimit(0, 163840, 65536), 65535, 'the device fails at 65,536: up to 65,535');
  t.is(promptTokenLimit(4096, 163840, 65536), 4096);
  t.is(promptTokenLimit(100000, 163840, 65536), 65535);
});

test('main - serves a job, and SIGTERM lets the active job finish before it exits 0', async (t) => {
  const [nats, redis] = await Promise.all([startNatsServer(), startRedisServer()]);
  t.teardown(() => Promise.all([nats.stop(), redis.stop()]));
  const prefix = `t${randomUUID().slice(0, 8)}`;
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const queue = new Queue(prefillQueueName(prefix), { connection: { url: redis.url } });
  t.teardown(() => queue.close());
  // its presence: heartbeats naming the jobs it runs (a gateway re-queues them if the beats stop)
  const beats: PrefillHeartbeat[] = [];
  nc.subscribe(wireSubjects(prefix).prefillHeartbeat, { callback: (_e, m) => void beats.push(decodeMessage(m.data, SUBJECT_TYPES.prefillHeartbeat)) });
  await nc.flush();

  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, NATS_URL: nats.url, REDIS_URL: redis.url, NATS_SUBJECT_PREFIX: prefix, MODEL_DIR: FIXTURE_DIR, PREFILL_MAX_PROMPT_TOKENS: '100' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const started = new Promise<void>((resolve) => {
    const on = (d: Buffer) => {
      output += d.toString();
      if (output.includes('prefill worker started')) resolve();
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => void child.kill('SIGKILL'));
  await Promise.race([started, exited.then(() => { throw new Error(`main exited before starting:\n${output}`); })]);

  // SIGTERM as the first chunk arrives; acks come slowly, so the job is still sending when the signal lands
  const decode = await FakeDecodeNode.start(nc, wireSubjects(prefix), 'decode-a', {
    ackDelayMs: 20,
    onChunk: (_m, i) => void (i === 0 && child.kill('SIGTERM')),
  });
  const ids = readFixtureJson<{ cases: { input_ids: number[]; greedy_ids: number[] }[] }>('reference.json').cases[0]!;
  const { fingerprint, config } = openModelFolder(FIXTURE_DIR);
  const job: PrefillJob = {
    v: 2, requestId: 'req-main', decodeNodeId: 'decode-a', promptIds: ids.input_ids, sampling: { temperature: 0, topK: 0, topP: 1, seed: 1 },
    fingerprint, deadline: Date.now() + 60_000,
    layoutKey: latentLayoutKey(latentKvLayout({ dtype: 'bf16', kvLoraRank: config.kvLoraRank, ropeDim: config.qkRopeHeadDim, pageSize: 64 })),
  };
  const { id } = await queue.add('prefill', job, { attempts: 1 });
  const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000).unref())]);
  t.is(code, 0, output);
  t.is(await (await queue.getJob(id!))!.getState(), 'completed');
  t.like(decode.done[0], { requestId: 'req-main', firstToken: ids.greedy_ids[0] });
  t.regex(output, /shutting down/);
  // every shader compiled before the worker took the queue (no job waits for a compile)
  const compiledAt = output.indexOf('prefill shaders compiled');
  t.true(compiledAt >= 0 && compiledAt < output.indexOf('prefill worker started'), 'shaders compiled before the worker started');
  t.true(beats.some((b) => b.jobs.includes('req-main')), 'a heartbeat named the running job');
  t.true(beats.length > 0 && beats.every((b) => b.workerId === beats[0]!.workerId));
  t.true(beats.every((b) => b.maxPromptTokens === 100), 'the heartbeats state PREFILL_MAX_PROMPT_TOKENS');
});
