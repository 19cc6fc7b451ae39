// The prefill node end to end, against a real nats-server (max_payload 1 KiB, so a 16-token page travels as
// several kv-chunks), a real redis-server and the tiny fixture on WebGPU: a job's KV arrives in layer order
// and byte-identical to what the same model's LatentPageStager produces, the first token is the reference
// greedy token, and the per-destination send window bounds the unacknowledged bytes.
import test, { type ExecutionContext } from 'ava';
import { LatentPageStager, pageRows } from '@latentwire/gpu/prefill';
import { kvChunkRuns, pagesFor } from '@latentwire/protocol';
import { readFixtureJson } from '@latentwire/testing';
import { FakeDecodeNode } from './helpers/fake-decode-node.js';
import { layoutFor, metricValue, startCluster, startTestNode, type Cluster } from './helpers/cluster.js';

const MAX_PAYLOAD = 1024;
const ref = readFixtureJson<{ cases: { input_ids: number[]; greedy_ids: number[] }[] }>('reference.json').cases[0]!;
const ids = ref.input_ids; // 18 tokens: two 16-token pages, the second holding 2

let cluster: Cluster;
/** Per layer, the contiguous page bytes the stager makes from a plain (non-streaming) prefill. */
let expected: Uint8Array[];

test.before(async () => {
  cluster = await startCluster({ maxPayload: MAX_PAYLOAD });
  const layout = layoutFor(cluster.model);
  const out = await cluster.model.prefill(ids);
  const stager = new LatentPageStager(cluster.gpu, layout);
  expected = [];
  for (const latent of out.latent) expected.push(await stager.pages(latent, ids.length));
  stager.release();
  out.release();
});

test.after.always(() => cluster?.stop());

/** Every page of every layer the decode node got for `requestId` equals the stager's bytes. */
function assertExpectedPages(t: ExecutionContext, decode: FakeDecodeNode, requestId: string): void {
  const layout = layoutFor(cluster.model);
  const got = decode.pages(requestId, layout, cluster.model.cfg.numLayers, ids.length);
  for (let l = 0; l < got.length; l++) {
    for (let p = 0; p < pagesFor(layout, ids.length); p++) {
      const a = pageRows(layout, got[l]!, ids.length, p);
      const b = pageRows(layout, expected[l]!, ids.length, p);
      t.true(Buffer.from(a.rows).equals(b.rows), `${requestId} layer ${l} page ${p} rows`);
      t.true(Buffer.from(a.scales).equals(b.scales), `${requestId} layer ${l} page ${p} scales`);
    }
  }
}

test.serial('prefill node - streams every page in layer order, byte-identical to the stager, then prefill-done', async (t) => {
  const node = await startTestNode(t, cluster, { promptIds: ids });
  const decode = await FakeDecodeNode.start(node.decodeNc, node.service.subjects, 'decode-a');
  const id = await node.enqueue({ requestId: 'req-1', decodeNodeId: 'decode-a' }, { attempts: 3, backoff: { type: 'exponential', delay: 100 } });
  const job = await node.finished(id);
  t.is(await job.getState(), 'completed', job.failedReason);
  t.like(job.returnvalue, { outcome: 'completed', requestId: 'req-1', firstToken: ref.greedy_ids[0] });

  const layout = layoutFor(cluster.model);
  const layers = cluster.model.cfg.numLayers;
  const chunks = decode.chunksOf('req-1');
  t.true(chunks.length > layers * pagesFor(layout, ids.length), `${chunks.length} chunks: pages are split to fit ${MAX_PAYLOAD} B`);
  // a chunk may span layers (the tail of one packed with the next): its runs, in order, are what arrives
  const runs = chunks.flatMap((c) => kvChunkRuns(c));
  const order = runs.map((r) => r.layer);
  t.deepEqual(order, [...order].sort((a, b) => a - b), 'layers arrive in order');
  t.deepEqual([...new Set(order)], Array.from({ length: layers }, (_, l) => l));
  for (let l = 0; l < layers; l++) {
    const tokens = runs.filter((r) => r.layer === l).reduce((s, r) => s + r.tokenCount, 0);
    t.is(tokens, ids.length, `layer ${l}: every token once`);
  }

  assertExpectedPages(t, decode, 'req-1');

  t.is(decode.done.length, 1);
  t.like(decode.done[0], {
    requestId: 'req-1', promptTokens: ids.length, layers, firstToken: ref.greedy_ids[0],
    layoutKey: chunks[0]!.layoutKey, fingerprint: cluster.folder.fingerprint,
  });
  t.is(decode.failed.length, 0);
  t.is(job.attemptsStarted, 1, "one attempt");
  t.is(await metricValue(node.registry, 'latentwire_prefill_jobs_total', { outcome: 'completed' }), 1);
  t.is(await metricValue(node.registry, 'latentwire_prefill_kv_chunks_total'), chunks.length);
  t.is(await metricValue(node.registry, 'latentwire_prefill_kv_in_flight_bytes'), 0);
});

test.serial('prefill node - a slow decode node holds at most the window unacked, shared by its jobs; a fast one is not slowed', async (t) => {
  const window = 2200; // about two 1 KiB chunks
  const node = await startTestNode(t, cluster, { promptIds: ids, maxInFlightBytes: window, concurrency: 3 });
  const slow = await FakeDecodeNode.start(node.decodeNc, node.service.subjects, 'decode-slow', { ackDelayMs: 150 });
  const fast = await FakeDecodeNode.start(node.decodeNc, node.service.subjects, 'decode-fast');
  const finishedAt = new Map<string, number>();
  const run = async (requestId: string, decodeNodeId: string) => {
    const job = await node.finished(await node.enqueue({ requestId, decodeNodeId }));
    finishedAt.set(requestId, performance.now());
    return job;
  };
  const jobs = await Promise.all([run('slow-1', 'decode-slow'), run('slow-2', 'decode-slow'), run('fast-1', 'decode-fast')]);
  for (const job of jobs) t.is(await job.getState(), 'completed', job.failedReason);

  t.log(`slow node: ${slow.chunks.length} chunks, at most ${slow.maxInFlightBytes} B unacked; fast node: at most ${fast.maxInFlightBytes} B`);
  t.true(slow.maxInFlightBytes <= window, `slow node held ${slow.maxInFlightBytes} B unacked, window ${window}`);
  t.true(slow.maxInFlightBytes > MAX_PAYLOAD, `more than one chunk in flight (${slow.maxInFlightBytes} B): the window is used`);
  t.true(slow.chunksOf('slow-1').length > 0 && slow.chunksOf('slow-2').length > 0);
  t.true(fast.maxInFlightBytes <= window);
  // 2 × ~9 chunks (token runs fill the 1 KiB max_payload across page ends) at 150 ms per ack, two at a
  // time, take ≥ 0.6 s; the fast node's job doesn't wait for that
  t.true(finishedAt.get('fast-1')! < Math.min(finishedAt.get('slow-1')!, finishedAt.get('slow-2')!), 'fast node finished first');
  t.is(slow.done.length, 2);
  t.is(fast.done.length, 1);
  // three prefills ran concurrently on one device: each still sent exactly the stager's bytes
  assertExpectedPages(t, slow, 'slow-1');
  assertExpectedPages(t, slow, 'slow-2');
  assertExpectedPages(t, fast, 'fast-1');
  t.is(await metricValue(node.registry, 'latentwire_prefill_kv_in_flight_bytes'), 0);
});
