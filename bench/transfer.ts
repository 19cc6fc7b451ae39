// Latent-KV transfer between a prefill and a decode node through a local nats-server (its own on a free
// port unless NATS_URL is given), in three parts, every figure from this run and this server:
//   a. Ceiling: raw NATS publish of max_payload messages (the server's, read from its INFO) from this
//      thread's connection to a worker thread's (the decode side is its own process in production), with
//      nothing encoded, checksummed, validated or copied, under the prefill node's byte window. For
//      reference, request/reply of the same messages, the round trip of one small request, and (a2) the
//      per-core MB/s of the CPU work the kv path adds (chunking + CRC-32 + msgpack; decode + validation).
//   b. The real send path at DeepSeek-V2-Lite shapes (r=512+64, 27 layers, page 64; fp8_e4m3 and bf16):
//      prefill-node's KvSender with synthetic page bytes and no GPU compute (every layer is ready at once, so
//      once the window is full chunks pack the tail of one layer with the next: whole pages filling
//      max_payload), each acknowledged, to a stand-in decode node in the worker thread that validates
//      (CRC included), places and acks each chunk as decode-node's kv handler does (lib/kv-receiver.ts; the
//      real node needs a GPU engine holding V2-Lite's layout). BENCH_REPEATS requests, each paired with a
//      raw publish trial of the same bytes (a shared machine's load drifts), the pair's order alternating:
//      medians with min–max, and the send path's median as a fraction of raw publish's.
//   c. Handoff latency on the real tiny-model cluster in-process (bf16 cache): from the last layer's last
//      kv-chunk on the wire to the request's first tokens message, p50/p99, split at the last kv-ack and the
//      prefill-done (which also waits for the prefill's final norm, LM head and sampling). Floor: 1.5 small
//      round trips as measured in (a) (kv-ack, prefill-done, tokens: three one-way hops after the chunk;
//      the first token is sent at once, so TOKEN_FLUSH_MS is not part of it).
//   node bench/dist/transfer.js
// Env: NATS_URL  BENCH_DTYPES (fp8_e4m3,bf16)  BENCH_TOKENS (2048)  BENCH_REPEATS (15, at least 5)  PAGE_SIZE (64)
//      KV_SEND_WINDOW_BYTES (8 MiB)  BENCH_CONFIG (a config.json)  BENCH_MACHINE (local: the JSON is
//      results/transfer.<machine>.json)  HANDOFF_REQUESTS (20; 0 skips c)  HANDOFF_TOKENS (256)
//      TOKEN_FLUSH_MS (5)  REDIS_URL  BENCH_COMMIT (recorded in the JSON)  GPU settings (part c).
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { normalizeConfig } from '@latentwire/model';
import {
  encodeMessage, kvAckMessage, kvChunkTokens, latentKvLayout, latentLayoutKey, maxPayloadOf, pagesFor, wireSubjects,
  type KvDtype, type LatentKvLayout,
} from '@latentwire/protocol';
import { startNatsServer } from '@latentwire/testing';
import { DEFAULT_KV_SEND_WINDOW_BYTES, prefillConnectOptions } from '@latentwire/prefill-node';
import { startBenchCluster } from './lib/cluster.js';
import { handoffRows, measureHandoff } from './lib/handoff-latency.js';
import { DecodeSide } from './lib/decode-side.js';
import { benchSendContext, sendRequestKv } from './lib/kv-send.js';
import { measureCodecCost } from './lib/codec-cost.js';
import { rawPublish, rawRequestReply, rawRoundTrips, type RawResult } from './lib/nats-raw.js';
import { loadNote, printTable, writeJson, type Row } from './lib/report.js';
import { percentile, summarize } from './lib/stats.js';

const list = (e: NodeJS.ProcessEnv, name: string, def: string) => (e[name] ?? def).split(',').map((s) => s.trim()).filter(Boolean);

