// The decode node process (node dist/src/main.js) on SIGTERM, as an orchestrator scaling down sends it: a
// draining heartbeat at once, a request still waiting for its KV ended with an error event naming the
// drain, a request decoding runs to its end, then exit 0 with every page free. The test plays the gateway and
// the prefill node (Peer, filler KV) over a real nats-server.
import test from 'ava';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { loadConfig } from '@latentwire/model';
import { SUBJECT_TYPES, decodeMessage, parseLatentLayoutKey, wireSubjects, type Heartbeat } from '@latentwire/protocol';
import { FIXTURE_DIR, startNatsServer } from '@latentwire/testing';
import { Peer, waitFor } from './service/peer.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

test('decode node drain - SIGTERM: draining heartbeat, waiting request failed with a reason, running one finishes, exit 0 with every page free', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const prefix = 'drain';
  const subjects = wireSubjects(prefix);
  const beats: Heartbeat[] = [];
  nc.subscribe(subjects.heartbeat, { callback: (_e, m) => void beats.push(decodeMessage(m.data, SUBJECT_TYPES.heartbeat)) });
  await nc.flush();
  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env, NATS_URL: nats.url, NODE_ID: 'drain-test', NATS_SUBJECT_PREFIX: prefix, LOG_LEVEL: 'info', HEARTBEAT_MS: '200',
      DRAIN_TIMEOUT_MS: '60000', PAGE_SIZE: '16', KV_CACHE_PAGES: '32', MAX_BATCH: '4', MAX_CONTEXT: '128',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => void (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => void (out += d.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));

  await waitFor(() => beats.length > 0, 180_000, 'the first heartbeat');
  const hb = beats[0]!;
  const peer = new Peer(nc, subjects, 'drain-test', hb.fingerprint, parseLatentLayoutKey(hb.layoutKey)!);
  const layers = loadConfig(FIXTURE_DIR).numLayers;
  t.like(await peer.reserve('running', 5, 24), { ok: true });
  t.true((await peer.sendFiller('running', layers, 5)).every((a) => a.ok));
  const running = await peer.tokens('running', undefined, 120_000);
  t.like(await peer.prefillDone({ requestId: 'running', promptTokens: 5, firstToken: 7 }, layers), { ok: true });
  t.like(await peer.reserve('waiting', 5, 8), { ok: true });
  const waiting = await peer.tokens('waiting', undefined, 30_000);

  const before = beats.length;
  child.kill('SIGTERM');
  await waitFor(() => beats.slice(before).some((b) => b.draining === true), 5000, 'a draining heartbeat');
  t.like(await peer.reserve('late', 5, 8), { ok: false, reason: 'queue-full' });
  const w = (await waiting.done).at(-1)!;
  t.is(w.finishReason, 'error');
  t.regex(w.error!, /draining/);
  const r = await running.done;
  t.is(r.at(-1)!.finishReason, 'length', 'the running sequence finished');
  t.is(r.flatMap((m) => m.tokens).length, 24);
  t.is(await exited, 0, out.slice(-3000));
  const drained = out.split('\n').find((l) => l.includes('"msg":"drained"'));
  t.truthy(drained, out.slice(-3000));
  const d = JSON.parse(drained!) as { freePages: number; totalPages: number; failedWaiting: number; cutOff: number };
  t.like(d, { failedWaiting: 1, cutOff: 0 });
  t.is(d.freePages, d.totalPages, 'every page free at exit');
});
