// GET /v1/cluster: the ClusterSource's snapshot as JSON. `?window=<seconds>` narrows the span of rates and
// percentiles (default and most: the source's own window).
import type { RequestHandler } from 'express';
import { ApiError } from './api-error.js';
import type { ClusterSource } from './cluster-source.js';

export function clusterRoute(source: ClusterSource): RequestHandler {
  const maxSeconds = Math.floor(source.windowMs / 1000);
  return async (req, res) => {
    const unknown = Object.keys(req.query).filter((k) => k !== 'window');
    if (unknown.length > 0) throw new ApiError(400, `Unknown query parameter ${unknown.map((k) => `'${k}'`).join(', ')} (only 'window' is understood)`, 'window');
    let windowMs = source.windowMs;
    const w = req.query['window'];
    if (w !== undefined) {
      if (typeof w !== 'string' || !/^\d{1,9}$/.test(w) || Number(w) < 1 || Number(w) > maxSeconds) {
        throw new ApiError(400, `'window' must be a whole number of seconds from 1 to ${maxSeconds}`, 'window');
      }
      windowMs = Number(w) * 1000;
    }
    res.set('Cache-Control', 'no-store');
    res.json(await source.snapshot(windowMs));
  };
}
