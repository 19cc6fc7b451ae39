// Listening helper for the gateway app (the service's main and tests): the HTTP server with its slow-client
// timeouts, and the PromptPool whose threads live as long as it.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { PromptPool } from '../prompt/index.js';
import { createGatewayApp, gatewayModel, type GatewayAppOptions } from './app.js';
import { DEFAULT_LIMITS } from './limits.js';
import { LOG_REDACT } from './log-redact.js';

export type StartGatewayOptions = GatewayAppOptions & {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0: any free port (read it back from `url`). */
  readonly port?: number;
  /** Worker threads for chat templating and tokenization (TOKENIZER_THREADS; default 2). */
  readonly tokenizerThreads?: number;
  /** Each prompt worker's V8 stack in MB (node's default when omitted; tests shrink it). */
  readonly tokenizerStackSizeMb?: number;
  /** The whole request (headers and body) must arrive within this (REQUEST_TIMEOUT_MS; default 30 s): 408. */
  readonly requestTimeoutMs?: number;
  /** The headers must arrive within this (HEADERS_TIMEOUT_MS; default 10 s, at most requestTimeoutMs). */
  readonly headersTimeoutMs?: number;
};

export interface RunningGateway {
  /** e.g. http://127.0.0.1:8000 (no trailing slash; OpenAI clients take `${url}/v1` as baseURL). */
  readonly url: string;
  readonly server: Server;
  /** Stops listening and drops open connections (which cancels their in-flight generations), then the prompt workers. */
  close(): Promise<void>;
}

export async function startGateway(opts: StartGatewayOptions): Promise<RunningGateway> {
  const logger = opts.logger ?? pino({ name: 'gateway', redact: LOG_REDACT });
  const folder = gatewayModel(opts);
  const prompts = new PromptPool({
    modelDir: folder.dir,
    threads: opts.tokenizerThreads ?? DEFAULT_LIMITS.tokenizerThreads,
    ...(opts.tokenizerStackSizeMb === undefined ? {} : { stackSizeMb: opts.tokenizerStackSizeMb }),
    onWorkerError: (err) => logger.error({ err }, 'a prompt worker failed outside a task (replaced)'),
  });
  try {
    await prompts.warm();
  } catch (err) {
    await prompts.close().catch(() => undefined);
    throw err;
  }
  const app = createGatewayApp({ ...opts, logger }, folder, prompts);
  const requestTimeout = opts.requestTimeoutMs ?? DEFAULT_LIMITS.requestTimeoutMs;
  const server = createServer(
    {
      requestTimeout,
      headersTimeout: Math.min(opts.headersTimeoutMs ?? DEFAULT_LIMITS.headersTimeoutMs, requestTimeout),
      // Node checks both timeouts on this period (30 s by default), so a 1 s limit would really be up to 31 s.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(requestTimeout / 4))),
    },
    app,
  );
  server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  const api = opts.apiAccess ?? { open: true };
  if (api.open) logger.warn('no API keys configured (API_KEYS, API_KEYS_FILE): /v1/* is open to anyone who can reach this port');
  else logger.info({ apiKeys: api.keys.size }, 'API keys required on /v1/*');
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}`,
    server,
    close: async () => {
      await new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
      await prompts.close();
    },
  };
}
