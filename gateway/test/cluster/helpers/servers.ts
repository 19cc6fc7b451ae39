// One real nats-server and one real redis-server per test file, started on first use; each test isolates
// itself with its own subject prefix (and so its own BullMQ queue name). Call stopServers from
// test.after.always.
// (@latentwire/testing/servers: the launchers without the GPU helpers, so `webgpu` is never loaded here.)
import { startNatsServer, startRedisServer } from '@latentwire/testing/servers';

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
