// One record per HTTP request, from arrival to the response's end: its id (and the client's X-Request-Id),
// what it generated and when. The generation handlers fill it in (res.locals.access); when the response
// ends it becomes one access line at info and the ServingMetrics' counts.
//   1. arrival: a fresh request id (unique: it names NATS subjects and the prefill job); a client's
//      X-Request-Id is kept beside it and echoed back, else the response's X-Request-Id is the request id;
//   2. generation: the prompt's tokens, then each delta's tokens (TTFT, inter-token gaps), the decode node
//      (the backend sets trace.nodeId), the finish;
//   3. the response ends ('close'): status (499 when the client left before it was sent), the line, the counts.
import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { GenerationTrace } from './backend.js';
import type { NodeTimings } from './cluster-source.js';
import type { RequestFinish, ServingMetrics } from './serving-metrics.js';

/** A client's X-Request-Id is kept when it is printable ASCII without spaces, at most this long. */
const CLIENT_ID = /^[\x21-\x7e]{1,200}$/;
/** Probes and scrapes come every few seconds: their lines are at debug. */
const QUIET_PATHS = new Set(['/health', '/ready', '/metrics', '/v1/cluster']);

export class RequestRecord implements GenerationTrace {
  readonly startedAt = performance.now();
  nodeId?: string;
  promptTokens: number | undefined;
  completionTokens = 0;
  ttftMs: number | undefined;
  finishReason: RequestFinish | undefined;
  private lastTokenAt = 0;

  constructor(
    readonly requestId: string,
    readonly clientRequestId: string | undefined,
    private readonly req: Request,
    private readonly metrics: ServingMetrics,
    private readonly timings?: NodeTimings,
  ) {}

  /**
   * The matched route's path, or the app's route of this path when the request ended before reaching it
   * (a 400 from the body reader): a closed set of label values. 'other' for any other path.
   */
  get endpoint(): string {
    const matched = (this.req.route as { path?: unknown } | undefined)?.path;
    if (typeof matched === 'string') return matched;
    return routePaths(this.req.app).has(this.req.path) ? this.req.path : 'other';
  }

  /** The prompt reached the backend. */
  generating(promptTokens: number): void {
    this.promptTokens = promptTokens;
    this.metrics.promptTokens.inc({ endpoint: this.endpoint }, promptTokens);
  }

  /** `total`: completion tokens so far. Tokens that arrive together share the gap since the last ones. */
  tokens(total: number): void {
    const n = total - this.completionTokens;
    if (n <= 0) return;
    const now = performance.now();
    const endpoint = this.endpoint;
    this.completionTokens = total;
    this.metrics.completionTokens.inc({ endpoint }, n);
    let gaps = n;
    if (this.ttftMs === undefined) {
      this.ttftMs = now - this.startedAt;
      this.metrics.ttft.observe({ endpoint }, this.ttftMs / 1000);
      gaps = n - 1;
      for (let i = 0; i < gaps; i++) this.metrics.itl.observe({ endpoint }, 0); // came with the first
      if (this.nodeId !== undefined) this.timings?.firstTokens(this.nodeId, this.ttftMs, n);
    } else {
      const each = (now - this.lastTokenAt) / n / 1000;
      for (let i = 0; i < gaps; i++) this.metrics.itl.observe({ endpoint }, each);
      if (this.nodeId !== undefined) this.timings?.laterTokens(this.nodeId, each * 1000, n);
    }
    this.lastTokenAt = now;
  }

  finish(reason: Exclude<RequestFinish, 'none'>): void {
    this.finishReason ??= reason;
  }

  /** The response ended: count it and write the access line. */
  end(res: Response, logger: Logger): void {
    const sent = res.writableFinished;
    const status = sent ? res.statusCode : 499;
    const generated = this.promptTokens !== undefined;
    const finishReason = this.finishReason ?? (!sent && generated ? 'cancelled' : status >= 400 && generated ? 'error' : 'none');
    const endpoint = this.endpoint;
    const ms = performance.now() - this.startedAt;
    this.metrics.requests.inc({ endpoint, status: String(status), finish_reason: finishReason });
    if (generated) this.metrics.e2e.observe({ endpoint }, ms / 1000);
    const level = QUIET_PATHS.has(this.req.path) && status < 400 ? 'debug' : 'info';
    logger[level]({
      requestId: this.requestId, clientRequestId: this.clientRequestId, method: this.req.method, path: this.req.path, endpoint, status,
      promptTokens: this.promptTokens, completionTokens: generated ? this.completionTokens : undefined, finishReason: generated ? finishReason : undefined,
      ttftMs: this.ttftMs === undefined ? undefined : Math.round(this.ttftMs), ms: Math.round(ms), nodeId: this.nodeId,
    }, 'access');
  }
}

const routePathCache = new WeakMap<object, ReadonlySet<string>>();

/** The string paths of the app's routes (read once, after every route is mounted). */
function routePaths(app: Request['app']): ReadonlySet<string> {
  let paths = routePathCache.get(app);
  if (!paths) {
    const stack = (app as unknown as { router?: { stack?: { route?: { path?: unknown } }[] } }).router?.stack ?? [];
    paths = new Set(stack.flatMap((l) => (typeof l.route?.path === 'string' ? [l.route.path] : [])));
    routePathCache.set(app, paths);
  }
  return paths;
}

/** The first middleware: ids, X-Request-Id, and the access line when the response ends. */
export function accessLog(logger: Logger, metrics: ServingMetrics, timings?: NodeTimings): RequestHandler {
  return (req, res, next) => {
    const id = randomUUID();
    const header = req.get('x-request-id');
    const clientId = header !== undefined && CLIENT_ID.test(header) ? header : undefined;
    const record = new RequestRecord(id, clientId, req, metrics, timings);
    res.locals['requestId'] = id;
    res.locals['access'] = record;
    res.set('x-request-id', clientId ?? id);
    res.once('close', () => record.end(res, logger));
    next();
  };
}

/** The record of a request that went through accessLog (undefined in an app without it). */
export function accessRecord(res: Response): RequestRecord | undefined {
  return res.locals['access'] as RequestRecord | undefined;
}
