// The gateway service: OpenAI HTTP API in front of the NATS/BullMQ cluster.
//   1. parse the environment (GATEWAY_ENV, env.ts; a bad variable exits 2 with an error naming it);
//   2. open the model folder (tokenizer, chat template, fingerprint; no GPU);
//   3. connect NATS, start the heartbeat registry and the prefill queue, the cluster view over both, listen for
//      HTTP (GET /metrics, GET /v1/cluster and the web pages too);
//   4. on SIGINT/SIGTERM: stop taking connections and answer new requests 503, let running streams finish
//      within SHUTDOWN_TIMEOUT_MS, then cut off and cancel (acknowledged) what is left, close the queue, drain NATS.
import { failStart, natsConnectOptions, redactUrl } from '@latentwire/protocol';
import { openModelFolder } from '@latentwire/model';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { startClusterBackend } from './cluster/index.js';
import { gatewaySettingsFromEnv } from './env.js';
import { LOG_REDACT, startGateway } from './http/index.js';
import { metricsRoute } from './metrics-route.js';
import { ClusterView } from './ops/cluster-view.js';
import { servedModel } from './http/served-model.js';

async function main(): Promise<void> {
  const s = gatewaySettingsFromEnv(process.env);
  const logger = pino({ name: 'gateway', level: s.logLevel, redact: LOG_REDACT });
  const model = openModelFolder(s.modelDir);
  const nc = await connect({ servers: [...s.cluster.natsServers], name: 'latentwire-gateway', ...natsConnectOptions(s.cluster.natsAuth) });
  void (async () => {
    // nats.js reconnects by itself (subscriptions survive); say so when it happens.
    for await (const st of nc.status()) {
      if (st.type === 'disconnect' || st.type === 'reconnect' || st.type === 'error') logger.warn({ nats: st }, `NATS ${st.type}`);
    }
  })();
  const metricsRegistry = new Registry();
  collectDefaultMetrics({ register: metricsRegistry });
  const cluster = await startClusterBackend({ nc, settings: s.cluster, model, logger, metricsRegistry });
  const clusterView = new ClusterView({
    registry: cluster.registry, queue: cluster.queue, model: { id: servedModel(model, s.http.servedModelName).id, fingerprint: model.fingerprint },
  });
  const gw = await startGateway({
    model, servedModelName: s.http.servedModelName, host: s.http.host, port: s.http.port,
    backend: cluster.backend, logger, extraRoutes: metricsRoute(metricsRegistry), defaultMaxTokens: s.http.defaultMaxTokens, maxChoices: s.http.maxChoices,
    maxBodyBytes: s.http.maxBodyBytes, bodyBytesPerToken: s.http.bodyBytesPerToken, maxInflationRatio: s.http.maxInflationRatio,
    tokenizerThreads: s.http.tokenizerThreads, requestTimeoutMs: s.http.requestTimeoutMs, headersTimeoutMs: s.http.headersTimeoutMs,
    apiAccess: s.http.apiAccess, opsAccess: s.http.opsAccess, metricsRegistry, cluster: clusterView,
  });
  logger.info({ url: gw.url, modelDir: model.dir, fingerprint: model.fingerprint, nats: s.cluster.natsServers.map(redactUrl), subjectPrefix: s.cluster.subjectPrefix }, 'gateway listening');

  let stopping = false;
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, running: cluster.backend.activeRequests, timeoutMs: s.http.shutdownTimeoutMs }, 'shutting down');
    clusterView.close();
    // new requests get 503 (and /ready says not ready, so a load balancer stops sending); streams go on
    cluster.backend.stopAccepting();
    const t0 = performance.now();
    while (cluster.backend.activeRequests > 0 && performance.now() - t0 < s.http.shutdownTimeoutMs) await new Promise((r) => setTimeout(r, 20));
    if (cluster.backend.activeRequests > 0) logger.warn({ cutOff: cluster.backend.activeRequests }, 'shutdown timeout: cutting off the requests left');
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

main().catch((err: unknown) => failStart('gateway', err));
