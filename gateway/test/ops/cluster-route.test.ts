// GET /v1/cluster and the web pages on the gateway as operators run it (node dist/src/main.js against real
// NATS and Redis): scripted decode nodes heartbeat (without the newer cluster-view fields, as an older node
// would), a BullMQ worker named like a prefill node takes the queue, and the view lists them all behind the
// operators' key policy (METRICS_API_KEY / METRICS_PUBLIC / API_KEYS); bad query parameters are 400s.
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { prefillQueueName, wireSubjects } from '@latentwire/protocol';
import { Worker } from 'bullmq';
import { model } from '../http/helpers/fixture.js';
import { ScriptedDecodeNode, TEST_PAGE_SIZE } from '../cluster/helpers/scripted-decode-node.js';
import { servers, stopServers } from '../cluster/helpers/servers.js';

test.after.always(stopServers);

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));
const KEY = 'sk-ops-test-key';

/** Starts the gateway process with these variables; resolves its URL once it listens. */
async function startMain(t: ExecutionContext, prefix: string, env: Record<string, string>): Promise<string> {
  const { natsUrl, redisUrl } = await servers();
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, NATS_URL: natsUrl, REDIS_URL: redisUrl, NATS_SUBJECT_PREFIX: prefix, GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(async () => {
    if (child.exitCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
  });
  let stdout = '';
  return new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /"url":"([^"]+)"/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code}: ${stdout}`)));
  });
}

async function until<T>(what: string, get: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const bearer = (key: string) => ({ headers: { Authorization: `Bearer ${key}` } });

test.serial('cluster view - decode nodes from heartbeats and prefill workers from Redis, behind the API key', async (t) => {
  const prefix = 'test.ops.view';
  const { natsUrl, redisUrl } = await servers();
  const subjects = wireSubjects(prefix);
  const nodes = await Promise.all([
    ScriptedDecodeNode.start({ nodeId: 'decode-a', fingerprint: model().fingerprint, subjects, natsUrl, totalPages: 100, freePages: 60, running: 3, waiting: 1, maxBatch: 8 }),
    ScriptedDecodeNode.start({ nodeId: 'decode-other', fingerprint: 'f'.repeat(64), subjects, natsUrl }),
  ]);
  for (const n of nodes) {
    n.resume();
    t.teardown(() => n.stop());
  }
  const worker = new Worker(prefillQueueName(prefix), async () => undefined, { connection: { url: redisUrl }, name: 'prefill-test-7' });
  t.teardown(() => worker.close());
  await worker.waitUntilReady();
  const url = await startMain(t, prefix, { API_KEYS: KEY });

  t.is((await fetch(`${url}/v1/cluster`)).status, 401);
  t.is((await fetch(`${url}/v1/cluster`, bearer('sk-wrong'))).status, 401);
  const snap = await until('both nodes in the view', async () => {
    const res = await fetch(`${url}/v1/cluster`, bearer(KEY));
    t.is(res.status, 200);
    const body = (await res.json()) as any;
    return body.decode.length === 2 ? body : undefined;
  });
  t.like(snap.model, { id: 'tiny-deepseek-v2', fingerprint: model().fingerprint });
  const [a, other] = snap.decode;
  t.like(a, {
    nodeId: 'decode-a', role: 'decode', compatible: true, model: null,
    kv: { dtype: 'fp8_e4m3', pageSize: TEST_PAGE_SIZE },
    load: { running: 3, waiting: 1, maxBatch: 8, maxContext: 2048 },
    // an older node sends no reservedPages: used counts them
    pages: { total: 100, used: 40, free: 60, reserved: null },
    throughput: { source: 'gateway' },
    latency: { ttftMs: { count: 0, p50: null }, itlMs: { count: 0, p50: null } },
  });
  t.like(other, { nodeId: 'decode-other', compatible: false });
  t.true(a.lastHeartbeatMsAgo < 5000);
  t.deepEqual(snap.prefill.workers.map((w: any) => [w.name, w.role]), [['prefill-test-7', 'prefill']]);
  t.true(snap.prefill.workers[0].connections >= 1);
  t.like(snap.prefill.queue, { waiting: 0, active: 0 });
  t.is(snap.windowSeconds, 300);

  // bad query parameters: 400 with OpenAI's error body naming the parameter
  for (const q of ['window=0', 'window=301', 'window=abc', 'window=1.5', 'window=1&window=2', 'detail=full']) {
    const res = await fetch(`${url}/v1/cluster?${q}`, bearer(KEY));
    t.is(res.status, 400, q);
    const body = (await res.json()) as any;
    t.is(body.error.type, 'invalid_request_error', q);
    t.regex(body.error.message, /window|detail/, q);
  }
  const narrow = (await (await fetch(`${url}/v1/cluster?window=60`, bearer(KEY))).json()) as any;
  t.is(narrow.windowSeconds, 60);

  // the pages need no key (they hold no data) and allow only our own scripts
  for (const [path, marker] of [['/', '/web/chat.js'], ['/cluster', '/web/cluster.js']] as const) {
    const res = await fetch(`${url}${path}`);
    t.is(res.status, 200, path);
    t.regex(res.headers.get('content-type')!, /text\/html/);
    t.regex(res.headers.get('content-security-policy')!, /default-src 'self'/);
    t.true((await res.text()).includes(marker), path);
  }
  for (const asset of ['chat.js', 'cluster.js', 'plot.js', 'common.js']) {
    const res = await fetch(`${url}/web/${asset}`);
    t.is(res.status, 200, asset);
    t.regex(res.headers.get('content-type')!, /javascript/, asset);
  }
  t.is((await fetch(`${url}/web/style.css`)).headers.get('content-type'), 'text/css; charset=utf-8');
  // nothing outside gateway/web (fetch would resolve a literal ../ before sending; %2F reaches the server)
  const escape = await fetch(`${url}/web/..%2Fpackage.json`);
  t.true(escape.status === 403 || escape.status === 404, String(escape.status));
  t.false((await escape.text()).includes('@latentwire/gateway'));
  t.is((await fetch(`${url}/web/missing.js`)).status, 404);
});

test.serial('cluster view - METRICS_PUBLIC opens it (and /metrics) while the API keeps its key', async (t) => {
  const url = await startMain(t, 'test.ops.public', { API_KEYS: KEY, METRICS_PUBLIC: '1' });
  const res = await fetch(`${url}/v1/cluster`);
  t.is(res.status, 200);
  t.deepEqual(((await res.json()) as any).decode, []);
  t.is((await fetch(`${url}/metrics`)).status, 200);
  t.is((await fetch(`${url}/v1/models`)).status, 401);
});

test.serial('cluster view - METRICS_API_KEY: only that key, not the API\'s', async (t) => {
  const url = await startMain(t, 'test.ops.opskey', { API_KEYS: KEY, METRICS_API_KEY: 'sk-operators' });
  t.is((await fetch(`${url}/v1/cluster`, bearer(KEY))).status, 401);
  t.is((await fetch(`${url}/v1/cluster`, bearer('sk-operators'))).status, 200);
  t.is((await fetch(`${url}/v1/models`, bearer(KEY))).status, 200);
});
