// Failures across real processes: gateway, prefill node and decode node each its own `node dist/src/main.js`,
// over a real nats-server and redis-server. kill -9 of the gateway mid-stream: the decode node hears its
// gateway-heartbeats stop and frees that request's pages within GATEWAY_SILENCE_MS and a sweep, instead of
// decoding it for nobody until max_tokens. kill -9 of the prefill node running a job: the gateway hears its
// prefill-heartbeats stop and starts the request over on the other prefill node at once, instead of after
// BullMQ's 30 s lock. kill -9 of the decode node holding a stream: it goes on on the other node, token for
// token. kill -9 of the decode node receiving a prompt's KV (on its first kv-chunk, before prefill-done): the
// request is re-routed to the other node and answers as a run with no fault. Each test also checks that nothing
// but the killed process went away (same pids, still running; the surviving decode nodes did not restart).
// The tests run one at a time: each node dispatches every pipeline once before it is ready (the warm-up), which
// on lavapipe is CPU work, and a dozen nodes starting together on a 2-core machine would wait on each other.
import test, { type ExecutionContext } from 'ava';
import { connect } from '@nats-io/transport-node';
import { SUBJECT_TYPES, decodeMessage, wireSubjects, type Heartbeat, type PrefillHeartbeat } from '@latentwire/protocol';
import { startNatsServer, startRedisServer } from '@latentwire/testing/servers';
import { assertOnlyKilledGone, mainOf, pids, start, until } from './helpers/processes.js';

test.serial('failures - kill -9 of the gateway mid-stream: the decode node cancels its request and frees the pages within a bound', async (t) => {
  const [nats, redis] = await Promise.all([startNatsServer(), startRedisServer()]);
  t.teardown(async () => void (await Promise.all([nats.stop(), redis.stop()])));
  const prefix = 'fail';
  const common = { NATS_URL: nats.url, REDIS_URL: redis.url, NATS_SUBJECT_PREFIX: prefix };
  const silenceMs = 1500;
  const decode = start(t, mainOf('@latentwire/decode-node'), {
    ...common, NODE_ID: 'decode-f', HEARTBEAT_MS: '200', GATEWAY_SILENCE_MS: String(silenceMs),
    PAGE_SIZE: '16', KV_CACHE_PAGES: '64', MAX_BATCH: '4', MAX_CONTEXT: '512',
  }, 'decode');
  const prefill = start(t, mainOf('@latentwire/prefill-node'), common, 'prefill');
  const gateway = start(t, mainOf('@latentwire/gateway'), { ...common, GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: '0', GATEWAY_HEARTBEAT_MS: '200' }, 'gateway');

  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  let last: Heartbeat | undefined;
  nc.subscribe(wireSubjects(prefix).heartbeat, { callback: (_e, m) => void (last = decodeMessage(m.data, SUBJECT_TYPES.heartbeat)) });
  await until(() => /"url":"([^"]+)"/.test(gateway.out), 60_000, 'the gateway listening');
  const url = /"url":"([^"]+)"/.exec(gateway.out)![1]!;
  await until(async () => (await fetch(`${url}/ready`).catch(() => undefined))?.status === 200, 180_000, 'the cluster ready');

  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny-deepseek-v2', prompt: 'The quick brown fox', max_tokens: 400, stream: true, ignore_eos: true }),
  });
  t.is(res.status, 200);
  const reader = res.body!.getReader();
  await reader.read(); // the stream is running
  await until(() => last !== undefined && last.running === 1, 10_000, 'the sequence decoding');
  const held = last!.totalPages - last!.freePages;
  t.true(held > 0);
  const before = pids([decode, prefill, gateway]);
  const startedAt = last!.startedAt;

  gateway.child.kill('SIGKILL');
  await reader.read().catch(() => undefined);
  const ms = await until(() => last!.freePages === last!.totalPages && last!.running === 0, silenceMs + 5000, 'every page free');
  t.log(`pages free ${Math.round(ms)} ms after kill -9 (silence limit ${silenceMs} ms)`);
  // the node's log line may reach this process a moment after its heartbeat (two channels)
  await until(() => /request cancelled: its gateway went silent/.test(decode.out), 2000, 'the cancel logged with its cause');
  t.notRegex(decode.out, /"reason":"length"/, 'cancelled, not decoded to max_tokens');
  // only the gateway went away: the decode and prefill nodes run on under the same pids, the node from the same start
  await assertOnlyKilledGone(t, before, [decode, prefill, gateway], [gateway]);
  t.is(last!.startedAt, startedAt, 'the decode node did not restart');
});

