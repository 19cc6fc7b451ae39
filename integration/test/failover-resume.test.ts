// kill -9 of decode nodes mid-stream for the requests whose state lives on the node, with real processes
// (gateway, prefill node, four decode nodes on the default fp8_e4m3 cache) over a real nats-server and
// redis-server: a completion with frequency/presence/repetition penalties (greedy), a chat completion under a
// JSON schema (greedy), and an n = 2 completion with penalties (seeded sampling). All three stream at once; the
// moment each has text, every node holding one is killed. Each goes on on a surviving node from the tokens it
// had sent (its reserve carries them as replayTokens: the node prefills the prompt alone and replays them
// through decode steps, so their FP8 KV, the penalty counts and the grammar's state are the lost node's), and
// the token ids (those sent before the loss + those after) equal the uninterrupted run's, choice for choice.
// Nothing but the killed nodes went away.
import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { SUBJECT_TYPES, decodeMessage, wireSubjects, type Heartbeat, type Reserve } from '@latentwire/protocol';
import { startNatsServer, startRedisServer } from '@latentwire/testing/servers';
import { WireTokens } from './helpers/wire-tokens.js';
import { assertOnlyKilledGone, mainOf, pids, start, until, type Proc } from './helpers/processes.js';

/** Reads an SSE response to its end: each choice's text, the response id, errors, whether it ended with [DONE]. */
async function readStream(res: Response, onText: (choice: number) => void) {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let raw = '';
  const texts: string[] = [];
  let id = '';
  const errors: unknown[] = [];
  let done = false;
  const finish: (string | null)[] = [];
  for (let rest = ''; ;) {
    const r = await reader.read();
    if (r.done) break;
    raw += r.value;
    rest += r.value;
    const events = rest.split('\n\n');
    rest = events.pop()!;
    for (const e of events.filter((x) => x.startsWith('data: ')).map((x) => x.slice(6))) {
      if (e === '[DONE]') { done = true; continue; }
      const p = JSON.parse(e) as { id?: string; error?: unknown; choices?: { index: number; text?: string; delta?: { content?: string }; finish_reason: string | null }[] };
      if (p.error) errors.push(p.error);
      id ||= p.id ?? '';
      for (const c of p.choices ?? []) {
        const piece = c.text ?? c.delta?.content ?? '';
        texts[c.index] = (texts[c.index] ?? '') + piece;
        if (c.finish_reason) finish[c.index] = c.finish_reason;
        if (piece) onText(c.index);
      }
    }
  }
  return { id, texts, errors, done, finish, raw };
}

