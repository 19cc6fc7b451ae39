#!/usr/bin/env node
// The decode node process: environment → GPU → model and engine → NATS service, until SIGINT/SIGTERM.
// Every variable is parsed before the GPU is touched, so a bad value fails start-up at once, naming it:
// SERVICE_ENV (service/env.ts), DECODE_ENV (config.ts), GPU_ENV and MODEL_ENV (@latentwire/gpu).
import { createServer, type Server } from 'node:http';
import { pino } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { Gpu } from '@latentwire/gpu';
import { parseEnv } from '@latentwire/protocol';
import { gpuOptionsFromEnv, ropeFreqPrecisionFromEnv } from '@latentwire/gpu';
import { parseKvDtype } from '@latentwire/protocol';
import { DECODE_ENV, decodeSettings } from './config.js';
import { loadDecodeStack, type DecodeStack } from './engine/load.js';
import { DecodeNodeService } from './service/decode-node-service.js';
import { serviceSettingsFromEnv } from './service/env.js';

async function main(): Promise<void> {
  const settings = serviceSettingsFromEnv();
  parseKvDtype(parseEnv(DECODE_ENV).KV_CACHE_DTYPE); // checked now; sized against the model's config once it is open
  const gpuOptions = gpuOptionsFromEnv();
  const ropeFreqPrecision = ropeFreqPrecisionFromEnv();
  const logger = pino({ name: 'decode-node', level: settings.logLevel });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const gpu = await Gpu.create(gpuOptions);
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
    stack = await loadDecodeStack(gpu, settings.modelDir, (cfg) => decodeSettings(cfg), { ropeFreqPrecision });
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

main().catch((err: unknown) => {
  const e = err as Error;
  const config = e.name === 'ConfigError' || e.name === 'KvDtypeError';
  process.stderr.write(`decode-node: ${config ? '' : `${e.name}: `}${e.message}\n`);
  process.exit(config ? 2 : 1);
});
