// GET /v1/models, GET /v1/models/:id, GET /health and GET /ready.
import { Router, type RequestHandler } from 'express';
import { modelNotFound } from './api-error.js';
import type { RouteContext } from './serve-completion.js';

export function modelsRouter(ctx: RouteContext): Router {
  const { served } = ctx;
  // max_model_len as vLLM reports it: the model's context in tokens (what the serving nodes hold at the
  // moment, which may be less, is /health's max_request_tokens).
  const card = { id: served.id, object: 'model', created: served.created, owned_by: 'latentwire', max_model_len: served.folder.config.maxPositionEmbeddings } as const;
  const router = Router();
  router.get('/v1/models', (_req, res) => {
    res.json({ object: 'list', data: [card] });
  });
  // A wildcard, so served names with a slash (`deepseek-ai/DeepSeek-V3`) resolve whether or not the client
  // encoded it; Express 5 hands the segments over as an array.
  router.get('/v1/models/*id', (req, res) => {
    const id = (req.params as { id: string[] }).id.join('/');
    if (id !== served.id) throw modelNotFound(id);
    res.json(card);
  });
  return router;
}

/** GET /health: always open (no API key), so load balancers and probes need no secret. */
export function healthRoute(ctx: RouteContext): RequestHandler {
  return (_req, res) => {
    res.json({
      status: 'ok', model: ctx.served.id, max_request_tokens: ctx.backend.maxRequestTokens() ?? null, max_prompt_tokens: ctx.backend.maxPromptTokens?.() ?? null,
    });
  };
}

/**
 * GET /ready: 200 when a request sent now can be served (a decode node of this model in the pool and a prefill
 * worker on the queue), else 503 with what is missing. Open like /health, for load balancers and `npm start`.
 */
export function readyRoute(ctx: RouteContext): RequestHandler {
  return (_req, res, next) => {
    ctx.backend.readiness().then((r) => res.status(r.ready ? 200 : 503).json({ ...r, model: ctx.served.id }), next);
  };
}