test('failover - kill -9 mid-stream: penalties, a grammar and n = 2 with penalties go on on another node, token for token', async (t) => {
  const [nats, redis] = await Promise.all([startNatsServer(), startRedisServer()]);
  t.teardown(async () => void (await Promise.all([nats.stop(), redis.stop()])));
  const prefix = 'failr';
  const common = { NATS_URL: nats.url, REDIS_URL: redis.url, NATS_SUBJECT_PREFIX: prefix };
  const decodeEnv = { ...common, HEARTBEAT_MS: '200', PAGE_SIZE: '16', KV_CACHE_PAGES: '64', MAX_BATCH: '4', MAX_CONTEXT: '512' }; // the default cache: fp8_e4m3
  const nodes = new Map([0, 1, 2, 3].map((i) => [`decode-r${i}`, start(t, mainOf('@latentwire/decode-node'), { ...decodeEnv, NODE_ID: `decode-r${i}` }, `decode-r${i}`)]));
  const prefill = start(t, mainOf('@latentwire/prefill-node'), common, 'prefill');
  const gateway = start(t, mainOf('@latentwire/gateway'), { ...common, GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: '0', HEARTBEAT_TIMEOUT_MS: '1000', PREFILL_RESUMES: '2' }, 'gateway');
  const procs: Proc[] = [...nodes.values(), prefill, gateway];

  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const wire = new WireTokens(nc, prefix);
  const beats = new Map<string, Heartbeat>();
  nc.subscribe(wireSubjects(prefix).heartbeat, { callback: (_e, m) => void ((hb: Heartbeat) => beats.set(hb.nodeId, hb))(decodeMessage(m.data, SUBJECT_TYPES.heartbeat)) });
  const reserves = new Map<string, { nodeId: string; m: Reserve }>(); // by request id
  nc.subscribe(`${prefix}.decode.*.reserve`, {
    callback: (_e, msg) => {
      const m = decodeMessage(msg.data, SUBJECT_TYPES.reserve);
      reserves.set(m.requestId, { nodeId: msg.subject.split('.').at(-2)!, m });
    },
  });
  await until(() => /"url":"([^"]+)"/.test(gateway.out), 60_000, 'the gateway listening');
  const url = /"url":"([^"]+)"/.exec(gateway.out)![1]!;
  await until(async () => (await fetch(`${url}/ready`).catch(() => undefined))?.status === 200 && beats.size === 4, 240_000, 'four decode nodes serving');
  for (const hb of beats.values()) t.regex(hb.layoutKey, /\/fp8_e4m3\//, `${hb.nodeId}: an FP8 cache`);

  const post = (path: string, b: object) => fetch(`${url}/v1/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
  const model = 'tiny-deepseek-v2';
  const schema = { type: 'object', properties: { tags: { type: 'array', items: { type: 'string' }, minItems: 2, maxItems: 4 }, n: { type: 'integer' } }, required: ['tags', 'n'], additionalProperties: false };
  const cases = [
    { name: 'penalties', path: 'completions', n: 1, body: { model, prompt: 'The quick brown fox', max_tokens: 64, ignore_eos: true, temperature: 0, frequency_penalty: 1.2, presence_penalty: 0.6, repetition_penalty: 1.3 } },
    { name: 'grammar', path: 'chat/completions', n: 1, body: { model, messages: [{ role: 'user', content: 'Tags as JSON.' }], max_tokens: 64, temperature: 0, response_format: { type: 'json_schema', json_schema: { name: 'tags', schema, strict: true } } } },
    { name: 'n=2', path: 'completions', n: 2, body: { model, prompt: 'Once upon a time', max_tokens: 64, ignore_eos: true, n: 2, temperature: 0.8, seed: 7, frequency_penalty: 0.8 } },
  ];
  /** A response's token ids per choice (the wire ids of choice i: `<requestId>.<i>` for n > 1). */
  const idsOf = (responseId: string, n: number) => Promise.all(Array.from({ length: n }, (_, i) => wire.ids(n > 1 ? `${responseId}.${i}` : responseId)));
  // the uninterrupted runs (streamed too, so the texts compare as the client sees them)
  const calm = await Promise.all(cases.map(async (c) => {
    const r = await readStream(await post(c.path, { ...c.body, stream: true }), () => undefined);
    t.deepEqual(r.errors, [], c.name);
    t.truthy(r.id, `${c.name}: a completion (${r.raw.slice(0, 500)})`);
    return { ...r, ids: await idsOf(r.id.replace(/^(chat)?cmpl-/, ''), c.n) };
  }));
  for (const [i, c] of cases.entries()) t.true(calm[i]!.ids.every((ids) => ids.length >= 8), `${c.name}: ${calm[i]!.ids.map((x) => x.length)} tokens`);
  const json = JSON.parse(calm[1]!.texts[0]!) as { tags: string[] };
  t.true(Array.isArray(json.tags), `the grammar run is JSON of its schema: ${calm[1]!.texts[0]}`);

  // the same requests again, killed mid-stream
  const startedAt = new Map([...beats].map(([id, hb]) => [id, hb.startedAt]));
  const before = pids(procs);
  const texted = cases.map(() => new Set<number>());
  const runs = cases.map(async (c, i) => readStream(await post(c.path, { ...c.body, stream: true }), (k) => void texted[i]!.add(k)));
  await until(() => cases.every((c, i) => texted[i]!.size === c.n), 60_000, 'text on every stream and choice');
  // every node holding one of them: the latest reserve of each request not yet finished (the calm ones are)
  const calmIds = new Set(calm.map((r) => r.id.replace(/^(chat)?cmpl-/, '')));
  const holders = new Set([...reserves].filter(([id]) => !calmIds.has(id)).map(([, r]) => r.nodeId));
  t.true(holders.size >= 1 && holders.size < 4, `holders: ${[...holders].join(', ')}`);
  const killed = [...holders].map((id) => nodes.get(id)!);
  for (const p of killed) p.child.kill('SIGKILL');
  const results = await Promise.all(runs);

  for (const [i, c] of cases.entries()) {
    const r = results[i]!;
    t.deepEqual(r.errors, [], `${c.name}: no error event`);
    t.true(r.done, `${c.name}: the stream ends with [DONE]`);
    const requestId = r.id.replace(/^(chat)?cmpl-/, '');
    for (let k = 0; k < c.n; k++) {
      // the continuation: its reserve carries the ids sent before the loss, to replay; its own tokens follow
      const contId = c.n > 1 ? `${requestId}.c${k}.r1` : `${requestId}.r1`;
      const cont = reserves.get(contId);
      t.truthy(cont, `${c.name} choice ${k}: resumed (${contId})`);
      if (!cont) continue;
      t.false(holders.has(cont.nodeId), `${c.name} choice ${k}: resumed on a surviving node`);
      const sent = cont.m.replayTokens?.length ?? 0; // tokens the client had before the loss
      t.true(sent > 0, `${c.name} choice ${k}: tokens had been sent before the loss`);
      const after = await wire.ids(contId);
      t.deepEqual(after, calm[i]!.ids[k]!.slice(sent), `${c.name} choice ${k}: the ids after the loss equal the uninterrupted run's (${sent} before it)`);
      t.deepEqual(cont.m.replayTokens, calm[i]!.ids[k]!.slice(0, sent), `${c.name} choice ${k}: the new node got the ids sent before`);
      t.is(cont.m.promptTokens, reserves.get(requestId)!.m.promptTokens, `${c.name} choice ${k}: the prompt alone is prefilled`);
      t.log(`${c.name} choice ${k}: ${sent} tokens before the loss, ${after.length} after, on ${cont.nodeId}`);
      t.is(r.texts[k], calm[i]!.texts[k], `${c.name} choice ${k}: the client's text too`);
    }
  }
  await until(() => (gateway.out.match(/decode node lost: request resumed on another node/g) ?? []).length >= cases.length, 2000, 'the resumes logged');
  // nothing else went away or restarted: same pids, still running, the surviving nodes' heartbeats from the same start
  await assertOnlyKilledGone(t, before, procs, killed);
  for (const [id, hb] of beats) if (!holders.has(id)) t.is(hb.startedAt, startedAt.get(id), `${id} did not restart`);
});
