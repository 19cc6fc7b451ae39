// Starts a real redis-server for an integration test (BullMQ queues), on a free port, with no persistence
// (no RDB snapshots, no AOF: nothing is written to disk); `stop()` ends it. Use from t.teardown or
// test.after.always. The binary is `redis-server` on PATH (infra/setup.sh installs it) or REDIS_SERVER_BIN.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect as tcpConnect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import getPort from 'get-port';

export interface RedisServerOptions {
  /** How long to wait for the server to answer PING (ms). */
  readonly startTimeoutMs?: number;
  /** requirepass: clients must authenticate (the url then carries it, redis://:<password>@host:port). */
  readonly password?: string;
  /** A fixed port (to restart a server where its clients reconnect); default a free one. */
  readonly port?: number;
}

export interface RedisServer {
  /** redis://127.0.0.1:<port> (redis://:<password>@127.0.0.1:<port> with a password) */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  // get-port can race with another process taking the port before the server binds it: retry then.
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await getPort({ host: HOST }));
    const args = ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no'];
    if (options.password !== undefined) args.push('--requirepass', options.password);
    const child = spawn(process.env['REDIS_SERVER_BIN'] ?? 'redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const keep = (d: Buffer) => void (log = (log + d.toString()).slice(-4000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    let spawnError: Error | undefined; // e.g. ENOENT: no redis-server on PATH
    child.once('error', (err) => void (spawnError = err));
    const ready = await waitUntilPong(child, port, options.startTimeoutMs ?? 10_000, () => spawnError);
    const auth = options.password !== undefined ? `:${encodeURIComponent(options.password)}@` : '';
    if (ready === 'ready') return { url: `redis://${auth}${HOST}:${port}`, port, stop: () => stop(child) };
    await stop(child);
    if (spawnError) throw new Error(`redis-server could not be started: ${spawnError.message}`, { cause: spawnError });
    if (ready === 'exited' && attempt < 3 && /address already in use/i.test(log)) continue;
    throw new Error(`redis-server --port ${port} ${ready === 'exited' ? `exited with ${child.exitCode ?? child.signalCode}` : 'did not answer PING in time'}:\n${log}`);
  }
}

async function waitUntilPong(child: ChildProcess, port: number, timeoutMs: number, failed: () => Error | undefined): Promise<'ready' | 'exited' | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (failed() || child.exitCode !== null || child.signalCode !== null) return 'exited';
    if (await pong(port)) return child.exitCode === null ? 'ready' : 'exited';
    await sleep(25);
  }
  return 'timeout';
}

/** Sends an inline PING; true when the answer is +PONG (a server still loading answers -LOADING). */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: HOST, port });
    let reply = '';
    const done = (ok: boolean) => { s.destroy(); resolve(ok); };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.on('data', (d: Buffer) => {
      reply += d.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH')); // up, asking for the password
    });
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