test.serial('failures - kill -9 of the prefill node running a job: the request is re-queued on the other prefill node and completes', async (t) => {
  const [nats, redis] = await Promise.all([startNatsServer(), startRedisServer()]);
  t.teardown(async () => void (await Promise.all([nats.stop(), redis.stop()])));
  const prefix = 'failp';
  const common = { NATS_URL: nats.url, REDIS_URL: redis.url, NATS_SUBJECT_PREFIX: prefix };
  const decode = start(t, mainOf('@latentwire/decode-node'), { ...common, NODE_ID: 'decode-p', PAGE_SIZE: '16', KV_CACHE_PAGES: '64', MAX_BATCH: '4', MAX_CONTEXT: '512' }, 'decode');
  const prefills = [0, 1].map((i) => start(t, mainOf('@latentwire/prefill-node'), { ...common, PREFILL_HEARTBEAT_MS: '200', PREFILL_CONCURRENCY: '1' }, `prefill-${i}`));
  const gateway = start(t, mainOf('@latentwire/gateway'), { ...common, GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: '0', PREFILL_SILENCE_MS: '1000' }, 'gateway');
  const procs = [decode, ...prefills, gateway];

  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const workers = new Map<string, number>(); // workerId → pid
  let holder: { workerId: string; requestId: string } | undefined;
  let killed = false;
  nc.subscribe(wireSubjects(prefix).prefillHeartbeat, {
    callback: (_e, m) => {
      const hb: PrefillHeartbeat = decodeMessage(m.data, SUBJECT_TYPES.prefillHeartbeat);
      if (!workers.has(hb.workerId)) workers.set(hb.workerId, Number(/-(\d+)-[0-9a-f]{8}$/.exec(hb.workerId)?.[1]));
      if (!killed && hb.jobs.length > 0) {
        killed = true; // kill -9 the worker that announced a job, the moment it announced it
        holder = { workerId: hb.workerId, requestId: hb.jobs[0]! };
        process.kill(workers.get(hb.workerId)!, 'SIGKILL');
      }
    },
  });
  await until(() => /"url":"([^"]+)"/.test(gateway.out), 60_000, 'the gateway listening');
  const url = /"url":"([^"]+)"/.exec(gateway.out)![1]!;
  await until(async () => (await fetch(`${url}/ready`).catch(() => undefined))?.status === 200, 180_000, 'the cluster ready');
  await until(() => workers.size === 2, 10_000, 'both prefill workers heard');
  t.true([...workers.values()].every((pid) => prefills.some((p) => p.child.pid === pid)), 'worker ids name their pids');
  const before = pids(procs);

  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny-deepseek-v2', prompt: 'The quick brown fox', max_tokens: 8, ignore_eos: true }),
  });
  const body = (await res.json()) as { choices?: { finish_reason: string }[] };
  const ms = performance.now() - t0;
  t.is(res.status, 200, `${JSON.stringify(body)}\n${procs.map((p) => `${p.name}: ${p.out.slice(-6000)}`).join('\n')}`);
  t.is(body.choices![0]!.finish_reason, 'length');
  t.truthy(holder, 'a worker was killed holding the job');
  t.true(ms < 20_000, `answered after ${Math.round(ms)} ms (BullMQ's lock is 30 s)`);
  t.regex(gateway.out, /prefill worker lost: request re-queued/);
  t.log(`answered ${Math.round(ms)} ms after the request; worker ${holder!.workerId} killed holding ${holder!.requestId}`);
  // only that worker went away: the other one, the decode node and the gateway run on under the same pids
  await assertOnlyKilledGone(t, before, procs, prefills.filter((p) => p.child.pid === workers.get(holder!.workerId)));
});

