// The gateway's OpenAI-compatible HTTP app. It knows nothing of how tokens are produced: everything past
// prompt ids goes through the GenerationBackend it is given.
import { randomUUID } from 'node:crypto';
import { openModelFolder } from '@latentwire/model';
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import { pino, type Logger } from 'pino';
import { ApiError, toApiError } from './api-error.js';
import type { GenerationBackend } from './backend.js';
import { chatCompletionsHandler } from './chat-completions.js';
import { completionsHandler } from './completions.js';
import { modelsRouter } from './models.js';
import type { RouteContext } from './serve-completion.js';
import { servedModel, type GatewayModel } from './served-model.js';

export type GatewayAppOptions = ({ readonly model: GatewayModel } | { readonly modelDir: string }) & {
  /** The id clients use in `model`; defaults to the model folder's name. */
  readonly servedModelName?: string;
  readonly backend: GenerationBackend;
  readonly logger?: Logger;
  /** Largest accepted request body (body-parser syntax); long prompts are large. Default '32mb'. */
  readonly bodyLimit?: string;
  /** max_tokens of a chat request that gives none (DEFAULT_MAX_TOKENS; default 1024). */
  readonly defaultMaxTokens?: number;
  /** Mounts routes beside the API (e.g. GET /metrics), before the 404 handler. */
  readonly extraRoutes?: (app: Express) => void;
};

export function createGatewayApp(opts: GatewayAppOptions): Express {
  const folder = 'model' in opts ? opts.model : openModelFolder(opts.modelDir);
  const ctx: RouteContext = {
    served: servedModel(folder, opts.servedModelName),
    backend: opts.backend,
    logger: opts.logger ?? pino({ name: 'gateway' }),
    defaultMaxTokens: opts.defaultMaxTokens,
  };
  const app = express();
  app.disable('x-powered-by');
  app.use(assignRequestId);
  app.use(express.json({ limit: opts.bodyLimit ?? '32mb' }));
  app.use(modelsRouter(ctx));
  app.post('/v1/chat/completions', chatCompletionsHandler(ctx));
  app.post('/v1/completions', completionsHandler(ctx));
  opts.extraRoutes?.(app);
  app.use(notFound);
  app.use(errorHandler(ctx.logger));
  return app;
}

/** Every response carries x-request-id (as OpenAI's do); generation requests reuse it as their id. */
const assignRequestId: RequestHandler = (_req, res, next) => {
  const id = randomUUID();
  res.locals['requestId'] = id;
  res.set('x-request-id', id);
  next();
};

/** OpenAI's answer to an unknown path or method. */
const notFound: RequestHandler = (req) => {
  throw new ApiError(404, `Invalid URL (${req.method} ${req.path})`);
};

function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const requestId = res.locals['requestId'] as string;
    const apiError = bodyParserError(err) ?? toApiError(err, requestId);
    if (apiError.status >= 500) logger.error({ err, requestId, path: req.path }, 'request failed');
    else logger.debug({ requestId, path: req.path, status: apiError.status, message: apiError.message }, 'request refused');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (apiError.retryAfterSeconds !== undefined) res.set('Retry-After', String(apiError.retryAfterSeconds));
    res.status(apiError.status).json(apiError.body());
  };
}

/** body-parser's errors carry `type` and a 4xx `status`: bad JSON, too large, unsupported charset. */
function bodyParserError(err: unknown): ApiError | null {
  const e = err as { type?: unknown; status?: unknown; message?: unknown };
  if (typeof e?.type !== 'string' || typeof e.status !== 'number' || e.status < 400 || e.status >= 500) return null;
  if (e.type === 'entity.parse.failed') {
    return new ApiError(400, `We could not parse the JSON body of your request (${String(e.message)}). The API expects a JSON object.`, null, null, undefined, {
      cause: err,
    });
  }
  return new ApiError(e.status, String(e.message), null, null, undefined, { cause: err });
}
