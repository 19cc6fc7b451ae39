// Wires the cluster backend from a NATS connection and settings: heartbeat registry, BullMQ prefill
// queue, NatsBackend. The caller owns the NATS connection (it drains it after close()).
import type { NatsConnection } from '@nats-io/transport-node';
import { WireRejections, prefillQueueName, wireSubjects, type PrefillJob } from '@latentwire/protocol';
import { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { DecodeRegistry } from './decode-registry.js';
import type { ClusterSettings } from './env.js';
import { NatsBackend } from './nats-backend.js';
import { PrefillJobs } from './prefill-jobs.js';
import { GatewayPresence } from './presence.js';

/** How long close() lets the queue hand its last commands to Redis (ms). */
const QUEUE_CLOSE_MS = 2000;

export interface ClusterBackendOptions {
  readonly nc: NatsConnection;
  readonly settings: Omit<ClusterSettings, 'natsServers'>;
  /** The served model, as openModelFolder gives it. */
  readonly model: { readonly fingerprint: string; readonly generation: { readonly eosTokenIds: readonly number[] } };
  readonly logger: Logger;
  /** Default: a registry of its own (read it back from `metricsRegistry`). */
  readonly metricsRegistry?: Registry;
}

export interface ClusterBackend {
  readonly backend: NatsBackend;
  readonly registry: DecodeRegistry;
  readonly queue: Queue<PrefillJob>;
  readonly metricsRegistry: Registry;
  readonly presence: GatewayPresence;
  /**
   * Call before closing the HTTP server: waits for the requests it cuts off to be cancelled everywhere,
   * then stops listening for heartbeats and closes the queue's Redis connection.
   */
  close(timeoutMs?: number): Promise<void>;
}

export async function startClusterBackend(o: ClusterBackendOptions): Promise<ClusterBackend> {
  const { nc, settings, logger } = o;
  const metricsRegistry = o.metricsRegistry ?? new Registry();
  const subjects = wireSubjects(settings.subjectPrefix);
  const rejections = new WireRejections({ logger, registry: metricsRegistry });
  const registry = new DecodeRegistry({ nc, subjects, heartbeatTimeoutMs: settings.heartbeatTimeoutMs, probeTimeoutMs: settings.nodeProbeTimeoutMs, rejections, logger });
  const queue = new Queue<PrefillJob>(prefillQueueName(settings.subjectPrefix), { connection: { url: settings.redisUrl } });
  // Redis errors (a dropped connection, which ioredis retries) come as 'error' events; unheard, they would
  // crash the process. A job that cannot be queued fails its request with a 503 instead.
  queue.on('error', (err) => logger.error({ err }, 'prefill queue (Redis) error'));
  try {
    await Promise.all([registry.ready(), queue.waitUntilReady()]);
  } catch (err) {
    registry.close();
    await queue.close();
    throw err;
  }
  const gatewayId = settings.gatewayId ?? `gw-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const presence = new GatewayPresence(nc, subjects, gatewayId, settings.gatewayHeartbeatMs ?? 1000, logger);
  const backend = new NatsBackend({
    nc, subjects, registry, rejections, logger, metricsRegistry, settings, gatewayId,
    prefillJobs: new PrefillJobs(queue, { attempts: settings.prefillAttempts, backoffMs: settings.prefillBackoffMs }),
    fingerprint: o.model.fingerprint,
    eosTokenIds: o.model.generation.eosTokenIds,
  });
  return {
    backend, registry, queue, metricsRegistry, presence,
    close: async (timeoutMs?: number) => {
      await backend.close(timeoutMs);
      presence.close();
      registry.close();
      // A graceful close waits for Redis to take the queued commands, forever if Redis is down: give it a
      // moment, then drop the connection.
      const closed = queue.close().then(() => true, () => true);
      if (!(await Promise.race([closed, new Promise<false>((r) => setTimeout(() => r(false), QUEUE_CLOSE_MS))]))) {
        logger.warn({ waitedMs: QUEUE_CLOSE_MS }, 'prefill queue did not close (Redis unreachable?): disconnecting');
        void queue.disconnect().catch(() => undefined);
      }
    },
  };
}
