// Chaos: the cluster as real processes (nats-server, redis-server, two decode nodes, two prefill nodes, the
// gateway) under a steady stream of requests, while ordinary events hit it in turn: kill -9 of a
// decode node, SIGTERM of a decode node (drain), kill -9 of a prefill node, a nats-server restart. Every
// node that goes is started again. The requests are of four kinds, in turn: greedy; greedy with frequency,
// presence and repetition penalties; n = 2 seeded with a frequency penalty; a greedy chat completion under a
// JSON schema (the last three keep state on the decode node that a resume rebuilds). Each completed request's
// text (every choice's) must equal the same request's text from a calm run first (nothing lost, nothing
// duplicated); a request may also end with a clear error or a 429/503 refusal. Prints requests sent / completed (and resumed elsewhere) / refused / errored, mismatches (must be 0), and per event
// the time until a request succeeds again; writes bench/results/chaos.<machine>.json.
//   node bench/dist/chaos.js
// Env: CHAOS_SECONDS (60)  CHAOS_EVERY_MS (8000: one event every)  CHAOS_CONCURRENCY (4)  CHAOS_MAX_TOKENS (24)
//      BENCH_MACHINE (local)  plus the services' own variables (KV_CACHE_DTYPE: the decode nodes' default,
//      fp8_e4m3, unless set: a resume replays the tokens sent through decode steps, so it is token for token on
//      any cache; with RESUME_REPLAY_MAX_TOKENS below CHAOS_MAX_TOKENS a resume may be prefilled again instead,
//      which on fp8 or bf16 may diverge, and the table then counts it).
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { startNatsServer, startRedisServer } from '@latentwire/testing/servers';
import { freePort } from '@latentwire/testing';
import { failStart } from '@latentwire/protocol';
import { loadNote, printTable, writeJson, spread, type Row } from './lib/report.js';

const require = createRequire(import.meta.url);
const mainOf = (pkg: string) => join(dirname(require.resolve(pkg)), 'main.js');
const num = (name: string, def: number) => {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!(n > 0)) throw new RangeError(`${name}=${JSON.stringify(v)}: expected a positive number`);
  return n;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Proc { child: ChildProcess; readonly name: string; readonly file: string; readonly env: Record<string, string> }

function launch(name: string, file: string, env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [file], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  return { child, name, file, env };
}

function relaunch(p: Proc): void {
  p.child = spawn(process.execPath, [p.file], { env: { ...process.env, LOG_LEVEL: 'warn', ...p.env }, stdio: ['ignore', 'ignore', 'inherit'] });
}

const exited = (p: Proc) => new Promise<void>((done) => (p.child.exitCode !== null ? done() : p.child.once('exit', () => done())));

type Outcome = { kind: 'completed'; text: string } | { kind: 'refused'; status: number } | { kind: 'error'; detail: string };

/** A request of the run: its kind, endpoint and body (without stream). */
interface Ask { readonly kind: string; readonly path: 'completions' | 'chat/completions'; readonly body: Record<string, unknown> }

/** Request i of the run: prompt i, of kind i % 4 (see the top). */
function askOf(i: number, maxTokens: number): Ask {
  const prompt = `Chaos prompt ${i}: the quick brown fox ${'jumps '.repeat(i)}`;
  const base = { model: 'tiny-deepseek-v2', max_tokens: maxTokens };
  switch (i % 4) {
    case 1: return { kind: 'penalties', path: 'completions', body: { ...base, prompt, temperature: 0, ignore_eos: true, frequency_penalty: 1, presence_penalty: 0.5, repetition_penalty: 1.2 } };
    case 2: return { kind: 'n=2', path: 'completions', body: { ...base, prompt, n: 2, temperature: 0.8, seed: i, ignore_eos: true, frequency_penalty: 0.5 } };
    case 3: return {
      kind: 'json schema', path: 'chat/completions',
      body: {
        ...base, messages: [{ role: 'user', content: prompt }], temperature: 0,
        response_format: { type: 'json_schema', json_schema: { name: 'tags', strict: true, schema: { type: 'object', properties: { tags: { type: 'array', items: { type: 'string' } } }, required: ['tags'], additionalProperties: false } } },
      },
    };
    default: return { kind: 'greedy', path: 'completions', body: { ...base, prompt, temperature: 0, ignore_eos: true } };
  }
}

