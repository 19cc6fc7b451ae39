#!/usr/bin/env node
// The prefill node process: env (env.ts) → GPU → model → NATS → worker. SIGINT/SIGTERM: stop taking jobs and
// let the active ones finish or fail, drain NATS, release the GPU. A second signal exits at once. A bad
// variable exits 2 naming it, before the GPU is touched (failStart).
import { createServer, type Server } from 'node:http';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { register } from 'prom-client';
import { Gpu } from '@latentwire/gpu';
import { loadPrefillModel } from '@latentwire/gpu/prefill';
import { failStart } from '@latentwire/protocol';
import { prefillSettingsFromEnv } from './env.js';
import { PrefillWorkerService } from './worker.js';

async function main(): Promise<void> {
  const settings = prefillSettingsFromEnv(process.env);
  const logger = pino({ name: 'prefill-node', level: settings.logLevel });
  const gpu = await Gpu.create(settings.gpu);
  const { model, folder } = loadPrefillModel(gpu, settings.modelDir, { ropeFreqPrecision: settings.ropeFreqPrecision });
  logger.info({ model: settings.modelDir, fingerprint: folder.fingerprint, layers: model.cfg.numLayers }, 'model loaded');
  const nc = await connect({ servers: [...settings.natsServers], name: 'latentwire-prefill' });
  const service = new PrefillWorkerService({
    nats: nc, redisUrl: settings.redisUrl, prefix: settings.prefix, concurrency: settings.concurrency,
    model, folder, maxInFlightBytes: settings.maxInFlightBytes, ackTimeoutMs: settings.ackTimeoutMs, logger, registry: register,
  });
  await service.start();
  const metrics = settings.metricsPort > 0 ? await serveMetrics(settings.metricsPort) : null;

  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing active jobs');
    try {
      await service.stop();
      await nc.drain();
      metrics?.close();
      model.dispose();
      gpu.dispose();
      logger.info('stopped');
      process.exitCode = 0;
    } catch (err) {
      logger.error({ err }, 'shutdown failed');
      process.exitCode = 1;
    }
  };
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => void shutdown(s));
}

/** GET /metrics from prom-client's global registry. */
function serveMetrics(port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    register.metrics().then(
      (text) => res.writeHead(200, { 'content-type': register.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve(server));
  });
}

main().catch((err: unknown) => failStart('prefill-node', err));
