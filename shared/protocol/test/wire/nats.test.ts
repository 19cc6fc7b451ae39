// Against a real nats-server (max_payload 64 KiB): maxPayloadOf reads the server's limit, and a layer's pages
// go over NATS as kv-chunk requests of several pages each, are placed by a "decode node" connection and
// acked, and come out byte-identical.
import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import {
  SUBJECT_TYPES, WireRejections, decodeMessage, encodeMessage, kvAckMessage, kvChunkMessages, kvChunkPieces, maxPayloadOf,
  parseLatentLayoutKey, wireSubjects,
} from '../../src/wire/index.js';
import { startNatsServer } from '@latentwire/testing';
import { layerPages } from './samples.js';

const MAX_PAYLOAD = 65_536;

test('nats - maxPayloadOf is the server max_payload, and a chunked page crosses NATS intact', async (t) => {
  const server = await startNatsServer({ maxPayload: MAX_PAYLOAD });
  t.teardown(() => server.stop());
  const prefill = await connect({ servers: server.url, name: 'test-prefill' });
  const decode = await connect({ servers: server.url, name: 'test-decode' });
  t.teardown(async () => { await prefill.close(); await decode.close(); });

  t.is(maxPayloadOf(prefill), MAX_PAYLOAD);
  const subjects = wireSubjects(`test.${randomUUID().slice(0, 8)}`); // isolates this test's traffic

  // 300 fp8_e4m3 tokens in 16-token pages (10,304 B a page): 6 pages a chunk at 64 KiB, so 96 + 96 + 96 + 12 tokens.
  const src = layerPages({ dtype: 'fp8_e4m3', pageSize: 16, tokens: 300, seed: 21 });

  // The decode node: validate, place each page's part into its pages (here: the same page indexes), ack.
  const pages = new Uint8Array(src.pages.byteLength);
  const rejections = new WireRejections({ logger: pino({ level: 'silent' }), registry: new Registry() });
  decode.subscribe(subjects.kv('decode-0'), {
    callback: (err, msg) => {
      if (err) throw err;
      const m = rejections.decode(msg.data, msg.subject, SUBJECT_TYPES.kv);
      if (!m) return;
      const layout = parseLatentLayoutKey(m.layoutKey)!;
      for (const p of kvChunkPieces(layout, m)) {
        pages.set(p.rows, p.pageIndex * layout.pageBytes + p.pageRowsOffset);
        pages.set(p.scales, p.pageIndex * layout.pageBytes + p.pageScalesOffset);
      }
      msg.respond(encodeMessage(kvAckMessage({ requestId: m.requestId, layer: m.layer, tokenStart: m.tokenStart, ok: true })));
    },
  });
  await decode.flush();

  const chunks = [...kvChunkMessages(src, maxPayloadOf(prefill))];
  t.deepEqual(chunks.map((c) => c.message.tokenCount), [96, 96, 96, 12]);
  for (const c of chunks) {
    t.true(c.bytes.byteLength <= MAX_PAYLOAD);
    const reply = await prefill.request(subjects.kv('decode-0'), c.bytes, { timeout: 5000 });
    t.like(decodeMessage(reply.data, SUBJECT_TYPES.kvReply), { type: 'kv-ack', ok: true, layer: 5, tokenStart: c.message.tokenStart });
  }
  t.is(rejections.count('checksum') + rejections.count('size') + rejections.count('invalid'), 0);
  t.true(Buffer.from(pages).equals(src.pages));

  // What the chunking avoids: the client refuses a payload above the server's limit.
  t.throws(() => prefill.publish(subjects.kv('decode-0'), new Uint8Array(MAX_PAYLOAD + 1)));
});

test('nats - the test launcher starts JetStream when asked and stops cleanly', async (t) => {
  const server = await startNatsServer({ jetstream: true });
  t.teardown(() => server.stop());
  const nc = await connect({ servers: server.url });
  t.true(nc.info?.jetstream);
  t.is(maxPayloadOf(nc), 1_048_576); // the server's default
  await nc.close();
  await server.stop();
  await t.throwsAsync(connect({ servers: server.url, reconnect: false, timeout: 1000 }));
});
