#!/usr/bin/env node
// The decode node process: environment → GPU → model and engine → NATS service, until SIGINT/SIGTERM.
// Every variable (DECODE_NODE_ENV, node-env.ts) is parsed before the GPU is touched, so a bad value fails
// start-up at once naming it; sizes the adapter cannot hold (KV_CACHE_MIB, DECODE_HEAD_GROUP) are checked
// right after the device is acquired, before any weight is uploaded. Both exit 2 (failStart).
import { createServer, type Server } from 'node:http';
import { pino } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { Gpu } from '@latentwire/gpu';
import { loadConfig } from '@latentwire/model';
import { failStart } from '@latentwire/protocol';
import { decodeSettingsFrom } from './config.js';
import { loadDecodeStack, type DecodeStack } from './engine/load.js';
import { decodeNodeEnv } from './node-env.js';
import { DecodeNodeService } from './service/decode-node-service.js';

async function main(): Promise<void> {
  const env = decodeNodeEnv(process.env);
  const settings = env.service;
  const logger = pino({ name: 'decode-node', level: settings.logLevel });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const gpu = await Gpu.create(env.gpu);
  let stack: DecodeStack | null = null;
  let service: DecodeNodeService | null = null;
  let metricsServer: Server | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (why: string) => {
    stopping ??= (async () => {
      logger.info({ why }, 'stopping');
      await service?.stop();
      await new Promise<void>((done) => (metricsServer ? metricsServer.close(() => done()) : done()));
      stack?.release();
      gpu.dispose();
    })();
    return stopping;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(130);
      }
      stop(signal).then(() => process.exit(0), (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      });
    });
  }

  try {
    const decode = decodeSettingsFrom(loadConfig(settings.modelDir), env.decode, {}, gpu.limits);
    stack = await loadDecodeStack(gpu, settings.modelDir, () => decode, { ropeFreqPrecision: env.ropeFreqPrecision });
    // every pipeline is compiled before the service starts heartbeating: the pool only hears of a node that can serve at once
    logger.info({ shaders: stack.compiled.shaders, ms: Math.round(stack.compiled.ms) }, 'decode pipelines compiled');
    service = new DecodeNodeService({
      nats: settings.natsServers, nodeId: settings.nodeId, subjectPrefix: settings.subjectPrefix, stack,
      heartbeatMs: settings.heartbeatMs, tokenFlushMs: settings.tokenFlushMs, logger, registry,
    });
    await service.start();
    if (settings.metricsPort > 0) metricsServer = await serveMetrics(registry, settings.metricsPort);
    const s = stack.engine.stats();
    logger.info({ model: settings.modelDir, totalPages: s.totalPages, layoutKey: service.node.layoutKey, metricsPort: settings.metricsPort || undefined }, 'ready');
  } catch (err) {
    await stop('start-up failed').catch(() => undefined);
    throw err;
  }
}

/** GET /metrics in the Prometheus text format; anything else 404. */
function serveMetrics(registry: Registry, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve(server));
  });
}

main().catch((err: unknown) => failStart('decode-node', err));
