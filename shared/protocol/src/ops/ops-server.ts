// The operations endpoint every node serves on its own port: GET /health (the process is alive: always 200
// once listening), GET /ready (200 when the node can take work now, else 503 with what it waits for) and
// GET /metrics (Prometheus text). A node starts it before loading its model, so an orchestrator sees it come
// up and can tell "loading" from "dead".
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface Readiness {
  readonly ready: boolean;
  /** What the node is doing or waiting for, as JSON-safe facts (stage, connected, shaders compiled…). */
  readonly [fact: string]: unknown;
}

export interface OpsServerOptions {
  /** 0 picks a free port (tests); the bound port is the server's address. */
  readonly port: number;
  readonly host?: string;
  readonly registry: Registry;
  readonly readiness: () => Readiness;
}

export function serveOps(o: OpsServerOptions): Promise<Server> {
  const json = (res: import('node:http').ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const server = createServer((req, res) => {
    const path = req.url?.split('?')[0];
    if (req.method !== 'GET') return void res.writeHead(405, { allow: 'GET' }).end();
    switch (path) {
      case '/health':
        return json(res, 200, { status: 'ok' });
      case '/ready': {
        const r = o.readiness();
        return json(res, r.ready ? 200 : 503, r);
      }
      case '/metrics':
        o.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': o.registry.contentType }).end(text),
          (err: unknown) => res.writeHead(500).end(String(err)),
        );
        return;
      default:
        res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve(server));
  });
}

/** A NATS connection's link state for readiness: up from now on, down from a disconnect until the reconnect. */
export function natsLink(nc: { status(): AsyncIterable<{ readonly type: string }> }): { readonly up: boolean } {
  const link = { up: true };
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') link.up = false;
      else if (s.type === 'reconnect') link.up = true;
    }
    link.up = false; // the iterator ends when the connection closes
  })();
  return link;
}
