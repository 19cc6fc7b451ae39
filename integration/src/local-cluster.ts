// A whole latentwire cluster in one process, talking through real servers: nats-server and redis-server (its
// own on free ports unless URLs are given), N decode nodes and a prefill node (each its own model stack, all
// on one WebGPU device), and the gateway's HTTP app on a free port, its backend on NATS + BullMQ. Only
// process boundaries are missing, which `npm start` (infra/start-cluster.mjs) adds. The end-to-end tests
// and the serving benchmarks both run on it.
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { DecodeNodeService, decodeSettings, loadDecodeStack, type DecodeStack } from '@latentwire/decode-node';
import { PrefillWorkerService } from '@latentwire/prefill-node';
import {
  ClusterView, clusterSettingsFromEnv, startClusterBackend, startGateway, type ClusterBackend, type ClusterSettings,
} from '@latentwire/gateway';
import type { Gpu } from '@latentwire/gpu';
import { loadPrefillModel } from '@latentwire/gpu/prefill';
import { natsConnectOptions, type KvDtype, type NatsAuth } from '@latentwire/protocol';
import { FIXTURE_DIR } from '@latentwire/testing';
import { startNatsServer, startRedisServer } from '@latentwire/testing/servers';

export interface LocalClusterOptions {
  /** The device every node shares. */
  readonly gpu: Gpu;
  readonly decodeNodes?: number;
  readonly kvDtype?: KvDtype;
  readonly pageSize?: number;
  readonly numPages?: number;
  readonly maxBatch?: number;
  readonly maxContext?: number;
  /** The decode nodes' TOKEN_FLUSH_MS (default 2). */
  readonly tokenFlushMs?: number;
  /** Gateway settings over its environment defaults (subject prefix and Redis are the cluster's). */
  readonly gateway?: Partial<ClusterSettings>;
  /** Use these servers instead of starting them. */
  readonly natsUrl?: string | undefined;
  readonly redisUrl?: string | undefined;
  /** The gateway's HTTP logger (access lines); default: the cluster's (LOG_REDACT not applied: tests only). */
  readonly logger?: Logger | undefined;
  /** Default: the bundled tiny model. */
  readonly modelDir?: string | undefined;
  /** The gateway's cluster view samples every node this often (ms, default 2000). */
  readonly clusterSampleMs?: number;
  /** Subject prefix (default a random one per cluster), e.g. the one a NATS permissions config names. */
  readonly prefix?: string | undefined;
  /** Each role's NATS credentials (natsConnectOptions); the caller's `nc` connects as the gateway. Default none. */
  readonly natsAuth?: { readonly gateway: NatsAuth; readonly prefill: NatsAuth; readonly decode: NatsAuth } | undefined;
}

export interface DecodeNodeHandle {
  readonly id: string;
  readonly stack: DecodeStack;
  readonly service: DecodeNodeService;
}

export interface LocalCluster {
  /** The gateway's HTTP root, e.g. http://127.0.0.1:41234. */
  readonly url: string;
  readonly natsUrl: string;
  readonly prefix: string;
  readonly decode: readonly DecodeNodeHandle[];
  readonly prefill: PrefillWorkerService;
  readonly gateway: ClusterBackend;
  /** What GET /v1/cluster and the /cluster page show. */
  readonly view: ClusterView;
  /** Each service's metrics registry (what its /metrics would serve), for tests that scrape them. */
  readonly registries: { readonly gateway: Registry; readonly decode: readonly Registry[]; readonly prefill: Registry };
  /** A NATS connection of the caller's own (to watch or forge messages). */
  readonly nc: NatsConnection;
  /** Resolves true once every decode node has its starting free-page count again (false after timeoutMs). */
  pagesBack(timeoutMs?: number): Promise<boolean>;
  stop(): Promise<void>;
}

export async function startLocalCluster(o: LocalClusterOptions): Promise<LocalCluster> {
  const nats = o.natsUrl ? null : await startNatsServer();
  const redis = o.redisUrl ? null : await startRedisServer();
  const natsUrl = o.natsUrl ?? nats!.url;
  const redisUrl = o.redisUrl ?? redis!.url;
  const prefix = o.prefix ?? `lc${randomBytes(4).toString('hex')}`;
  const dir = o.modelDir ?? FIXTURE_DIR;
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' });
  const decode: DecodeNodeHandle[] = [];
  const registries = { gateway: new Registry(), decode: [] as Registry[], prefill: new Registry() };
  for (let i = 0; i < (o.decodeNodes ?? 2); i++) {
    const stack = await loadDecodeStack(o.gpu, dir, (cfg) => decodeSettings(cfg, {}, {
      pageSize: o.pageSize ?? 16, kvDtype: o.kvDtype ?? 'bf16', numPages: o.numPages ?? 64, maxBatch: o.maxBatch ?? 16,
      maxContext: Math.min(o.maxContext ?? 1024, cfg.maxPositionEmbeddings),
    }));
    const service = new DecodeNodeService({
      nats: natsUrl, natsAuth: o.natsAuth?.decode, nodeId: `decode-${i}`, subjectPrefix: prefix, stack, heartbeatMs: 100, tokenFlushMs: o.tokenFlushMs ?? 2, logger,
      registry: registries.decode[i] = new Registry(),
    });
    await service.start();
    decode.push({ id: `decode-${i}`, stack, service });
  }
  const { folder, model } = loadPrefillModel(o.gpu, dir);
  const prefill = new PrefillWorkerService({
    nats: natsUrl, natsAuth: o.natsAuth?.prefill, redisUrl, prefix, concurrency: 2, model, folder, logger, registry: registries.prefill, workerName: 'prefill-0',
  });
  await prefill.start();
  const nc = await connect({ servers: natsUrl, ...natsConnectOptions(o.natsAuth?.gateway) });
  const gwNc = await connect({ servers: natsUrl, ...natsConnectOptions(o.natsAuth?.gateway) });
  const gateway = await startClusterBackend({
    nc: gwNc, model: folder, logger, settings: { ...clusterSettingsFromEnv({}), ...o.gateway, redisUrl, subjectPrefix: prefix },
    metricsRegistry: registries.gateway,
  });
  const view = new ClusterView({
    registry: gateway.registry, queue: gateway.queue, model: { id: basename(folder.dir), fingerprint: folder.fingerprint }, sampleMs: o.clusterSampleMs,
  });
  const http = await startGateway({
    model: folder, backend: gateway.backend, logger: o.logger ?? logger, metricsRegistry: registries.gateway, cluster: view,
  });
  // ready when the gateway sees every decode node
  for (let i = 0; gateway.backend.maxRequestTokens() === undefined || gateway.registry.nodes().length < decode.length; i++) {
    if (i > 200) throw new Error('the gateway never saw the decode nodes');
    await new Promise((r) => setTimeout(r, 50));
  }
  const total = decode.map((d) => d.stack.engine.stats().totalPages);
  return {
    url: http.url, natsUrl, prefix, decode, prefill, gateway, view, nc, registries,
    async pagesBack(timeoutMs = 5000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        if (decode.every((d, i) => d.stack.engine.stats().freePages === total[i])) return true;
        if (Date.now() > until) return false;
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      view.close();
      await gateway.close();
      await http.close();
      await gwNc.drain();
      await prefill.stop();
      for (const d of decode) {
        await d.service.stop();
        d.stack.release();
      }
      model.dispose();
      await nc.drain();
      await nats?.stop();
      await redis?.stop();
    },
  };
}
