// The gateway service: OpenAI HTTP API in front of the NATS/BullMQ cluster.
//   1. parse the environment (a bad variable exits with an error naming it);
//   2. open the model folder (tokenizer, chat template, fingerprint; no GPU);
//   3. connect NATS, start the heartbeat registry and the prefill queue, listen for HTTP (GET /metrics too);
//   4. on SIGINT/SIGTERM: stop taking connections, cancel what was in flight, close the queue, drain NATS.
import { fileURLToPath } from 'node:url';
import { ConfigError, env, parseEnv } from '@latentwire/protocol';
import { openModelFolder } from '@latentwire/model';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { clusterSettingsFromEnv, startClusterBackend, type ClusterSettings } from './cluster/index.js';
import { httpSettingsFromEnv, startGateway, type HttpSettings } from './http/index.js';
import { metricsRoute } from './metrics-route.js';

const MAIN_ENV = {
  /** The model folder the decode and prefill nodes serve (its fingerprint must match theirs). */
  MODEL_DIR: env.str(fileURLToPath(new URL('../../../models/tiny-deepseek-v2', import.meta.url))),
  LOG_LEVEL: env.oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
};

interface MainSettings {
  readonly modelDir: string;
  readonly logLevel: string;
  readonly http: HttpSettings;
  readonly cluster: ClusterSettings;
}

function settingsFromEnv(e: NodeJS.ProcessEnv): MainSettings {
  const v = parseEnv(MAIN_ENV, e);
  return Object.freeze({ modelDir: v.MODEL_DIR, logLevel: v.LOG_LEVEL, http: httpSettingsFromEnv(e), cluster: clusterSettingsFromEnv(e) });
}

async function main(): Promise<void> {
  let s: MainSettings;
  try {
    s = settingsFromEnv(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`gateway: ${err.message}`);
    process.exit(1);
  }
  const logger = pino({ name: 'gateway', level: s.logLevel });
  const model = openModelFolder(s.modelDir);
  const nc = await connect({ servers: s.cluster.natsUrl, name: 'latentwire-gateway' });
  void (async () => {
    // nats.js reconnects by itself (subscriptions survive); say so when it happens.
    for await (const st of nc.status()) {
      if (st.type === 'disconnect' || st.type === 'reconnect' || st.type === 'error') logger.warn({ nats: st }, `NATS ${st.type}`);
    }
  })();
  const metricsRegistry = new Registry();
  collectDefaultMetrics({ register: metricsRegistry });
  const cluster = await startClusterBackend({ nc, settings: s.cluster, model, logger, metricsRegistry });
  const gw = await startGateway({
    model, servedModelName: s.http.servedModelName, host: s.http.host, port: s.http.port,
    backend: cluster.backend, logger, extraRoutes: metricsRoute(metricsRegistry), defaultMaxTokens: s.http.defaultMaxTokens,
  });
  logger.info({ url: gw.url, modelDir: model.dir, fingerprint: model.fingerprint, nats: s.cluster.natsUrl, subjectPrefix: s.cluster.subjectPrefix }, 'gateway listening');

  let stopping = false;
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const clusterClosed = cluster.close(); // first, so the requests gw.close() cuts off are cancelled as 'shutdown'
    await gw.close();
    await clusterClosed;
    await nc.drain();
    logger.info('stopped');
    // Normally nothing is left and the process ends by itself; a stuck client (Redis down) must not keep it up.
    setTimeout(() => process.exit(0), 1000).unref();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      stop(signal).catch((err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      });
    });
  }
}

main().catch((err: unknown) => {
  console.error('gateway: failed to start:', err);
  process.exit(1);
});
