// API keys: `Authorization: Bearer <key>` checked against a set of keys, OpenAI's 401 bodies otherwise.
// Only sha256 digests are kept, compared with timingSafeEqual against every key (no early exit), so
// neither the comparison nor the number of keys tried leaks through timing; the keys themselves are never
// logged (toJSON prints a count).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { ApiError } from './api-error.js';

const digest = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();

export class ApiKeySet {
  private constructor(private readonly digests: readonly Buffer[]) {}

  static of(keys: Iterable<string>): ApiKeySet {
    return new ApiKeySet([...new Set([...keys].map((k) => k.trim()).filter(Boolean))].map(digest));
  }

  static readonly none = ApiKeySet.of([]);

  get size(): number {
    return this.digests.length;
  }

  accepts(presented: string): boolean {
    const d = digest(presented);
    let ok = false;
    for (const k of this.digests) ok = timingSafeEqual(k, d) || ok;
    return ok;
  }

  toJSON(): string {
    return `[${this.digests.length} API keys]`;
  }
}

/** Who may call a group of routes: `open`, or anyone presenting one of `keys`. */
export type Access = { readonly open: true } | { readonly open: false; readonly keys: ApiKeySet };

export const accessFor = (keys: ApiKeySet): Access => (keys.size === 0 ? { open: true } : { open: false, keys });

export function requireKey(access: Access): RequestHandler {
  return (req, res, next) => {
    if (access.open) return next();
    const header = req.headers.authorization;
    const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    res.set('WWW-Authenticate', 'Bearer');
    if (!m) {
      throw new ApiError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      );
    }
    // OpenAI echoes a masked key; echoing none at all keeps secrets out of any proxy's logs.
    if (!access.keys.accepts(m[1]!)) throw new ApiError(401, 'Incorrect API key provided.', null, 'invalid_api_key');
    res.removeHeader('WWW-Authenticate');
    next();
  };
}
