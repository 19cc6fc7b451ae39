// The gateway process (node dist/src/main.js) on SIGTERM: new requests get 503 at once, a stream that ends
// within SHUTDOWN_TIMEOUT_MS finishes whole, one that does not is cut off then and cancelled on its decode
// node with reason 'shutdown'; the process exits 0. Real NATS, Redis and gateway process; a scripted decode
// node and a BullMQ worker stand in for the nodes.
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Worker } from 'bullmq';
import { prefillQueueName, wireSubjects, type PrefillJob } from '@latentwire/protocol';
import { EOS, MODEL_ID, REFERENCE } from '../http/helpers/fixture.js';
import { ScriptedDecodeNode } from './helpers/scripted-decode-node.js';
import { servers, stopServers } from './helpers/servers.js';
import { FINGERPRINT, until } from './helpers/test-cluster.js';

test.after.always(stopServers);

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));
const c = REFERENCE[0]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('shutdown - SIGTERM: 503 for new requests, a short stream finishes, a long one is cut off at the timeout and cancelled, exit 0', async (t) => {
  const { natsUrl, redisUrl } = await servers();
  const prefix = `test.shut${randomUUID().slice(0, 6)}`;
  const subjects = wireSubjects(prefix);
  const node = await ScriptedDecodeNode.start({ nodeId: 'node-a', fingerprint: FINGERPRINT(), subjects, natsUrl });
  t.teardown(() => node.stop());
  const cancelled = (id: string) => node.cancels.some((x) => x.message.requestId === id);
  const worker = new Worker<PrefillJob>(prefillQueueName(prefix), async (job) => {
    const id = job.data.requestId;
    const long = node.reserveOf(id).maxTokens > 50;
    const n = long ? 100 : 8; // messages, 100 ms apart: 0.8 s or 10 s
    for (let i = 0; i < n && !cancelled(id); i++) {
      node.send(id, i, [c.greedy_ids[i % c.greedy_ids.length]!], i === n - 1 ? 'length' : undefined);
      await sleep(100);
    }
  }, { connection: { url: redisUrl }, concurrency: 4 });
  t.teardown(() => worker.close(true));

  const env = {
    ...process.env, NATS_URL: natsUrl, REDIS_URL: redisUrl, NATS_SUBJECT_PREFIX: prefix, GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: '0',
    SHUTDOWN_TIMEOUT_MS: '1500', LOG_LEVEL: 'info',
  };
  const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let stdout = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /"url":"([^"]+)"/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${stdout}`)));
  });
  await until(async () => (await fetch(`${url}/ready`)).status === 200, 5000, 'the gateway ready');

  const stream = async (maxTokens: number) => {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL_ID, prompt: c.prompt, max_tokens: maxTokens, stream: true }),
    });
    t.is(res.status, 200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    let text = new TextDecoder().decode(first.value);
    const rest = (async () => {
      try {
        for (let r = await reader.read(); !r.done; r = await reader.read()) text += new TextDecoder().decode(r.value);
      } catch {
        // cut off
      }
      return text;
    })();
    return { rest };
  };
  const short = (await stream(20)).rest;
  const long = (await stream(100)).rest;
  const [shortId, longId] = [node.reserves[0]!.requestId, node.reserves[1]!.requestId];

  const termAt = performance.now();
  child.kill('SIGTERM');
  await sleep(200);
  const refused = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL_ID, prompt: c.prompt, max_tokens: 5 }),
  }).catch((err: unknown) => {
    throw new Error(`${String(err)}\n${stdout}`);
  });
  t.is(refused.status, 503, stdout);
  t.is(((await refused.json()) as { error: { code: string } }).error.code, 'service_unavailable');
  t.is((await fetch(`${url}/ready`)).status, 503, 'not ready while draining');

  const shortText = await short;
  t.regex(shortText, /"finish_reason":"length"/, 'the short stream finished whole');
  t.regex(shortText, /\[DONE\]/);
  const longText = await long;
  t.notRegex(longText, /"finish_reason":"length"/, 'the long stream was cut off');
  await until(() => cancelled(longId), 3000, 'the cut-off request cancelled on its node');
  const cancel = node.cancels.find((x) => x.message.requestId === longId)!;
  t.is(cancel.message.reason, 'shutdown');
  t.true(cancel.at - termAt >= 1400, `cancelled ${Math.round(cancel.at - termAt)} ms after SIGTERM (timeout 1500)`);
  t.false(cancelled(shortId));
  const [code] = (await once(child, 'exit')) as [number];
  t.is(code, 0);
  t.is(node.reserves.length, 2, 'the refused request reserved nothing');
});