/**
 * Two decode nodes (the default fp8_e4m3 cache: a resumed stream replays its tokens, so it is exact), a prefill node and a gateway on fresh
 * servers, with a NATS client that records the decode nodes' heartbeats and which node each reserve went to.
 * `serving()` waits until the gateway is ready with both nodes in its pool and returns its URL.
 */
async function twoDecodeNodes(t: ExecutionContext, prefix: string, tag: string) {
  const [nats, redis] = await Promise.all([startNatsServer(), startRedisServer()]);
  t.teardown(async () => void (await Promise.all([nats.stop(), redis.stop()])));
  const common = { NATS_URL: nats.url, REDIS_URL: redis.url, NATS_SUBJECT_PREFIX: prefix };
  const decodeEnv = { ...common, HEARTBEAT_MS: '200', PAGE_SIZE: '16', KV_CACHE_PAGES: '64', MAX_BATCH: '4', MAX_CONTEXT: '512' };
  const nodes = new Map([0, 1].map((i) => [`decode-${tag}${i}`, start(t, mainOf('@latentwire/decode-node'), { ...decodeEnv, NODE_ID: `decode-${tag}${i}` }, `decode-${tag}${i}`)]));
  const prefill = start(t, mainOf('@latentwire/prefill-node'), common, 'prefill');
  const gateway = start(t, mainOf('@latentwire/gateway'), { ...common, GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: '0', HEARTBEAT_TIMEOUT_MS: '1000' }, 'gateway');
  const procs = [...nodes.values(), prefill, gateway];

  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const beats = new Map<string, Heartbeat>();
  nc.subscribe(wireSubjects(prefix).heartbeat, { callback: (_e, m) => void beats.set(...((hb: Heartbeat) => [hb.nodeId, hb] as const)(decodeMessage(m.data, SUBJECT_TYPES.heartbeat))) });
  const reserved = new Map<string, string>(); // request id → the node its reserve went to
  nc.subscribe(`${prefix}.decode.*.reserve`, {
    callback: (_e, msg) => void reserved.set(decodeMessage(msg.data, SUBJECT_TYPES.reserve).requestId, msg.subject.split('.').at(-2)!),
  });
  const serving = async (): Promise<string> => {
    await until(() => /"url":"([^"]+)"/.test(gateway.out), 60_000, 'the gateway listening');
    const url = /"url":"([^"]+)"/.exec(gateway.out)![1]!;
    await until(async () => (await fetch(`${url}/ready`).catch(() => undefined))?.status === 200 && beats.size === 2, 180_000, 'both decode nodes serving');
    return url;
  };
  return { nodes, prefill, gateway, procs, nc, beats, reserved, serving };
}

test.serial('failures - kill -9 of the decode node holding a stream: the request goes on on the other node, token for token', async (t) => {
  const prefix = 'faild';
  const { nodes, gateway, procs, nc, beats, reserved, serving } = await twoDecodeNodes(t, prefix, 'd');
  const url = await serving();

  const body = { model: 'tiny-deepseek-v2', prompt: 'The quick brown fox', max_tokens: 120, ignore_eos: true, temperature: 0 };
  const post = (b: object) => fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
  const calm = ((await (await post(body)).json()) as { choices: { text: string }[] }).choices[0]!.text;

  const res = await post({ ...body, stream: true });
  t.is(res.status, 200);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let raw = '';
  const read = async () => {
    const r = await reader.read();
    if (!r.done) raw += r.value;
    return r.done;
  };
  await until(async () => (await read()) || /"text":"[^"]/.test(raw), 30_000, 'the first text');
  // the holder: the node its reserve went to (known at once; a heartbeat may come after the stream ended)
  const requestId = /"id":"cmpl-([^"]+)"/.exec(raw)![1]!;
  const holder = reserved.get(requestId);
  t.truthy(holder, 'a node is decoding the stream');
  const startedAt = new Map([...beats].map(([id, hb]) => [id, hb.startedAt]));
  const before = pids(procs);
  nodes.get(holder!)!.child.kill('SIGKILL');
  while (!(await read()));
  const events = raw.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
  t.is(events.at(-1), '[DONE]', 'the stream ends normally');
  const parsed = events.slice(0, -1).map((e) => JSON.parse(e) as { choices?: { text: string; finish_reason: string | null }[]; error?: unknown });
  t.false(parsed.some((p) => p.error), JSON.stringify(parsed.find((p) => p.error)));
  t.is(parsed.map((p) => p.choices?.[0]?.text ?? '').join(''), calm, 'no token lost or duplicated across the resume');
  t.is(parsed.at(-1)!.choices![0]!.finish_reason, 'length');
  const resumedOn = reserved.get(`${requestId}.r1`);
  t.truthy(resumedOn && resumedOn !== holder, `resumed on the other node (${resumedOn})`);
  await until(() => /decode node lost: request resumed on another node/.test(gateway.out), 2000, 'the resume logged');
  // only the holder went away: the other decode node, the prefill node and the gateway run on, none restarted
  await assertOnlyKilledGone(t, before, procs, [nodes.get(holder!)!]);
  for (const [id, hb] of beats) if (id !== holder) t.is(hb.startedAt, startedAt.get(id), `${id} did not restart`);
});

