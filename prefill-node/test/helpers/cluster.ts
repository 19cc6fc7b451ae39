// One test file's cluster: a real nats-server and redis-server and the tiny fixture model on the test GPU,
// started once; each test then gets its own subject prefix and queue (so tests never see each other's
// traffic), a PrefillWorkerService, a NATS connection for its fake decode nodes, and a BullMQ Queue.
import { randomUUID } from 'node:crypto';
import type { ExecutionContext } from 'ava';
import { Queue, type Job, type JobsOptions } from 'bullmq';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { latentKvLayout, latentLayoutKey, type KvDtype, type LatentKvLayout } from '@latentwire/protocol';
import { loadPrefillModel, type PrefillModel } from '@latentwire/gpu/prefill';
import type { ModelFolder } from '@latentwire/model';
import { FIXTURE_DIR, startNatsServer, startRedisServer } from '@latentwire/testing';
import { testGpu } from '@latentwire/gpu/testing';
import type { Gpu } from '@latentwire/gpu';
import type { PrefillJob } from '@latentwire/protocol';
import { PrefillWorkerService, type PrefillWorkerOptions } from '../../src/index.js';

export interface Cluster {
  readonly natsUrl: string;
  readonly redisUrl: string;
  readonly gpu: Gpu;
  readonly model: PrefillModel;
  readonly folder: ModelFolder;
  stop(): Promise<void>;
}

export async function startCluster(opts: { maxPayload?: number } = {}): Promise<Cluster> {
  const [nats, redis, gpu] = await Promise.all([startNatsServer({ maxPayload: opts.maxPayload }), startRedisServer(), testGpu()]);
  const { model, folder } = loadPrefillModel(gpu, FIXTURE_DIR);
  return {
    natsUrl: nats.url, redisUrl: redis.url, gpu, model, folder,
    stop: async () => {
      model.dispose();
      await Promise.all([nats.stop(), redis.stop()]);
    },
  };
}

export interface TestNode {
  readonly service: PrefillWorkerService;
  readonly queue: Queue;
  readonly registry: Registry;
  /** The fake decode nodes' connection. */
  readonly decodeNc: NatsConnection;
  /** The prefill service's connection (the test may publish cancels on it too). */
  readonly prefillNc: NatsConnection;
  /** Enqueues a job with `fields` over a valid default; returns its id. */
  enqueue(fields: Partial<PrefillJob> & { requestId: string; decodeNodeId: string }, opts?: JobsOptions): Promise<string>;
  /** Polls until the job is completed or failed (ms timeout), and returns it. */
  finished(id: string, timeoutMs?: number): Promise<Job>;
}

export const PAGE_SIZE = 16;

export function layoutFor(model: PrefillModel, dtype: KvDtype = 'fp8_e4m3'): LatentKvLayout {
  return latentKvLayout({ dtype, kvLoraRank: model.cfg.kvLoraRank, ropeDim: model.cfg.qkRopeHeadDim, pageSize: PAGE_SIZE });
}

export async function startTestNode(
  t: ExecutionContext, c: Cluster, options: Partial<Omit<PrefillWorkerOptions, 'nats' | 'redisUrl' | 'model' | 'folder'>> & { promptIds: readonly number[] },
): Promise<TestNode> {
  const prefix = `t${randomUUID().slice(0, 8)}`;
  const registry = new Registry();
  const [prefillNc, decodeNc] = await Promise.all([
    connect({ servers: c.natsUrl, name: 'test-prefill' }),
    connect({ servers: c.natsUrl, name: 'test-decode' }),
  ]);
  const service = new PrefillWorkerService({
    nats: prefillNc, redisUrl: c.redisUrl, prefix, model: c.model, folder: c.folder, registry,
    logger: pino({ level: process.env['TEST_LOG'] ?? 'silent' }), ...options,
  });
  const queue = new Queue(service.queueName, { connection: { url: c.redisUrl } });
  t.teardown(async () => {
    await service.stop();
    await queue.obliterate({ force: true });
    await queue.close();
    await Promise.all([prefillNc.close(), decodeNc.close()]);
  });
  await service.start();
  const layoutKey = latentLayoutKey(layoutFor(c.model));
  return {
    service, queue, registry, decodeNc, prefillNc,
    enqueue: async (fields, opts = { attempts: 1 }) => {
      const data: PrefillJob = {
        v: 2, promptIds: options.promptIds, sampling: { temperature: 0, topK: 0, topP: 1, seed: 7 }, layoutKey, fingerprint: c.folder.fingerprint, deadline: Date.now() + 120_000, ...fields,
      };
      const job = await queue.add('prefill', data, opts);
      return job.id!;
    },
    finished: async (id, timeoutMs = 60_000) => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const state = await queue.getJobState(id);
        // read the job after its state is final, so returnvalue / failedReason / attempts are its last ones
        if (state === 'completed' || state === 'failed') return (await queue.getJob(id))!;
        if (Date.now() > end) throw new Error(`job ${id} still ${state} after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

/** Sum of a prom-client counter's values matching `labels`. */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
    .filter((v) => !('metricName' in v) || v.metricName === undefined || v.metricName === name)
    .reduce((s, v) => s + v.value, 0);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
