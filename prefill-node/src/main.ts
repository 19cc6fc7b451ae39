#!/usr/bin/env node
// The prefill node process: env (env.ts) → GPU → model → every shader compiled (PrefillModel.compileAll: each
// prompt-length bucket up to the model's context, each cache dtype, each option) and dispatched once (warmUp)
// → NATS → worker, so /ready answers ready, and jobs are taken, only once no request can wait for a shader
// compile. SIGINT/SIGTERM: stop taking jobs and let the active ones finish or fail, drain NATS, release the
// GPU. A second signal exits at once. A bad variable exits 2 naming it, before the GPU is touched (failStart).
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { register } from 'prom-client';
import { Gpu } from '@latentwire/gpu';
import { loadPrefillModel, type PrefillCompiled } from '@latentwire/gpu/prefill';
import { loadProgressReporter } from '@latentwire/gpu/weights';
import { failStart, logNatsErrors, natsLink, serveOps, type Readiness } from '@latentwire/protocol';
import { prefillSettingsFromEnv, promptTokenLimit } from './env.js';
import { prefillConnectOptions } from './nats-options.js';
import { PrefillWorkerService } from './worker.js';

async function main(): Promise<void> {
  const settings = prefillSettingsFromEnv(process.env);
  const logger = pino({ name: 'prefill-node', level: settings.logLevel });
  let stage = 'loading weights';
  let link: { readonly up: boolean } | null = null;
  let compiled: PrefillCompiled | null = null;
  // /ready: the model is loaded, every shader compiled, the worker takes jobs from the queue and NATS (where the
  // KV goes) is connected
  const readiness = (): Readiness => ({
    ready: stage === 'serving' && compiled !== null && link?.up === true, stage, shaders: compiled?.shaders, natsConnected: link?.up ?? false,
  });
  // /health answers while the model loads, so "loading" and "dead" look different from outside
  const metrics = settings.metricsPort > 0 ? await serveOps({ port: settings.metricsPort, registry: register, readiness }) : null;
  const gpu = await Gpu.create(settings.gpu);
  const { model, folder } = loadPrefillModel(gpu, settings.modelDir, {
    ropeFreqPrecision: settings.ropeFreqPrecision, onLoadProgress: loadProgressReporter({ log: logger }),
  });
  logger.info({ model: settings.modelDir, fingerprint: folder.fingerprint, layers: model.cfg.numLayers }, 'model loaded');
  // before the worker exists: no job is taken while shaders compile, and none waits for one after
  stage = 'compiling shaders';
  // an operator's cap below the context: no longer length is dry-run or compiled for
  const cap = promptTokenLimit(settings.maxPromptTokens, model.cfg.maxPositionEmbeddings, undefined);
  compiled = await model.compileAll(cap === undefined ? {} : { maxTokens: cap });
  logger.info({ shaders: compiled.shaders, ms: Math.round(compiled.ms), buckets: compiled.buckets }, 'prefill shaders compiled');
  // a driver may finish a compile at the first dispatch (llvmpipe does): every pipeline runs once before ready
  stage = 'warming up';
  const warm = await model.warmUp(compiled);
  logger.info({ runs: warm.runs, ms: Math.round(warm.ms) }, 'prefill warmed up: every pipeline dispatched once');
  if (compiled.limit) {
    logger.warn({ tokens: compiled.limit.tokens, reason: compiled.limit.reason, maxPositionEmbeddings: model.cfg.maxPositionEmbeddings }, 'prompts this long cannot be prefilled on this device: such jobs are refused');
  }
  stage = 'connecting';
  const nc = await connect({ servers: [...settings.natsServers], ...prefillConnectOptions(settings.natsAuth) });
  link = natsLink(nc);
  logNatsErrors(nc, logger); // e.g. a publish its NATS user may not make
  const service = new PrefillWorkerService({
    nats: nc, redisUrl: settings.redisUrl, prefix: settings.prefix, concurrency: settings.concurrency,
    model, folder, maxInFlightBytes: settings.maxInFlightBytes, ackTimeoutMs: settings.ackTimeoutMs, logger, registry: register,
    heartbeatMs: settings.heartbeatMs, maxPromptTokens: promptTokenLimit(settings.maxPromptTokens, model.cfg.maxPositionEmbeddings, compiled.limit?.tokens),
  });
  await service.start();
  stage = 'serving';

  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    stage = 'stopping';
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

main().catch((err: unknown) => failStart('prefill-node', err));
