// Against a real nats-server (max_payload 64 KiB): maxPayloadOf reads the server's limit, and a page too
// big for one message goes over NATS as kv-chunk requests, is placed by a "decode node" connection and
// acked, and comes out byte-identical.
import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { latentKvLayout } from '@latentwire/protocol';
import {
  SUBJECT_TYPES, WireRejections, decodeMessage, encodeMessage, kvAckMessage, kvChunkMessages, kvChunkPlacement, maxPayloadOf,
  wireSubjects,
} from '../../src/wire/index.js';
import { startNatsServer } from '@latentwire/testing';
import { pageSlice } from './samples.js';

const MAX_PAYLOAD = 65_536;

test('nats - maxPayloadOf is the server max_payload, and a chunked page crosses NATS intact', async (t) => {
  const server = await startNatsServer({ maxPayload: MAX_PAYLOAD });
  t.teardown(() => server.stop());
  const prefill = await connect({ servers: server.url, name: 'test-prefill' });
  const decode = await connect({ servers: server.url, name: 'test-decode' });
  t.teardown(async () => { await prefill.close(); await decode.close(); });

  t.is(maxPayloadOf(prefill), MAX_PAYLOAD);
  const subjects = wireSubjects(`test.${randomUUID().slice(0, 8)}`); // isolates this test's traffic

  // One full 256-token fp8_e4m3 page (256 × 644 B ≈ 161 KiB): three chunks at 64 KiB.
  const slice = pageSlice({ dtype: 'fp8_e4m3', pageSize: 256, tokenStart: 2 * 256, tokenCount: 256, seed: 21 });
  const layout = latentKvLayout({ dtype: 'fp8_e4m3', kvLoraRank: 512, ropeDim: 64, pageSize: 256 });

  // The decode node: validate, place into its page, ack.
  const page = new Uint8Array(layout.pageBytes);
  const rejections = new WireRejections({ logger: pino({ level: 'silent' }), registry: new Registry() });
  decode.subscribe(subjects.kv('decode-0'), {
    callback: (err, msg) => {
      if (err) throw err;
      const m = rejections.decode(msg.data, msg.subject, SUBJECT_TYPES.kv);
      if (!m) return;
      const at = kvChunkPlacement(m);
      page.set(m.rows, at.rowsOffset);
      page.set(m.scales, at.scalesOffset);
      msg.respond(encodeMessage(kvAckMessage({ requestId: m.requestId, layer: m.layer, pageIndex: m.pageIndex, tokenStart: m.tokenStart, ok: true })));
    },
  });
  await decode.flush();

  const chunks = kvChunkMessages(slice, maxPayloadOf(prefill));
  t.is(chunks.length, 3);
  for (const c of chunks) {
    t.true(c.bytes.byteLength <= MAX_PAYLOAD);
    const reply = await prefill.request(subjects.kv('decode-0'), c.bytes, { timeout: 5000 });
    t.like(decodeMessage(reply.data, SUBJECT_TYPES.kvReply), { type: 'kv-ack', ok: true, pageIndex: 2, tokenStart: c.message.tokenStart });
  }
  t.is(rejections.count('checksum') + rejections.count('size') + rejections.count('invalid'), 0);
  t.true(Buffer.from(page.subarray(0, layout.scalesOffset)).equals(slice.rows));
  t.true(Buffer.from(page.subarray(layout.scalesOffset)).equals(slice.scales));

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