function settingsFromEnv(e: NodeJS.ProcessEnv) {
  return Object.freeze({
    natsUrl: e.NATS_URL,
    redisUrl: e.REDIS_URL,
    configPath: e.BENCH_CONFIG ?? fileURLToPath(new URL('../configs/deepseek-v2-lite.config.json', import.meta.url)),
    dtypes: list(e, 'BENCH_DTYPES', 'fp8_e4m3,bf16') as KvDtype[],
    tokens: list(e, 'BENCH_TOKENS', '2048').map(Number),
    repeats: Math.max(5, Number(e.BENCH_REPEATS ?? 15)),
    pageSize: Number(e.PAGE_SIZE ?? 64),
    windowBytes: Number(e.KV_SEND_WINDOW_BYTES ?? DEFAULT_KV_SEND_WINDOW_BYTES),
    machine: e.BENCH_MACHINE ?? 'local',
    handoffRequests: Number(e.HANDOFF_REQUESTS ?? 20),
    handoffTokens: Number(e.HANDOFF_TOKENS ?? 256),
    tokenFlushMs: Number(e.TOKEN_FLUSH_MS ?? 5),
  });
}
type Settings = ReturnType<typeof settingsFromEnv>;

const gbps = (r: RawResult) => r.bytes / r.seconds / 1e9;
/** Requests sent before the timed ones, per dtype. */
const SEND_WARMUPS = 5;
const ACK = encodeMessage(kvAckMessage({ requestId: 'req-00000000', layer: 0, tokenStart: 0, ok: true }));

/** Median and spread of a few runs. */
interface Spread { readonly median: number; readonly min: number; readonly max: number; readonly runs: readonly number[] }
const spread = (xs: readonly number[]): Spread => ({ median: percentile(xs, 50), min: Math.min(...xs), max: Math.max(...xs), runs: xs });
const show = (s: Spread, digits = 3) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;

async function partA(s: Settings, a: NatsConnection, b: DecodeSide, layouts: LatentKvLayout[], layers: number) {
  const maxPayload = maxPayloadOf(a);
  const payload = new Uint8Array(maxPayload).fill(1);
  // as many bytes a trial as the largest request of part b moves
  const bytes = Math.max(...layouts.flatMap((l) => s.tokens.map((t) => layers * pagesFor(l, t) * l.pageBytes)));
  const n = Math.max(32, Math.ceil(bytes / maxPayload));
  await rawPublish(a, b, 'bench.raw.pub', payload, Math.ceil(n / 4), s.windowBytes); // warm-up: JIT, socket buffers
  const pub: number[] = [], req: number[] = [];
  for (let i = 0; i < s.repeats; i++) {
    pub.push(gbps(await rawPublish(a, b, 'bench.raw.pub', payload, n, s.windowBytes)));
    req.push(gbps(await rawRequestReply(a, b, 'bench.raw.req', payload, ACK, n, s.windowBytes)));
  }
  const publish = spread(pub), requestReply = spread(req);
  const rows: Row[] = [
    { mode: 'publish (the ceiling)', 'bytes/msg': maxPayload, 'messages/run': n, 'GB/s median (min–max)': show(publish) },
    { mode: 'request/reply', 'bytes/msg': maxPayload, 'messages/run': n, 'GB/s median (min–max)': show(requestReply) },
  ];
  const rtt = await rawRoundTrips(a, b, 'bench.raw.rtt', ACK, 300);
  const codec: Row[] = layouts.map((l) => {
    const tokens = Math.max(...s.tokens);
    const c = measureCodecCost({ requestId: 'req-00000000', layer: 0, layout: l, tokens, pages: randomFillSync(new Uint8Array(pagesFor(l, tokens) * l.pageBytes)) }, maxPayload);
    return { dtype: l.dtype, 'pages/chunk': kvChunkTokens(l, 'req-00000000', 0, maxPayload) / l.pageSize, 'encode MB/s': c.encodeMBps, 'decode+validate MB/s': c.decodeMBps, 'CRC-32 alone MB/s': c.crcMBps };
  });
  return { rows, codec, maxPayload, publish, requestReply, rttMs: summarize(rtt) };
}

