#!/usr/bin/env node
// `npm start`: the whole system on one machine — nats-server and redis-server (reused when NATS_URL /
// REDIS_URL point at ones already listening), one gateway, one prefill node and two decode nodes on the
// default tiny model. Prints the URL and a curl example; Ctrl-C (or SIGTERM) stops everything it started.
// Env: NATS_URL, REDIS_URL, GATEWAY_PORT (8000), DECODE_NODES (2), PREFILL_NODES (1), MODEL_DIR, plus every
// service's own variables (README), which pass through.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = { ...process.env };
env.NATS_URL ??= 'nats://127.0.0.1:4222';
env.REDIS_URL ??= 'redis://127.0.0.1:6379';
env.GATEWAY_PORT ??= '8000';
// MODEL_DIR: unset means each service's one default (COMMON_ENV in shared/protocol), not a second computation here
const decodeNodes = Number(env.DECODE_NODES ?? 2);
const prefillNodes = Number(env.PREFILL_NODES ?? 1);
for (const [name, v] of [['DECODE_NODES', decodeNodes], ['PREFILL_NODES', prefillNodes]]) {
  if (!Number.isInteger(v) || v < 1 || v > 16) fail(`${name}=${env[name]}: expected a whole number in 1..16`);
}

const children = [];
let stopping = false;

function fail(message) {
  console.error(`start: ${message}`);
  process.exit(2);
}

function hostPort(url, name, defaultPort) {
  try {
    const u = new URL(url);
    return { host: (u.hostname || '127.0.0.1').replace(/^\[(.*)\]$/, '$1'), port: Number(u.port) || defaultPort };
  } catch {
    return fail(`${name}=${url} is not a URL`);
  }
}

/** True when something accepts TCP connections there. */
function listening({ host, port }) {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
    s.setTimeout(500, () => { s.destroy(); resolve(false); });
  });
}

async function waitListening(hp, what, ms = 15_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await listening(hp)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not start listening on ${hp.host}:${hp.port}`);
}

function start(name, cmd, args, extraEnv = {}) {
  // own process group: a terminal's Ctrl-C reaches only this script, which then stops each child once, in order
  const child = spawn(cmd, args, { cwd: root, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const prefix = (stream, out) => {
    let buf = '';
    stream.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!/^Warning: maxDynamic/.test(line)) out.write(`[${name}] ${line}\n`);
      }
    });
  };
  prefix(child.stdout, process.stdout);
  prefix(child.stderr, process.stderr);
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`start: ${name} exited (${signal ?? code}); stopping everything`);
      void stop(1);
    }
  });
  children.push({ name, child });
  return child;
}

async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  // services first (they drain NATS and release their GPUs), then the servers this script started
  const services = children.filter((c) => !c.server).reverse();
  const servers = children.filter((c) => c.server);
  for (const group of [services, servers]) {
    await Promise.all(group.map(({ child }) => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => { clearTimeout(timer); resolve(); });
      child.kill('SIGTERM');
    })));
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  process.exit(code);
}

let tmp = null;
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

async function main() {
  const nats = hostPort(env.NATS_URL, 'NATS_URL', 4222);
  const redis = hostPort(env.REDIS_URL, 'REDIS_URL', 6379);
  if (await listening(nats)) console.log(`start: using the nats-server at ${env.NATS_URL}`);
  else {
    console.log(`start: starting nats-server on port ${nats.port}`);
    start('nats', 'nats-server', ['-a', nats.host, '-p', String(nats.port)]).server = true;
    children[children.length - 1].server = true;
    await waitListening(nats, 'nats-server');
  }
  if (await listening(redis)) console.log(`start: using the redis-server at ${env.REDIS_URL}`);
  else {
    console.log(`start: starting redis-server on port ${redis.port}`);
    tmp = mkdtempSync(join(tmpdir(), 'latentwire-redis-'));
    start('redis', 'redis-server', ['--bind', redis.host, '--port', String(redis.port), '--save', '', '--appendonly', 'no', '--dir', tmp]);
    children[children.length - 1].server = true;
    await waitListening(redis, 'redis-server');
  }
  for (let i = 0; i < decodeNodes; i++) start(`decode-${i}`, process.execPath, ['decode-node/dist/src/main.js'], { NODE_ID: `decode-${i}` });
  for (let i = 0; i < prefillNodes; i++) start(`prefill-${i}`, process.execPath, ['prefill-node/dist/src/main.js']);
  start('gateway', process.execPath, ['gateway/dist/src/main.js']);
  const url = `http://127.0.0.1:${env.GATEWAY_PORT}`;
  // ready when the gateway answers and sees at least one decode node
  const until = Date.now() + 300_000;
  for (;;) {
    try {
      const health = await (await fetch(`${url}/health`)).json();
      if (health.max_request_tokens) break;
    } catch { /* not up yet */ }
    if (Date.now() > until) { console.error('start: the cluster did not become ready in 5 minutes'); return stop(1); }
    await new Promise((r) => setTimeout(r, 500));
  }
  const model = (await (await fetch(`${url}/v1/models`)).json()).data[0].id;
  console.log(`
latentwire is up: ${url}  (model "${model}", ${decodeNodes} decode node(s), ${prefillNodes} prefill node(s); Ctrl-C stops it)

  curl ${url}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16, "stream": true}'
`);
}

main().catch((err) => {
  console.error(`start: ${err.message}`);
  void stop(1);
});
