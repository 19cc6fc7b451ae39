#!/usr/bin/env node
// `npm start`: the whole system on one machine — nats-server and redis-server (reused when NATS_URL /
// REDIS_URL point at ones already listening), one gateway, one prefill node and two decode nodes on the
// default tiny model. Each node gets its own ops port (/health, /ready, /metrics): METRICS_PORT + i for decode
// node i and PREFILL_METRICS_PORT + i for prefill node i when those are set, free ports otherwise. A line per
// node says when it is ready; the URL and a curl example come once the gateway's /ready says a request can be
// served. A decode or prefill node that exits is reported and the rest keep serving; the
// gateway or a server this script started exiting stops everything. Ctrl-C (or SIGTERM) stops everything.
// Env: NATS_URL, REDIS_URL, GATEWAY_PORT (8000), DECODE_NODES (2), PREFILL_NODES (1), MODEL_DIR, plus every
// service's own variables (README), which pass through.
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
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
    return fail(`${name}=${redactUrl(url)} is not a URL`);
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

/** A port free right now on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** Ops ports for `count` nodes: base, base + 1, … when the variable is set, else free ones. */
async function opsPorts(variable, count) {
  const base = env[variable] === undefined || env[variable] === '' ? null : Number(env[variable]);
  if (base !== null && (!Number.isInteger(base) || base < 1 || base + count - 1 > 65535)) fail(`${variable}=${env[variable]}: expected a port`);
  const ports = [];
  for (let i = 0; i < count; i++) ports.push(base === null ? await freePort() : base + i);
  return ports;
}

/** GET url's JSON, or null when it does not answer 2xx. */
async function getJson(url) {
  try {
    const r = await fetch(url);
    return r.ok ? await r.json() : null;
  } catch {
    return null;
  }
}

/** A node's /ready answer, the 503 included (it names the stage the node is in), or null when it does not answer. */
async function readyBody(url) {
  try {
    return await (await fetch(url)).json();
  } catch {
    return null;
  }
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
  const entry = { name, child, node: false };
  child.on('exit', (code, signal) => {
    if (stopping) return;
    const rest = children.filter((c) => c.node && c.name.split('-')[0] === name.split('-')[0] && c.child.exitCode === null && c.child.signalCode === null);
    if (entry.node && rest.length > 0) {
      // a node leaving is an ordinary event (scale-down, a crash): the gateway drops it, the others serve
      console.error(`start: ${name} exited (${signal ?? code}); ${rest.map((c) => c.name).join(', ')} ${rest.length === 1 ? 'keeps' : 'keep'} serving`);
      return;
    }
    console.error(`start: ${name} exited (${signal ?? code}); stopping everything`);
    void stop(1);
  });
  children.push(entry);
  return entry;
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

/** A URL's password as *** (shared/protocol's redactUrl): REDIS_URL may carry one. */
const redactUrl = (url) => url.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]*@/gi, '$1:***@');

async function main() {
  const nats = hostPort(env.NATS_URL, 'NATS_URL', 4222);
  const redis = hostPort(env.REDIS_URL, 'REDIS_URL', 6379);
  if (await listening(nats)) console.log(`start: using the nats-server at ${redactUrl(env.NATS_URL)}`);
  else {
    console.log(`start: starting nats-server on port ${nats.port}`);
    start('nats', 'nats-server', ['-a', nats.host, '-p', String(nats.port)]).server = true;
    children[children.length - 1].server = true;
    await waitListening(nats, 'nats-server');
  }
  if (await listening(redis)) console.log(`start: using the redis-server at ${redactUrl(env.REDIS_URL)}`);
  else {
    console.log(`start: starting redis-server on port ${redis.port}`);
    tmp = mkdtempSync(join(tmpdir(), 'latentwire-redis-'));
    start('redis', 'redis-server', ['--bind', redis.host, '--port', String(redis.port), '--save', '', '--appendonly', 'no', '--dir', tmp]);
    children[children.length - 1].server = true;
    await waitListening(redis, 'redis-server');
  }
  const decodePorts = await opsPorts('METRICS_PORT', decodeNodes);
  const prefillPorts = await opsPorts('PREFILL_METRICS_PORT', prefillNodes);
  const nodes = [];
  const node = (name, main, extraEnv, port) => nodes.push(Object.assign(start(name, process.execPath, [main], extraEnv), { node: true, port }));
  for (let i = 0; i < decodeNodes; i++) node(`decode-${i}`, 'decode-node/dist/src/main.js', { NODE_ID: `decode-${i}`, METRICS_PORT: String(decodePorts[i]) }, decodePorts[i]);
  for (let i = 0; i < prefillNodes; i++) node(`prefill-${i}`, 'prefill-node/dist/src/main.js', { PREFILL_METRICS_PORT: String(prefillPorts[i]) }, prefillPorts[i]);
  start('gateway', process.execPath, ['gateway/dist/src/main.js']);
  const url = `http://127.0.0.1:${env.GATEWAY_PORT}`;
  // ready when the gateway's /ready says a request sent now can be served (a decode node of the model in its
  // pool, a prefill worker on the queue). On a CPU (lavapipe) with an empty Mesa shader cache, the nodes' warm-up
  // JIT-compiles every kernel: minutes on 2 cores the first time, seconds once cached; the stages are printed
  // every 30 s meanwhile.
  const started = Date.now();
  const until = started + 20 * 60_000;
  let told = started;
  const announced = new Set();
  for (;;) {
    const waiting = [];
    for (const n of nodes) {
      if (announced.has(n.name)) continue;
      const r = await readyBody(`http://127.0.0.1:${n.port}/ready`);
      if (r?.ready) {
        announced.add(n.name);
        console.log(`start: ${n.name} ready (ops port ${n.port}${r.shaders ? `, ${r.shaders} pipelines compiled` : ''})`);
      } else waiting.push(`${n.name}: ${r?.stage ?? 'starting'}`);
    }
    if ((await getJson(`${url}/ready`))?.ready) break;
    if (Date.now() > until) { console.error('start: the cluster did not become ready in 20 minutes'); return stop(1); }
    if (Date.now() - told >= 30_000 && waiting.length > 0) {
      told = Date.now();
      console.log(`start: ${Math.round((told - started) / 1000)} s, waiting for ${waiting.join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const late = setInterval(async () => { // nodes still loading are announced as they become ready
    for (const n of nodes.filter((n) => !announced.has(n.name))) {
      const r = await getJson(`http://127.0.0.1:${n.port}/ready`);
      if (r?.ready && !announced.has(n.name)) {
        announced.add(n.name);
        console.log(`start: ${n.name} ready (ops port ${n.port})`);
      }
    }
    if (announced.size === nodes.length) clearInterval(late);
  }, 500);
  late.unref();
  const model = (await (await fetch(`${url}/v1/models`)).json()).data[0].id;
  console.log(`
latentwire is up: ${url}  (model "${model}", ${decodeNodes} decode node(s), ${prefillNodes} prefill node(s); Ctrl-C stops it)

  chat in a browser:  ${url}/
  the cluster:        ${url}/cluster   (JSON: ${url}/v1/cluster)

  curl ${url}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16, "stream": true}'
`);
}

main().catch((err) => {
  console.error(`start: ${err.message}`);
  void stop(1);
});