/** One streamed request; its text (every choice's, in order), or how it ended. */
async function complete(url: string, ask: Ask): Promise<Outcome> {
  let res: Response;
  try {
    res = await fetch(`${url}/v1/${ask.path}`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...ask.body, stream: true }),
    });
  } catch (e) {
    return { kind: 'error', detail: `connect: ${(e as Error).message}` };
  }
  if (res.status === 429 || res.status === 503) return { kind: 'refused', status: res.status };
  if (res.status !== 200) return { kind: 'error', detail: `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}` };
  const texts: string[] = [];
  let buf = '';
  try {
    for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = event.replace(/^data: /, '');
        if (data === '[DONE]') return { kind: 'completed', text: texts.join('\u241e') };
        const m = JSON.parse(data) as { error?: { message: string }; choices?: { index: number; text?: string; delta?: { content?: string } }[] };
        if (m.error) return { kind: 'error', detail: m.error.message };
        for (const c of m.choices ?? []) texts[c.index] = (texts[c.index] ?? '') + (c.text ?? c.delta?.content ?? '');
      }
    }
  } catch (e) {
    return { kind: 'error', detail: `stream: ${(e as Error).message}` };
  }
  return { kind: 'error', detail: 'the stream ended without [DONE]' };
}

async function main(): Promise<void> {
  const seconds = num('CHAOS_SECONDS', 60), everyMs = num('CHAOS_EVERY_MS', 8000), concurrency = num('CHAOS_CONCURRENCY', 4);
  const maxTokens = num('CHAOS_MAX_TOKENS', 24);
  const kvDtype = process.env.KV_CACHE_DTYPE || 'fp8_e4m3';
  const natsPort = await freePort();
  let nats = await startNatsServer({ port: natsPort });
  const redis = await startRedisServer();
  const common = {
    NATS_URL: nats.url, REDIS_URL: redis.url, NATS_SUBJECT_PREFIX: 'chaos', PAGE_SIZE: '16', KV_CACHE_PAGES: '256', MAX_BATCH: '8', KV_CACHE_DTYPE: kvDtype,
  };
  const gatewayPort = await freePort();
  const url = `http://127.0.0.1:${gatewayPort}`;
  const decode = [0, 1].map((i) => launch(`decode-${i}`, mainOf('@latentwire/decode-node'), { ...common, NODE_ID: `decode-${i}`, HEARTBEAT_MS: '200', DRAIN_TIMEOUT_MS: '3000' }));
  const prefill = [0, 1].map((i) => launch(`prefill-${i}`, mainOf('@latentwire/prefill-node'), common));
  const gateway = launch('gateway', mainOf('@latentwire/gateway'), { ...common, GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: String(gatewayPort) });
  const all = [...decode, ...prefill, gateway];
  const stopAll = async () => {
    for (const p of all) p.child.kill('SIGKILL');
    await Promise.all([nats.stop(), redis.stop()]);
  };
  try {
    for (const t0 = Date.now(); ; await sleep(200)) {
      if ((await fetch(`${url}/ready`).catch(() => undefined))?.status === 200) break;
      if (Date.now() - t0 > 300_000) throw new Error('the cluster never became ready');
    }
    // the calm run: each prompt's text once, before anything happens
    const prompts = Array.from({ length: 8 }, (_, i) => askOf(i, maxTokens));
    const reference = new Map<Ask, string>();
    for (const p of prompts) {
      const o = await complete(url, p);
      if (o.kind !== 'completed') throw new Error(`calm run: ${JSON.stringify(o)}`);
      reference.set(p, o.text);
    }

    const counts = { sent: 0, completed: 0, refused: 0, errored: 0, mismatched: 0 };
    const errors = new Map<string, number>();
    const mismatches: { kind: string; after: string; expected: string; got: string }[] = [];
    const recoveries: { event: string; recoverMs: number | null }[] = [];
    let pendingEvent: string | undefined; // the event under way (its recovery not yet recorded)
    let lastSuccess = 0;
    const tEnd = Date.now() + seconds * 1000;
    const worker = async () => {
      for (let i = 0; Date.now() < tEnd; i++) {
        const p = prompts[(counts.sent + i) % prompts.length]!;
        counts.sent++;
        const o = await complete(url, p);
        if (o.kind === 'completed') {
          counts.completed++;
          lastSuccess = Date.now();
          if (o.text !== reference.get(p)) {
            counts.mismatched++;
            mismatches.push({ kind: p.kind, after: recoveries.at(-1)?.event ?? pendingEvent ?? 'none', expected: reference.get(p)!, got: o.text });
          }
        } else if (o.kind === 'refused') {
          counts.refused++;
          await sleep(200);
        } else {
          counts.errored++;
          const key = `${o.detail.replace(/[0-9a-f-]{36}/g, '<id>').slice(0, 100)} (after: ${recoveries.at(-1)?.event ?? pendingEvent ?? 'none'})`;
          errors.set(key, (errors.get(key) ?? 0) + 1);
        }
      }
    };
    const events: [string, () => Promise<void>][] = [
      ['kill -9 decode-0', async () => { decode[0]!.child.kill('SIGKILL'); await exited(decode[0]!); relaunch(decode[0]!); }],
      ['SIGTERM decode-1 (drain)', async () => { decode[1]!.child.kill('SIGTERM'); await exited(decode[1]!); relaunch(decode[1]!); }],
      ['kill -9 prefill-0', async () => { prefill[0]!.child.kill('SIGKILL'); await exited(prefill[0]!); relaunch(prefill[0]!); }],
      ['nats-server restart', async () => { await nats.stop(); await sleep(500); nats = await startNatsServer({ port: natsPort }); }],
    ];
    const chaos = async () => {
      for (let k = 0; Date.now() + everyMs < tEnd; k++) {
        await sleep(everyMs);
        const [name, act] = events[k % events.length]!;
        pendingEvent = name;
        const at = Date.now();
        await act();
        // recovered: a request that started after the event completed
        let recoverMs: number | null = null;
        for (; Date.now() < tEnd; await sleep(100)) if (lastSuccess > at) { recoverMs = lastSuccess - at; break; }
        recoveries.push({ event: name, recoverMs });
        console.error(`chaos: ${name} at +${Math.round((at - (tEnd - seconds * 1000)) / 1000)} s, recovered in ${recoverMs ?? 'n/a'} ms`);
      }
    };
    await Promise.all([...Array.from({ length: concurrency }, worker), chaos()]);

    // requests the gateway resumed elsewhere, by why (its own counter: latentwire_gateway_resumes_total)
    const metrics = await (await fetch(`${url}/metrics`)).text().catch(() => '');
    const resumed: Record<string, number> = {};
    for (const m of metrics.matchAll(/^latentwire_gateway_resumes_total\{why="([^"]+)"\} (\d+)/gm)) resumed[m[1]!] = Number(m[2]);
    printTable(`chaos: ${seconds} s, ${concurrency} streams at a time (greedy, penalties, n = 2, JSON schema in turn), ${maxTokens} tokens each, an event every ${everyMs} ms, ${kvDtype} KV cache; ${loadNote()}`, [{
      sent: counts.sent, completed: counts.completed, 'of them resumed': Object.entries(resumed).map(([w, n]) => `${n} ${w}`).join(', ') || '0',
      'refused (429/503)': counts.refused, errored: counts.errored,
      'completed ≠ calm run (must be 0)': counts.mismatched,
    } as Row]);
    printTable('events: time from the event to the next request completed', recoveries.map((r) => ({ event: r.event, 'recovered ms': r.recoverMs ?? 'not within the run' })));
    if (errors.size > 0) printTable('errors (what the client saw)', [...errors].map(([detail, n]) => ({ n, detail })));
    if (mismatches.length > 0) printTable('completed ≠ calm run', mismatches.map((m) => ({ kind: m.kind, after: m.after, expected: JSON.stringify(m.expected).slice(0, 120), got: JSON.stringify(m.got).slice(0, 120) })));
    const rec = recoveries.map((r) => r.recoverMs).filter((m): m is number => m !== null);
    const file = writeJson(`chaos.${process.env.BENCH_MACHINE ?? 'local'}`, {
      seconds, everyMs, concurrency, maxTokens, kvDtype, counts, resumed, recoveries, errors: Object.fromEntries(errors), mismatches,
      recoverMs: rec.length ? spread(rec) : null, load: loadNote(),
    });
    console.log(`\nwrote ${file}`);
    if (counts.mismatched > 0) process.exitCode = 1;
  } finally {
    await stopAll();
  }
}

main().catch((err: unknown) => failStart('bench:chaos', err));
