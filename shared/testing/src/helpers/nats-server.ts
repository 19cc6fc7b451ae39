// Starts a real nats-server for an integration test, on a free port with its own config (max_payload,
// optional JetStream in a temp dir, optional extra text such as users and permissions); `stop()` ends it and
// removes the temp dir. Use from t.teardown or test.after.always. The binary is `nats-server` on PATH (infra/setup.sh installs it) or NATS_SERVER_BIN.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import getPort from 'get-port';

export interface NatsServerOptions {
  /** Bytes; the server's default is 1 MiB. */
  readonly maxPayload?: number;
  readonly jetstream?: boolean;
  /** How long to wait for the server to accept connections (ms). */
  readonly startTimeoutMs?: number;
  /** A fixed port (to restart a server where its clients reconnect); default a free one. */
  readonly port?: number;
  /** More configuration text after the generated lines (e.g. an authorization block, such as infra/nats-server.conf's). */
  readonly config?: string;
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const dir = await mkdtemp(join(tmpdir(), 'latentwire-nats-'));
  try {
    // get-port can race with another process taking the port before the server binds it: retry then.
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await getPort({ host: HOST }));
      const config = join(dir, 'nats.conf');
      await writeFile(config, configText(port, dir, options));
      const child = spawn(process.env['NATS_SERVER_BIN'] ?? 'nats-server', ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      child.stderr!.on('data', (d: Buffer) => void (log = (log + d.toString()).slice(-4000)));
      const ready = await waitUntilListening(child, port, options.startTimeoutMs ?? 10_000);
      if (ready === 'listening') {
        return { url: `nats://${HOST}:${port}`, port, stop: () => stop(child, dir) };
      }
      await stop(child, undefined);
      if (ready === 'exited' && attempt < 3 && options.port === undefined && /address already in use/i.test(log)) continue;
      throw new Error(`nats-server (${config}) ${ready === 'exited' ? `exited with ${child.exitCode ?? child.signalCode}` : 'did not accept connections in time'}:\n${log}`);
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function configText(port: number, dir: string, o: NatsServerOptions): string {
  const lines = [`listen: "${HOST}:${port}"`];
  if (o.maxPayload !== undefined) lines.push(`max_payload: ${o.maxPayload}`);
  if (o.jetstream) lines.push(`jetstream { store_dir: ${JSON.stringify(join(dir, 'jetstream'))} }`);
  if (o.config !== undefined) lines.push(o.config);
  return `${lines.join('\n')}\n`;
}

async function waitUntilListening(child: ChildProcess, port: number, timeoutMs: number): Promise<'listening' | 'exited' | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return 'exited';
    if (await accepts(port)) return child.exitCode === null ? 'listening' : 'exited';
    await sleep(25);
  }
  return 'timeout';
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: HOST, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function stop(child: ChildProcess, dir: string | undefined): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  if (dir) await rm(dir, { recursive: true, force: true });
}