/** Each request of the real path follows a raw publish run of the same bytes at max_payload (same load). */
async function partB(s: Settings, a: NatsConnection, b: DecodeSide, layouts: LatentKvLayout[], layers: number) {
  const subjects = wireSubjects('bench');
  const nodeId = 'bench-decode';
  const maxPayload = maxPayloadOf(a);
  const payload = new Uint8Array(maxPayload).fill(1);
  const rows: Row[] = [];
  const runs: object[] = [];
  for (const layout of layouts) {
    await b.kv(subjects.kv(nodeId), layout, latentLayoutKey(layout));
    const ctx = benchSendContext(a, subjects, s.windowBytes, 30_000);
    for (const tokens of s.tokens) {
      const pages = randomFillSync(new Uint8Array(pagesFor(layout, tokens) * layout.pageBytes));
      const dest = (i: number) => ({ requestId: `req-${tokens}-${i}`, decodeNodeId: nodeId, layout, tokens });
      // warm-up to a steady state, as part a's runs warmed raw publish: on the GPU machine's host (99a3c58) the
      // first eight fp8 requests after part a reached a median 84% of their pairs' raw runs, the last four 95–114%
      for (let w = 0; w < SEND_WARMUPS; w++) await sendRequestKv(ctx, dest(-10 - w), layers, pages);
      const before = await b.kvStats();
      await sendRequestKv(ctx, dest(-2), layers, pages); // one request's chunks and bytes
      const one = await b.kvStats();
      const chunks = one.chunks - before.chunks, bytes = one.bytes - before.bytes;
      const raw: number[] = [], sent: number[] = [], ms: number[] = [];
      // pairs in alternating order: each side's garbage (nats.js allocates a buffer per message on both ends)
      // is collected during whichever run comes next, so the side that always ran second would pay for both
      const rawRun = async () => raw.push(gbps(await rawPublish(a, b, 'bench.raw.pub', payload, Math.ceil(bytes / maxPayload), s.windowBytes)));
      const sendRun = async (i: number) => {
        const t = await sendRequestKv(ctx, dest(i), layers, pages);
        ms.push(t);
        sent.push(bytes / (t / 1e3) / 1e9);
      };
      for (let i = 0; i < s.repeats; i++) {
        if (i % 2 === 0) {
          await rawRun();
          await sendRun(i);
        } else {
          await sendRun(i);
          await rawRun();
        }
      }
      const send = spread(sent), publish = spread(raw), t50 = percentile(ms, 50);
      // each request against its pair's raw run (the same moment's load): the ratio's spread
      const pairs = spread(sent.map((x, i) => (100 * x) / raw[i]!));
      const pagesPerRequest = layers * pagesFor(layout, tokens);
      rows.push({
        dtype: layout.dtype, tokens, 'MB/request': bytes / 1e6, chunks: chunks, 'pages/chunk': pagesPerRequest / chunks,
        '% of max_payload': (100 * bytes) / (chunks * maxPayload),
        'ms/request median': t50, 'pages/s': pagesPerRequest / (t50 / 1e3),
        'send GB/s median (min–max)': show(send), 'raw publish GB/s median (min–max)': show(publish),
        '% of raw publish (medians)': (100 * send.median) / publish.median,
        '% of raw publish, pair by pair median (min–max)': show(pairs, 0),
      });
      runs.push({ dtype: layout.dtype, tokens, bytes, chunks, msPerRequest: ms, sendGBps: send, rawPublishGBps: publish, pairPercent: pairs });
      console.log(JSON.stringify(rows[rows.length - 1]));
    }
    const { invalid, refused } = await b.kvStats();
    if (invalid > 0 || refused > 0) throw new Error(`decode side dropped ${invalid} and refused ${refused} chunks`);
  }
  return { rows, runs };
}

async function partC(s: Settings, natsUrl: string, rttP50: number) {
  const cluster = await startBenchCluster({
    decodeNodes: 1, kvDtype: 'bf16', pageSize: s.pageSize, numPages: 256, maxBatch: 16, maxContext: 2048,
    tokenFlushMs: s.tokenFlushMs, natsUrl, redisUrl: s.redisUrl,
  });
  try {
    const samples = await measureHandoff(cluster, { requests: s.handoffRequests, warmup: 2, promptTokens: s.handoffTokens, maxTokens: 2 });
    const { rows, headline } = handoffRows(samples);
    const floorMs = 1.5 * rttP50;
    return { rows, floorMs, fraction: floorMs / (headline['p50 ms'] as number), samples };
  } finally {
    await cluster.stop();
  }
}

