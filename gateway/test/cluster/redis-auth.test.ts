// Redis with a password (requirepass): REDIS_URL carries it (redis://:password@host:port) and the BullMQ
// connection as the gateway and the prefill worker build it ({ connection: { url } }, cluster.ts, worker.ts)
// authenticates with it; a wrong password is refused by Redis, and neither the error nor an env error shows it.
import test from 'ava';
import { Queue } from 'bullmq';
import { ConfigError, prefillQueueName } from '@latentwire/protocol';
import { startRedisServer } from '@latentwire/testing/servers';
import { clusterSettingsFromEnv } from '../../src/cluster/env.js';

const PASSWORD = 'redis-secret-4b1d';

test('redis auth - REDIS_URL with the password reaches the queue; a wrong one is refused without echoing it', async (t) => {
  const redis = await startRedisServer({ password: PASSWORD });
  t.teardown(() => redis.stop());
  t.true(redis.url.includes(`:${PASSWORD}@`));
  const settings = clusterSettingsFromEnv({ REDIS_URL: redis.url });
  const queue = new Queue(prefillQueueName('lwredisauth'), { connection: { url: settings.redisUrl } });
  t.teardown(() => queue.close());
  await queue.add('job', { n: 1 });
  t.is((await queue.getJobCounts('waiting')).waiting, 1);

  const wrong = new Queue(prefillQueueName('lwredisauth'), { connection: { url: redis.url.replace(PASSWORD, 'wrong-pass-9c2e'), maxRetriesPerRequest: 1 } });
  const errors: string[] = [];
  // ioredis reports the refusal as an error event (and keeps retrying); the call itself may wait for it
  const refused = await Promise.race([
    wrong.getJobCounts('waiting').then(() => 'answered', (err: Error) => `${err.message} ${err.stack ?? ''}`),
    new Promise<string>((r) => wrong.on('error', (err) => { errors.push(`${err.message} ${err.stack ?? ''}`); r('error event'); })),
    new Promise<string>((r) => setTimeout(() => r('timeout'), 5000)),
  ]);
  await wrong.close().catch(() => undefined);
  const seen = [refused, ...errors].join('\n');
  t.regex(seen, /WRONGPASS|NOAUTH|invalid username-password/i, seen);
  t.false(/wrong-pass-9c2e|redis-secret/.test(seen), seen);
});

test('redis auth - a refused REDIS_URL is shown with its password masked', (t) => {
  const err = t.throws(() => clusterSettingsFromEnv({ REDIS_URL: `http://:${PASSWORD}@127.0.0.1:6379` }));
  t.true(err instanceof ConfigError);
  t.regex(err!.message, /REDIS_URL="http:\/\/:\*\*\*@127\.0\.0\.1:6379"/);
  t.false(err!.message.includes(PASSWORD), err!.message);
});
