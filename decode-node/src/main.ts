#!/usr/bin/env node
// The decode node process: environment → GPU → model and engine → NATS service, until SIGINT/SIGTERM.
// Every variable (DECODE_NODE_ENV, node-env.ts) is parsed before the GPU is touched, so a bad value fails
// start-up at once naming it; sizes the adapter cannot hold (KV_CACHE_MIB, DECODE_HEAD_GROUP) are checked
// right after the device is acquired, before any weight is uploaded. Both exit 2 (failStart).
import type { Server } from 'node:http';
import { pino } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { Gpu } from '@latentwire/gpu';
import { loadProgressReporter } from '@latentwire/gpu/weights';
import { loadConfig } from '@latentwire/model';
import { failStart, serveOps, type Readiness } from '@latentwire/protocol';
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

  let stack: DecodeStack | null = null;
  let service: DecodeNodeService | null = null;
  let stage = 'starting';
  // /ready: weights loaded, every pipeline compiled, heartbeating on NATS (the pool may send work)
  const readiness = (): Readiness => ({
    ready: stage === 'serving' && service?.connected === true && !service.isDraining, stage, nodeId: settings.nodeId,
    shaders: stack?.compiled.shaders, natsConnected: service?.connected ?? false,
  });
  // /health answers while the model loads, so "loading" and "dead" look different from outside
  const metricsServer: Server | null = settings.metricsPort > 0 ? await serveOps({ port: settings.metricsPort, registry, readiness }) : null;
  const gpu = await Gpu.create(env.gpu);
  let stopping: Promise<void> | null = null;
  // SIGTERM drains (the scale-down path: running sequences finish within DRAIN_TIMEOUT_MS); SIGINT stops at once.
  const stop = (why: string) => {
    stopping ??= (async () => {
      logger.info({ why }, 'stopping');
      if (why === 'SIGTERM' && service) await service.drain(settings.drainTimeoutMs);
      else await service?.stop();
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
    const decode = decodeSettingsFrom(loadConfig(settings.modelDir), env.decode, {}, gpu.limits, gpu.matrixCapabilities);
    stage = 'loading weights, compiling and warming up';
    stack = await loadDecodeStack(gpu, settings.modelDir, () => decode, {
      ropeFreqPrecision: env.ropeFreqPrecision, onLoadProgress: loadProgressReporter({ log: logger }),
    });
    // every pipeline is compiled before the service starts heartbeating: the pool only hears of a node that can serve at once
    logger.info({ shaders: stack.compiled.shaders, ms: Math.round(stack.compiled.ms) }, 'decode pipelines compiled');
    logger.info({ steps: stack.warmed.steps, ms: Math.round(stack.warmed.ms) }, 'decode warmed up: every pipeline dispatched once');
    service = new DecodeNodeService({
      nats: settings.natsServers, natsAuth: settings.natsAuth, nodeId: settings.nodeId, subjectPrefix: settings.subjectPrefix, stack,
      heartbeatMs: settings.heartbeatMs, tokenFlushMs: settings.tokenFlushMs, logger, registry,
      gatewaySilenceMs: settings.gatewaySilenceMs,
    });
    stage = 'connecting';
    await service.start();
    stage = 'serving';
    const s = stack.engine.stats();
    logger.info({ model: settings.modelDir, totalPages: s.totalPages, layoutKey: service.node.layoutKey, metricsPort: settings.metricsPort || undefined }, 'ready');
  } catch (err) {
    await stop('start-up failed').catch(() => undefined);
    throw err;
  }
}

main().catch((err: unknown) => failStart('decode-node', err));
