// The gateway's OpenAI-compatible HTTP app. It knows nothing of how tokens are produced: everything past
// prompt ids goes through the GenerationBackend it is given.
import { openModelFolder } from '@latentwire/model';
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { accessLog } from './access-log.js';
import { maxTokenBytes, type PromptPool } from '../prompt/index.js';
import { ApiError, toApiError } from './api-error.js';
import { requireKey, type Access } from './api-keys.js';
import type { GenerationBackend } from './backend.js';
import { chatCompletionsHandler } from './chat-completions.js';
import { clusterRoute } from './cluster-route.js';
import type { ClusterSource } from './cluster-source.js';
import { completionsHandler } from './completions.js';
import { bodyLimits } from './limits.js';
import { LOG_REDACT } from './log-redact.js';
import { healthRoute, modelsRouter, readyRoute } from './models.js';
import { readJsonBody } from './read-json-body.js';
import type { RouteContext } from './serve-completion.js';
import { servedModel, type GatewayModel } from './served-model.js';
import { ServingMetrics } from './serving-metrics.js';
import { detokenizeHandler, tokenizeHandler } from './tokenize.js';
import { webPages } from './web-pages.js';

export type GatewayAppOptions = ({ readonly model: GatewayModel } | { readonly modelDir: string }) & {
  /** The id clients use in `model`; defaults to the model folder's name. */
  readonly servedModelName?: string;
  readonly backend: GenerationBackend;
  readonly logger?: Logger;
  /** Largest request body in bytes, compressed or inflated (MAX_BODY_BYTES); default: derived from the context. */
  readonly maxBodyBytes?: number | undefined;
  /** JSON bytes per token of context for the derived body limit (BODY_BYTES_PER_TOKEN; default 16). */
  readonly bodyBytesPerToken?: number;
  /** Largest inflated / compressed ratio of a gzip, deflate or br body (MAX_INFLATION_RATIO; default 100). */
  readonly maxInflationRatio?: number;
  /** Who may call /v1/* (API_KEYS); default open. /health is always open. */
  readonly apiAccess?: Access;
  /** Who may call the extra (operator) routes such as GET /metrics; default: as apiAccess. */
  readonly opsAccess?: Access;
  /** max_tokens of a chat request that gives none (DEFAULT_MAX_TOKENS; default 1024). */
  readonly defaultMaxTokens?: number;
  /** Most choices (n, best_of) per request (MAX_N; default 16). */
  readonly maxChoices?: number;
  /** Mounts operator routes beside the API (e.g. GET /metrics), behind opsAccess, before the 404 handler. */
  readonly extraRoutes?: (app: Express) => void;
  /** Where the serving metrics (TTFT, latencies, tokens, requests) go; default: a registry of the app's own. */
  readonly metricsRegistry?: Registry;
  /** Serves GET /v1/cluster (behind opsAccess) and hears each request's token timings per decode node. */
  readonly cluster?: ClusterSource | undefined;
};

/** The opened model folder of these options (opened here when only its path is given). */
export function gatewayModel(opts: GatewayAppOptions): GatewayModel {
  return 'model' in opts ? opts.model : openModelFolder(opts.modelDir);
}

/**
 * The app, for a model opened by gatewayModel(opts) and a PromptPool over the same folder; the caller owns
 * the pool (startGateway closes it with the server).
 */
export function createGatewayApp(opts: GatewayAppOptions, folder: GatewayModel, prompts: PromptPool): Express {
  const ctx: RouteContext = {
    served: servedModel(folder, opts.servedModelName),
    backend: opts.backend,
    logger: opts.logger ?? pino({ name: 'gateway', redact: LOG_REDACT }),
    defaultMaxTokens: opts.defaultMaxTokens,
    maxChoices: opts.maxChoices,
    prompts,
    maxTokenBytes: maxTokenBytes(folder.tokenizer, folder.config.vocabSize),
  };
  const limits = bodyLimits(folder.config.maxPositionEmbeddings, {
    maxBytes: opts.maxBodyBytes,
    bytesPerToken: opts.bodyBytesPerToken,
    maxInflationRatio: opts.maxInflationRatio,
  });
  const apiAccess = opts.apiAccess ?? { open: true };
  const app = express();
  app.disable('x-powered-by');
  app.use(accessLog(ctx.logger, new ServingMetrics(opts.metricsRegistry ?? new Registry()), opts.cluster));
  app.get('/health', healthRoute(ctx));
  app.get('/ready', readyRoute(ctx));
  app.use(webPages()); // the chat page at /, the cluster page at /cluster
  // An operator route under /v1, keyed as /metrics is (METRICS_PUBLIC opens both), not as the API.
  if (opts.cluster) app.get('/v1/cluster', requireKey(opts.opsAccess ?? apiAccess), clusterRoute(opts.cluster));
  // The key is checked before a byte of the body is read: an unknown client cannot make us inflate anything.
  app.use('/v1', requireKey(apiAccess), readJsonBody(limits));
  app.use(modelsRouter(ctx));
  app.post('/v1/chat/completions', chatCompletionsHandler(ctx));
  app.post('/v1/completions', completionsHandler(ctx));
  // vLLM's paths, outside /v1; keyed and bounded as /v1 is.
  app.use(['/tokenize', '/detokenize'], requireKey(apiAccess), readJsonBody(limits));
  app.post('/tokenize', tokenizeHandler(ctx));
  app.post('/detokenize', detokenizeHandler(ctx));
  if (opts.extraRoutes) {
    app.use(requireKey(opts.opsAccess ?? apiAccess));
    opts.extraRoutes(app);
  }
  app.use(notFound);
  app.use(errorHandler(ctx.logger));
  return app;
}

/** OpenAI's answer to an unknown path or method. */
const notFound: RequestHandler = (req) => {
  throw new ApiError(404, `Invalid URL (${req.method} ${req.path})`);
};

function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const requestId = res.locals['requestId'] as string;
    const apiError = toApiError(err, requestId);
    if (apiError.status >= 500) logger.error({ err, requestId, path: req.path }, 'request failed');
    else logger.info({ requestId, path: req.path, status: apiError.status, message: apiError.message }, 'request refused');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (apiError.retryAfterSeconds !== undefined) res.set('Retry-After', String(apiError.retryAfterSeconds));
    res.status(apiError.status).json(apiError.body());
  };
}
