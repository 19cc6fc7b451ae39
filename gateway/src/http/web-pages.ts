// The operators' and users' pages: plain HTML and JavaScript modules in gateway/web, served as they are (no
// build step). They hold no data: what they show comes from the API (/v1/chat/completions, /v1/cluster)
// with the key the user types in, so they are served without one.
import { fileURLToPath } from 'node:url';
import express, { type RequestHandler, type Router } from 'express';
import { ApiError } from './api-error.js';

/** gateway/web, seen from this module's built place (dist/src/http). */
export const WEB_DIR = fileURLToPath(new URL('../../../web/', import.meta.url));

/** Only our own scripts, styles and API: the chat page renders model output, which must never run. */
const securityHeaders: RequestHandler = (_req, res, next) => {
  res.set({
    'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-cache',
  });
  next();
};

export function webPages(): Router {
  const router = express.Router();
  const page = (file: string): RequestHandler => (_req, res, next) => res.sendFile(file, { root: WEB_DIR }, (err) => err && next(err));
  router.get('/', securityHeaders, page('chat.html'));
  router.get('/cluster', securityHeaders, page('cluster.html'));
  router.use('/web', securityHeaders, express.static(WEB_DIR, { index: false, redirect: false, dotfiles: 'ignore', etag: true }), (req) => {
    // a missing asset is a 404 here, not the key check that guards the unknown paths below
    throw new ApiError(404, `No such page asset (${req.method} /web${req.path})`);
  });
  return router;
}
