// One real nats-server and one real redis-server per test file, started on first use; each test isolates
// itself with its own subject prefix (and so its own BullMQ queue name). Call stopServers from
// test.after.always.
//
// NOTE: @latentwire/shared/testing also exports the GPU helpers, so importing it loads the `webgpu` module
// into this test process (never into the gateway's own code). Only this file imports it.
import { startNatsServer, startRedisServer } from '@latentwire/shared/testing';

export { startRedisServer };

export interface TestServers {
  readonly natsUrl: string;
  readonly redisUrl: string;
}

let started: Promise<{ urls: TestServers; stop: () => Promise<void> }> | undefined;

export async function servers(): Promise<TestServers> {
  started ??= (async () => {
    const [nats, redis] = await Promise.all([startNatsServer(), startRedisServer()]);
    return { urls: { natsUrl: nats.url, redisUrl: redis.url }, stop: async () => void (await Promise.all([nats.stop(), redis.stop()])) };
  })();
  return (await started).urls;
}

export async function stopServers(): Promise<void> {
  if (started) await (await started).stop();
  started = undefined;
}