function machine(): string {
  return `${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${availableParallelism()} CPUs`;
}

async function main(): Promise<void> {
  const s = settingsFromEnv(process.env);
  const cfg = normalizeConfig(JSON.parse(readFileSync(s.configPath, 'utf8')), s.configPath);
  const layouts = s.dtypes.map((dtype) => latentKvLayout({ kvLoraRank: cfg.kvLoraRank, ropeDim: cfg.qkRopeHeadDim, pageSize: s.pageSize, dtype }));
  const server = s.natsUrl ? null : await startNatsServer();
  const natsUrl = s.natsUrl ?? server!.url;
  const a = await connect({ servers: natsUrl, ...prefillConnectOptions(undefined), name: 'bench-prefill' }); // the prefill node's options
  const b = await DecodeSide.start(natsUrl);
  try {
    console.log(`${machine()}; nats ${natsUrl}; ${s.configPath.split('/').pop()}: r=${cfg.kvLoraRank}+${cfg.qkRopeHeadDim}, ${cfg.numLayers} layers, ` +
      `page ${s.pageSize}; window ${s.windowBytes} B; ${s.repeats} runs each; ${loadNote()}`);
    const a1 = await partA(s, a, b, layouts, cfg.numLayers);
    printTable(`a. ceiling: raw NATS at the server's max_payload (${a1.maxPayload} B) to another thread's connection, ${s.windowBytes / 2 ** 20} MiB window, ` +
      `${s.repeats} runs; small request round trip p50 ${a1.rttMs.p50.toFixed(3)} ms, p99 ${a1.rttMs.p99.toFixed(3)} ms`, a1.rows);
    printTable('a2. CPU work of the kv path that raw NATS does not do, one core (the sender encodes, the decode side decodes)', a1.codec);
    const b1 = await partB(s, a, b, layouts, cfg.numLayers);
    printTable(`b. KvSender → validating decode stand-in (another thread), ${cfg.numLayers} layers of synthetic pages, no compute; ` +
      `${s.repeats} requests, one at a time, each paired with a raw publish run of the same bytes at max_payload (raw first in even pairs, second in odd)`, b1.rows);
    for (const r of b1.rows) {
      console.log(`${r['dtype']}, ${r['tokens']} tokens: the send path reached ${(r['% of raw publish (medians)'] as number).toFixed(1)}% of raw NATS publish ` +
        `at max_payload (the ceiling; medians), ${r['% of raw publish, pair by pair median (min–max)']}% pair by pair; chunks ` +
        `${(r['% of max_payload'] as number).toFixed(1)}% full`);
    }
    await a.drain();
    await b.close();
    const c1 = s.handoffRequests > 0 ? await partC(s, natsUrl, a1.rttMs.p50) : null;
    if (c1) printTable(`c. handoff on the tiny-model cluster in-process (bf16, page ${s.pageSize}, ${s.handoffTokens}-token prompts, one request at a time); ` +
      `floor 1.5 measured round trips = ${c1.floorMs.toFixed(3)} ms, reached ${(100 * c1.fraction).toFixed(1)}% at p50 (*: the headline)`, c1.rows);
    const file = writeJson(`transfer.${s.machine}`, {
      machine: machine(), commit: process.env.BENCH_COMMIT ?? 'unknown', date: new Date().toISOString(), settings: s, config: s.configPath, layouts: layouts.map(latentLayoutKey), maxPayload: a1.maxPayload,
      ceiling: { rows: a1.rows, publishGBps: a1.publish, requestReplyGBps: a1.requestReply }, codecCost: a1.codec,
      smallRoundTripMs: a1.rttMs, sendPath: b1.rows, sendRuns: b1.runs, handoff: c1,
    });
    console.log(`\n${loadNote()}; wrote ${file}`);
  } finally {
    if (!a.isClosed()) await a.close();
    await server?.stop();
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
