// Listening helper for the gateway app (the service's main and tests).
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGatewayApp, type GatewayAppOptions } from './app.js';

export type StartGatewayOptions = GatewayAppOptions & {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0: any free port (read it back from `url`). */
  readonly port?: number;
};

export interface RunningGateway {
  /** e.g. http://127.0.0.1:8000 (no trailing slash; OpenAI clients take `${url}/v1` as baseURL). */
  readonly url: string;
  readonly server: Server;
  /** Stops listening and drops open connections, which cancels their in-flight generations. */
  close(): Promise<void>;
}

export async function startGateway(opts: StartGatewayOptions): Promise<RunningGateway> {
  const app = createGatewayApp(opts);
  const server = app.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
