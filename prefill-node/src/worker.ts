// The prefill node's service: a BullMQ worker on the prefill queue running processPrefillJob (see its
// lifecycle), and a subscription to the gateway's prefill-cancel broadcast. Jobs run `concurrency` at a time:
// the GPU work of all of them goes through the one device queue anyway, but while one job's last layers
// and acks are in flight the next job's prefill can already compute.
import { hostname } from 'node:os';
import { Queue, Worker, type Job } from 'bullmq';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { pino, type Logger } from 'pino';
import { register as defaultRegistry, type Registry } from 'prom-client';
import type { PrefillModel } from '@latentwire/gpu/prefill';
import { GrammarCache, grammarVocabulary, type ModelFolder } from '@latentwire/model';
import { randomUUID } from 'node:crypto';
import {
  encodeMessage, logNatsErrors, MAX_HEARTBEAT_JOBS, natsLink, prefillHeartbeatMessage, prefillQueueName, registerKernelMetrics, SUBJECT_TYPES, WireRejections, wireSubjects,
  type NatsAuth, type WireSubjects,
} from '@latentwire/protocol';
import { Cancellations } from './cancellations.js';
import { PrefillMetrics, QUEUE_STATES } from './metrics.js';
import { processPrefillJob, type JobContext, type PrefillJobResult } from './process-job.js';
import { SendWindows } from './send-window.js';
import { ChunkBuffers } from './kv-sender.js';
import { prefillConnectOptions } from './nats-options.js';

export const DEFAULT_KV_SEND_WINDOW_BYTES = 8 << 20;
export const DEFAULT_KV_ACK_TIMEOUT_MS = 10_000;

export interface PrefillWorkerOptions {
  /** A connection (the caller drains it) or a server URL (the service connects, and drains in stop()). */
  readonly nats: NatsConnection | string;
  /** Credentials and TLS when `nats` is a URL (natsConnectOptions). */
  readonly natsAuth?: NatsAuth | undefined;
  /** BullMQ's Redis, e.g. redis://127.0.0.1:6379. */
  readonly redisUrl: string;
  /** Subject prefix; the queue is prefillQueueName(prefix). Default 'lw'. */
  readonly prefix?: string;
  /**
   * This worker's name on its Redis connections (BullMQ's client name), which is how the gateway's cluster
   * view tells prefill workers apart; default prefill-<host>-<pid>.
   */
  readonly workerName?: string;
  /** Jobs processed at once (default 2). */
  readonly concurrency?: number;
  readonly model: PrefillModel;
  /** The loaded model's folder: jobs must carry its fingerprint. (loadPrefillModel's result fits as is.) */
  readonly folder: Pick<ModelFolder, 'fingerprint'> & Partial<Pick<ModelFolder, 'tokenizer' | 'config' | 'generation'>>;
  /**
   * Longest prompt taken (default the model's max_position_embeddings): the prefill node passes the longest its
   * device can prefill (PrefillModel.compileAll's limit), so a longer job is refused at once instead of failing
   * on the GPU at every attempt.
   */
  readonly maxPromptTokens?: number | undefined;
  /** Unacknowledged kv-chunk bytes allowed per decode node, shared by all jobs (default 8 MiB). */
  readonly maxInFlightBytes?: number;
  /** How long a kv-chunk or prefill-done waits for its ack before the attempt fails (ms, default 10 000). */
  readonly ackTimeoutMs?: number;
  /** How long a cancelled request id is remembered (ms, default 10 min) and how many at most (default 100 000). */
  readonly cancelTtlMs?: number;
  readonly maxCancelledIds?: number;
  readonly logger?: Logger;
  /** Where metrics are registered (default: prom-client's global registry). */
  readonly registry?: Registry;
  /** How often the worker announces itself and its running jobs on NATS (ms, default 1000; 0 = never). */
  readonly heartbeatMs?: number;
  /** Its id in those heartbeats (default prefill-<host>-<pid>-<random>). */
  readonly workerId?: string;
}

export class PrefillWorkerService {
  readonly subjects: WireSubjects;
  readonly queueName: string;
  readonly metrics: PrefillMetrics;
  readonly rejections: WireRejections;
  readonly windows: SendWindows;
  private readonly chunkBuffers = new ChunkBuffers();
  readonly cancellations: Cancellations;
  readonly workerName: string;
  private readonly logger: Logger;
  private nc: NatsConnection | null = null;
  private ownsConnection = false;
  private cancelSub: Subscription | null = null;
  private worker: Worker | null = null;
  /** Only for the queue depth gauge. */
  private queue: Queue | null = null;
  readonly workerId: string;
  /** Request ids of the jobs running now (announced in prefill-heartbeats, so a crash is noticed at once). */
  private readonly running = new Set<string>();
  private heartbeat: NodeJS.Timeout | null = null;
  private beat = 0;

