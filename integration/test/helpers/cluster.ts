// A whole latentwire cluster inside the test process, talking through real servers: its own nats-server and
// redis-server on free ports, N decode nodes and a prefill node (each its own model stack, all on the test's
// one WebGPU device), and the gateway's HTTP app on a free port, its backend on NATS + BullMQ. Only process
// boundaries are missing, which `npm start` (infra/start-cluster.mjs) adds.
import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import OpenAI from 'openai';
import { DecodeNodeService, decodeSettings, loadDecodeStack, type DecodeStack } from '@latentwire/decode-node';
import { PrefillWorkerService } from '@latentwire/prefill-node';
import { startClusterBackend, startGateway, type ClusterBackend, type RunningGateway } from '@latentwire/gateway';
import { loadPrefillModel } from '@latentwire/shared/prefill';
import type { KvDtype } from '@latentwire/shared/kv';
import { FIXTURE_DIR, startNatsServer, startRedisServer, testGpu } from '@latentwire/shared/testing';

export interface ClusterOptions {
  readonly decodeNodes?: number;
  readonly kvDtype?: KvDtype;
  readonly pageSize?: number;
  readonly numPages?: number;
  readonly maxBatch?: number;
  readonly admissionWaitMs?: number;
}

export interface DecodeNodeHandle {
  readonly id: string;
  readonly stack: DecodeStack;
  readonly service: DecodeNodeService;
}

export interface TestCluster {
  readonly url: string;
  readonly client: OpenAI;
  readonly model: string;
  readonly decode: readonly DecodeNodeHandle[];
  readonly prefill: PrefillWorkerService;
  readonly gateway: ClusterBackend;
  readonly prefix: string;
  /** A NATS connection of the test's own (to watch or forge messages). */
  readonly nc: NatsConnection;
  /** Resolves once every decode node has its starting free-page count again. */
  pagesBack(timeoutMs?: number): Promise<boolean>;
  stop(): Promise<void>;
}

export async function startCluster(o: ClusterOptions = {}): Promise<TestCluster> {
  const nats = await startNatsServer();
  const redis = await startRedisServer();
  const prefix = `it${randomBytes(4).toString('hex')}`;
  const gpu = await testGpu();
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' });
  const decode: DecodeNodeHandle[] = [];
  for (let i = 0; i < (o.decodeNodes ?? 2); i++) {
    const stack = await loadDecodeStack(gpu, FIXTURE_DIR, (cfg) => decodeSettings(cfg, {}, {
      pageSize: o.pageSize ?? 16, kvDtype: o.kvDtype ?? 'bf16', numPages: o.numPages ?? 64, maxBatch: o.maxBatch ?? 16, maxContext: 1024,
    }));
    const service = new DecodeNodeService({
      nats: nats.url, nodeId: `decode-${i}`, subjectPrefix: prefix, stack, heartbeatMs: 100, tokenFlushMs: 2, logger, registry: new Registry(),
    });
    await service.start();
    decode.push({ id: `decode-${i}`, stack, service });
  }
  const { folder, model } = loadPrefillModel(gpu, FIXTURE_DIR);
  const prefill = new PrefillWorkerService({
    nats: nats.url, redisUrl: redis.url, prefix, concurrency: 2, model, folder, logger, registry: new Registry(), ackTimeoutMs: 20_000,
  });
  await prefill.start();
  const nc = await connect({ servers: nats.url });
  const gwNc = await connect({ servers: nats.url });
  const gateway = await startClusterBackend({
    nc: gwNc, model: folder, logger,
    settings: {
      redisUrl: redis.url, subjectPrefix: prefix, heartbeatTimeoutMs: 2000, reserveTimeoutMs: 5000, admissionQueueMax: 64,
      admissionWaitMs: o.admissionWaitMs ?? 20_000, requestIdleTimeoutMs: 120_000, prefillAttempts: 2, prefillBackoffMs: 100,
    },
  });
  const http: RunningGateway = await startGateway({ model: folder, backend: gateway.backend, logger });
  // ready when the gateway sees every decode node
  for (let i = 0; gateway.backend.maxRequestTokens() === undefined || gateway.registry.nodes().length < decode.length; i++) {
    if (i > 200) throw new Error('the gateway never saw the decode nodes');
    await new Promise((r) => setTimeout(r, 50));
  }
  const total = decode.map((d) => d.stack.engine.stats().totalPages);
  const served = (await (await fetch(`${http.url}/v1/models`)).json()) as { data: { id: string }[] };
  return {
    url: http.url,
    client: new OpenAI({ baseURL: `${http.url}/v1`, apiKey: 'unused', maxRetries: 0 }),
    model: served.data[0]!.id,
    decode, prefill, gateway, prefix, nc,
    async pagesBack(timeoutMs = 5000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        if (decode.every((d, i) => d.stack.engine.stats().freePages === total[i])) return true;
        if (Date.now() > until) return false;
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
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
      await nats.stop();
      await redis.stop();
    },
  };
}
