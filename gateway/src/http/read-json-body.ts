// The request body, bounded by bytes before anything parses it (a replacement for express.json, which
// inflated a 25 KB gzip body to 10 MB and answered a corrupt gzip body with a 500):
//   1. a declared Content-Length over the limit is refused before a byte is read;
//   2. gzip / deflate / br bodies are inflated by a stream that is stopped as soon as the inflated size
//      passes the limit or the inflation ratio passes `maxInflationRatio` (past the first 64 KiB);
//   3. a body that does not inflate (not really gzip) is a 400, an unknown encoding a 415;
//   4. only then is it parsed as JSON (an empty body is {}).
// A refused body is read off to its end (discarded, no buffering) before the answer is sent, so the client
// sees the status rather than a reset while it is still sending; the server's requestTimeout bounds that.
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Transform } from 'node:stream';
import type { Request, RequestHandler } from 'express';
import { ApiError } from './api-error.js';

export interface BodyLimits {
  /** Largest body in bytes, compressed and inflated alike. */
  readonly maxBytes: number;
  /** Largest inflated / compressed size ratio of an encoded body. */
  readonly maxInflationRatio: number;
}

/** Inflated bytes below which the ratio is not checked: small bodies of repeated text compress very well. */
const RATIO_FREE_BYTES = 64 * 1024;

const decoders: Readonly<Record<string, () => Transform>> = { gzip: createGunzip, 'x-gzip': createGunzip, deflate: createInflate, br: createBrotliDecompress };

export function readJsonBody(limits: BodyLimits): RequestHandler {
  return async (req, _res, next) => {
    // As express.json: only JSON bodies are read; anything else leaves req.body undefined (a 400 later).
    if (req.method === 'GET' || req.method === 'HEAD' || !req.is('application/json')) return next();
    const charset = /;\s*charset=([^;\s]+)/i.exec(req.headers['content-type'] ?? '')?.[1]?.replace(/"/g, '').toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      return refuse(req, next, new ApiError(415, `Unsupported charset "${charset}": send the JSON body as UTF-8.`));
    }
    let raw: Buffer;
    try {
      raw = await readBounded(req, limits);
    } catch (err) {
      return refuse(req, next, err);
    }
    if (raw.length === 0) req.body = {};
    else {
      try {
        req.body = JSON.parse(raw.toString('utf8'));
      } catch (err) {
        return next(new ApiError(400, `We could not parse the JSON body of your request (${(err as Error).message}). The API expects a JSON object.`, null, null, undefined, { cause: err }));
      }
    }
    next();
  };
}

/** Discards the rest of the body, then passes the error on. */
function refuse(req: Request, next: (err: unknown) => void, err: unknown): void {
  if (req.complete || req.destroyed) return next(err);
  req.on('data', () => undefined);
  req.once('end', () => next(err));
  req.once('error', () => next(err));
  req.resume();
}

function readBounded(req: Request, { maxBytes, maxInflationRatio }: BodyLimits): Promise<Buffer> {
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  const makeDecoder = encoding === 'identity' ? undefined : decoders[encoding];
  if (encoding !== 'identity' && !makeDecoder) return Promise.reject(new ApiError(415, `Unsupported Content-Encoding "${encoding}": send gzip, deflate, br or none.`));
  const declared = Number(req.headers['content-length']);
  if (declared > maxBytes) return Promise.reject(tooLarge(maxBytes, `Content-Length is ${declared}`));

  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0; // bytes on the wire
    let inflated = 0; // bytes after decoding
    let done = false;
    const decoder = makeDecoder?.();
    const fail = (err: unknown): void => {
      if (done) return;
      done = true;
      req.off('data', onWire);
      decoder?.destroy();
      reject(err);
    };
    const onBody = (chunk: Buffer): void => {
      if (done) return;
      inflated += chunk.length;
      if (inflated > maxBytes) return fail(tooLarge(maxBytes, decoder ? `more than ${maxBytes} bytes once inflated, from ${received} compressed` : `more than ${maxBytes} bytes`));
      if (decoder && inflated > RATIO_FREE_BYTES && inflated > maxInflationRatio * received) {
        return fail(new ApiError(413, `The request body inflates more than ${maxInflationRatio} times its compressed size (${inflated} bytes from ${received} so far).`, null, 'request_too_large'));
      }
      chunks.push(chunk);
    };
    const onWire = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > maxBytes) return fail(tooLarge(maxBytes, `more than ${maxBytes} bytes`));
      if (decoder) decoder.write(chunk);
      else onBody(chunk);
    };
    const finish = (): void => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    };
    if (decoder) {
      decoder.on('data', onBody);
      decoder.on('end', finish);
      decoder.on('error', (err) => fail(new ApiError(400, `The request body is not valid ${encoding} data (${err.message}), as its Content-Encoding says it is.`, null, null, undefined, { cause: err })));
    }
    req.on('data', onWire);
    req.once('end', () => {
      if (done) return;
      if (decoder) decoder.end();
      else finish();
    });
    req.once('error', fail);
  });
}

function tooLarge(maxBytes: number, what: string): ApiError {
  return new ApiError(413, `The request body is too large (${what}); this server accepts at most ${maxBytes} bytes, more than the model's context can hold.`, null, 'request_too_large');
}