test.serial('failures - kill -9 of the decode node receiving a prompt\'s KV: the request is re-routed to the other node and completes, token for token', async (t) => {
  const prefix = 'failk';
  const { nodes, gateway, procs, nc, beats, reserved, serving } = await twoDecodeNodes(t, prefix, 'k');
  // armed after the reference run: the first kv-chunk to a node kills that node, before its prefill-done
  let armed = false;
  let victim: { nodeId: string; requestId: string; tokens: number } | undefined;
  let before: Map<string, number | undefined> | undefined;
  let startedAt: Map<string, number | undefined> | undefined;
  nc.subscribe(`${prefix}.decode.*.kv`, {
    callback: (_e, msg) => {
      if (!armed || victim) return;
      const m = decodeMessage(msg.data, SUBJECT_TYPES.kv);
      victim = { nodeId: msg.subject.split('.').at(-2)!, requestId: m.requestId, tokens: m.tokenCount };
      before = pids(procs);
      startedAt = new Map([...beats].map(([id, hb]) => [id, hb.startedAt]));
      nodes.get(victim.nodeId)!.child.kill('SIGKILL');
    },
  });
  nc.subscribe(`${prefix}.decode.*.control`, {
    callback: (_e, msg) => {
      const m = decodeMessage(msg.data, SUBJECT_TYPES.control);
      if (victim && m.type === 'prefill-done' && m.requestId === victim.requestId) t.fail('the killed node got a prefill-done: the kill came too late');
    },
  });
  const url = await serving();

  const body = { model: 'tiny-deepseek-v2', prompt: 'The quick brown fox jumps over the lazy dog', max_tokens: 24, ignore_eos: true, temperature: 0 };
  const post = (b: object) => fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
  const calm = ((await (await post(body)).json()) as { choices: { text: string }[] }).choices[0]!.text;

  armed = true;
  const t0 = performance.now();
  const res = await post(body);
  const json = (await res.json()) as { id: string; choices?: { text: string; finish_reason: string }[] };
  const ms = performance.now() - t0;
  t.is(res.status, 200, JSON.stringify(json));
  t.truthy(victim, 'a node was killed receiving the KV');
  const requestId = json.id.replace(/^cmpl-/, '');
  t.is(victim!.requestId, requestId);
  t.is(json.choices![0]!.text, calm, 'the same tokens as a run with no fault');
  t.is(json.choices![0]!.finish_reason, 'length');
  const rerouted = reserved.get(`${requestId}.r1`);
  t.truthy(rerouted && rerouted !== victim!.nodeId, `re-routed to the other node (${rerouted})`);
  await until(() => /decode node lost before the first token: request re-routed/.test(gateway.out), 2000, 'the re-route logged');
  t.log(`answered ${Math.round(ms)} ms after the request; ${victim!.nodeId} killed on its first kv-chunk`);
  await assertOnlyKilledGone(t, before!, procs, [nodes.get(victim!.nodeId)!]);
  for (const [id, hb] of beats) if (id !== victim!.nodeId) t.is(hb.startedAt, startedAt!.get(id), `${id} did not restart`);
});
