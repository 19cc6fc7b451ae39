// A gateway over the real bus for one test: its own subject prefix (so its own BullMQ queue), the
// NatsBackend behind the real HTTP app, scripted decode nodes, an observer connection, and a BullMQ Worker
// standing in for the prefill nodes. Everything is closed in t.teardown.
import { randomUUID } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { SUBJECT_TYPES, decodeMessage, prefillQueueName, wireSubjects, type Cancel, type PrefillJob, type WireSubjects } from '@latentwire/protocol';
import type { ExecutionContext } from 'ava';
import { Worker, type Job } from 'bullmq';
import { pino } from 'pino';
import { startClusterBackend, type ClusterBackend, type ClusterSettings } from '../../../src/index.js';
import { model } from '../../http/helpers/fixture.js';
import { startTestGateway, type TestGateway } from '../../http/helpers/gateway.js';
import { ScriptedDecodeNode, type ScriptedNodeOptions } from './scripted-decode-node.js';
import { servers } from './servers.js';

export type TestSettings = Pick<
  ClusterSettings,
  'heartbeatTimeoutMs' | 'reserveTimeoutMs' | 'admissionQueueMax' | 'admissionWaitMs' | 'requestIdleTimeoutMs' | 'prefillAttempts' | 'prefillBackoffMs'
>;

/** Short timeouts, so waiting and expiry are quick to test. */
export const TEST_SETTINGS: TestSettings = {
  heartbeatTimeoutMs: 600,
  reserveTimeoutMs: 300,
  admissionQueueMax: 8,
  admissionWaitMs: 1500,
  requestIdleTimeoutMs: 5000,
  prefillAttempts: 1,
  prefillBackoffMs: 10,
};

export const FINGERPRINT = (): string => model().fingerprint;

export interface TestCluster {
  readonly subjects: WireSubjects;
  readonly cluster: ClusterBackend;
  readonly gateway: TestGateway;
  /** The test's own connection, for listening in. */
  readonly observer: NatsConnection;
  /** Cancels seen on the prefill-cancel broadcast, with performance.now() at receipt. */
  readonly prefillCancels: { readonly message: Cancel; readonly at: number }[];
  node(opts: Omit<ScriptedNodeOptions, 'subjects' | 'natsUrl' | 'fingerprint'> & { fingerprint?: string }): Promise<ScriptedDecodeNode>;
  /** Starts the stand-in prefill worker: each job goes to `onJob` with the node that reserved its pages. */
  startPrefillWorker(onJob: (job: PrefillJob, node: ScriptedDecodeNode) => Promise<void> | void, concurrency?: number): Worker<PrefillJob>;
  /** Resolves once the registry lists these nodes as compatible. */
  waitForNodes(...nodeIds: string[]): Promise<void>;
}

export async function startTestCluster(
  t: ExecutionContext,
  overrides: Partial<TestSettings & { redisUrl: string; natsUrl: string } & Pick<ClusterSettings, 'prefillQueueMaxWaitMs' | 'cancelAckTimeoutMs' | 'cancelAttempts' | 'nodeProbeTimeoutMs' | 'prefillSilenceMs' | 'prefillResumes' | 'resumeReplayMaxTokens'>> = {},
): Promise<TestCluster> {
  const { natsUrl, redisUrl } = {
    ...(await servers()), ...(overrides.redisUrl ? { redisUrl: overrides.redisUrl } : {}), ...(overrides.natsUrl ? { natsUrl: overrides.natsUrl } : {}),
  };
  const subjectPrefix = `test.${randomUUID().slice(0, 8)}`;
  const subjects = wireSubjects(subjectPrefix);
  const logger = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
  const settings: Omit<ClusterSettings, 'natsServers'> = { ...TEST_SETTINGS, ...overrides, redisUrl, subjectPrefix };

  // Reconnects a little faster than nats.js's default 2 s (a test restarts its NATS server).
  const nc = await connect({ servers: natsUrl, name: 'test-gateway', reconnectTimeWait: 250, maxReconnectAttempts: -1 });
  const observer = await connect({ servers: natsUrl, name: 'test-observer', reconnectTimeWait: 250, maxReconnectAttempts: -1 });
  const cluster = await startClusterBackend({ nc, settings, model: model(), logger });
  const nodes = new Map<string, ScriptedDecodeNode>();
  const workers: Worker[] = [];
  // Teardowns run in reverse: the gateway closes first, then the cluster, nodes, workers, connections.
  t.teardown(async () => {
    await Promise.all(workers.map((w) => w.close(true)));
    await Promise.all([...nodes.values()].map((n) => n.stop()));
    // Bounded: a test may have stopped its Redis.
    await Promise.race([cluster.queue.obliterate({ force: true }).catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
    await cluster.close();
    await Promise.all([nc.close(), observer.close()]);
  });
  const gateway = await startTestGateway(t, cluster.backend);

  const prefillCancels: TestCluster['prefillCancels'] = [];
  observer.subscribe(subjects.prefillCancel, {
    callback: (_err, msg) => void prefillCancels.push({ message: decodeMessage(msg.data, SUBJECT_TYPES.prefillCancel), at: performance.now() }),
  });
  await observer.flush();

  return {
    subjects, cluster, gateway, observer, prefillCancels,
    async node(opts) {
      const node = await ScriptedDecodeNode.start({ fingerprint: FINGERPRINT(), ...opts, subjects, natsUrl });
      nodes.set(node.nodeId, node);
      return node;
    },
    startPrefillWorker(onJob, concurrency = 8) {
      const worker = new Worker<PrefillJob>(
        prefillQueueName(subjectPrefix),
        async (job: Job<PrefillJob>) => {
          const node = nodes.get(job.data.decodeNodeId);
          if (!node) throw new Error(`job for unknown node ${job.data.decodeNodeId}`);
          await onJob(job.data, node);
        },
        { connection: { url: redisUrl }, concurrency },
      );
      workers.push(worker);
      return worker;
    },
    async waitForNodes(...nodeIds) {
      await until(() => nodeIds.every((id) => cluster.registry.compatible(FINGERPRINT()).some((n) => n.nodeId === id)), 3000, `nodes ${nodeIds.join(', ')}`);
    },
  };
}

/** Polls `cond` every 10 ms; throws after `timeoutMs`. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