  constructor(private readonly options: PrefillWorkerOptions) {
    this.subjects = wireSubjects(options.prefix);
    this.queueName = prefillQueueName(this.subjects.prefix);
    this.workerName = options.workerName ?? `prefill-${hostname()}-${process.pid}`;
    this.logger = options.logger ?? pino({ name: 'prefill-node' });
    const registry = options.registry ?? defaultRegistry;
    this.metrics = new PrefillMetrics(registry);
    const profiler = options.model.gpu.profiler;
    if (profiler) registerKernelMetrics(registry, profiler); // GPU_PROFILE=1
    this.rejections = new WireRejections({ logger: this.logger, registry });
    this.windows = new SendWindows(options.maxInFlightBytes ?? DEFAULT_KV_SEND_WINDOW_BYTES, (d) => this.metrics.inFlightBytes.inc(d));
    this.cancellations = new Cancellations({ ttlMs: options.cancelTtlMs ?? 10 * 60_000, maxIds: options.maxCancelledIds ?? 100_000 });
    this.workerId = options.workerId ?? `prefill-${hostname().replace(/[^A-Za-z0-9_:-]/g, '-').slice(0, 64) || 'host'}-${process.pid}-${randomUUID().slice(0, 8)}`;
    const concurrency = options.concurrency ?? 2;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency ${concurrency} must be a positive integer`);
  }

  /** Connects (if given a URL), subscribes to cancels, then starts taking jobs. */
  async start(): Promise<void> {
    if (this.worker) throw new Error('PrefillWorkerService already started');
    const o = this.options;
    if (typeof o.nats === 'string') {
      this.nc = await connect({ servers: o.nats, ...prefillConnectOptions(o.natsAuth) });
      this.ownsConnection = true;
      logNatsErrors(this.nc, this.logger); // e.g. a publish its NATS user may not make
    } else {
      this.nc = o.nats;
    }
    const nc = this.nc;
    this.cancelSub = nc.subscribe(this.subjects.prefillCancel, {
      callback: (err, msg) => {
        if (err) return void this.logger.error({ err, subject: this.subjects.prefillCancel }, 'cancel subscription failed');
        const m = this.rejections.decode(msg.data, msg.subject, SUBJECT_TYPES.prefillCancel);
        if (!m) return;
        const aborted = this.cancellations.cancel(m.requestId, this.subjects.prefillCancel);
        this.logger.info({ requestId: m.requestId, reason: m.reason, activeJobs: aborted }, 'request cancelled');
      },
    });
    await nc.flush(); // the subscription is live on the server before the first job runs
    const link = natsLink(nc); // down between a disconnect and the reconnect: jobs wait for it (process-job.ts)

    const ctx: JobContext = {
      nc, subjects: this.subjects, windows: this.windows, buffers: this.chunkBuffers, ackTimeoutMs: o.ackTimeoutMs ?? DEFAULT_KV_ACK_TIMEOUT_MS,
      metrics: this.metrics, rejections: this.rejections, logger: this.logger,
      model: o.model, fingerprint: o.folder.fingerprint, cancellations: this.cancellations, cancelSubject: this.subjects.prefillCancel,
      grammars: grammarsOf(o.folder), maxPromptTokens: o.maxPromptTokens, natsUp: () => link.up,
    };
    const worker = new Worker<unknown, PrefillJobResult>(this.queueName, async (job: Job) => {
      const id = (job.data as { requestId?: unknown } | undefined)?.requestId;
      const tracked = typeof id === 'string' ? id : undefined;
      if (tracked) {
        this.running.add(tracked);
        this.sendHeartbeat(); // the gateways learn at once who holds the job
      }
      try {
        return await processPrefillJob(ctx, job);
      } finally {
        if (tracked) this.running.delete(tracked);
      }
    }, {
      connection: { url: o.redisUrl },
      concurrency: o.concurrency ?? 2,
      autorun: false,
      name: this.workerName,
    });
    worker.on('error', (err) => this.logger.error({ err, queue: this.queueName }, 'prefill worker error'));
    this.worker = worker;
    const queue = new Queue(this.queueName, { connection: { url: o.redisUrl } });
    queue.on('error', (err) => this.logger.warn({ err, queue: this.queueName }, 'prefill queue (depth gauge) error'));
    this.queue = queue;
    this.metrics.queueCounts = () => queue.getJobCounts(...QUEUE_STATES);
    const every = o.heartbeatMs ?? 1000;
    if (every > 0) {
      this.sendHeartbeat();
      this.heartbeat = setInterval(() => this.sendHeartbeat(), every);
      this.heartbeat.unref();
    }
    void worker.run().catch((err: unknown) => this.logger.error({ err, queue: this.queueName }, 'prefill worker stopped'));
    await worker.waitUntilReady();
    this.logger.info({ queue: this.queueName, worker: this.workerName, concurrency: o.concurrency ?? 2, subjects: this.subjects.prefix }, 'prefill worker started');
  }

  /**
   * Stops taking jobs and waits for the active ones to finish or fail, then unsubscribes; drains the NATS
   * connection if the service opened it. The model and GPU stay the caller's.
   */
  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    await worker?.close(); // heartbeats go on meanwhile: its running jobs are not given up for lost
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.metrics.queueCounts = null;
    await this.queue?.close();
    this.queue = null;
    this.cancelSub?.unsubscribe();
    this.cancelSub = null;
    if (this.ownsConnection && this.nc && !this.nc.isClosed()) await this.nc.drain();
    this.nc = null;
    this.ownsConnection = false;
  }

  private sendHeartbeat(): void {
    const nc = this.nc;
    const every = this.options.heartbeatMs ?? 1000;
    if (!nc || nc.isClosed() || every <= 0) return;
    try {
      nc.publish(this.subjects.prefillHeartbeat, encodeMessage(prefillHeartbeatMessage({
        workerId: this.workerId, seq: this.beat, intervalMs: every, sentAt: Date.now(), jobs: [...this.running].slice(0, MAX_HEARTBEAT_JOBS),
        ...(this.options.maxPromptTokens === undefined ? {} : { maxPromptTokens: this.options.maxPromptTokens }),
      })));
      this.beat = (this.beat + 1) >>> 0;
    } catch (err) {
      this.logger.warn({ err }, 'prefill heartbeat not sent');
    }
  }
}

/** The folder's grammar cache (constrained decoding's first token), when the folder has its tokenizer. */
function grammarsOf(folder: PrefillWorkerOptions['folder']): GrammarCache | undefined {
  const { tokenizer, config, generation } = folder;
  return tokenizer && config && generation ? new GrammarCache(grammarVocabulary({ tokenizer, config, generation })) : undefined;
}
