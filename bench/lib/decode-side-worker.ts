// The decode side of the transfer bench, in a worker thread (lib/decode-side.ts drives it): its own NATS
// connection and event loop, as a decode node is its own process, so the sender's CPU work and the
// receiver's do not queue on one thread. Commands (one reply each, { id, result } or { id, error }):
//   connect { url }                       open the connection
//   count { subject }                     count messages into the shared counter (raw publish ceiling)
//   echo { subject, reply }               answer every request with `reply` (raw request/reply ceiling)
//   kv { subject, layout, layoutKey }     a KvReceiver: validate, place and ack kv-chunks
//   kvStats {}                            the KvReceiver's counts
//   unsubscribe { subject }  close {}
import { parentPort, workerData } from 'node:worker_threads';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { latentKvLayout, type LatentKvLayoutSpec } from '@latentwire/protocol';
import { KvReceiver } from './kv-receiver.js';

type Command =
  | { op: 'connect'; url: string }
  | { op: 'count'; subject: string }
  | { op: 'echo'; subject: string; reply: Uint8Array }
  | { op: 'kv'; subject: string; layout: LatentKvLayoutSpec; layoutKey: string }
  | { op: 'kvStats' }
  | { op: 'unsubscribe'; subject: string }
  | { op: 'close' };

/** [0]: messages counted by `count` subscriptions. */
const counter = new Int32Array(workerData as SharedArrayBuffer);
let nc: NatsConnection | null = null;
const subs = new Map<string, Subscription>();
let receiver: KvReceiver | null = null;

async function run(c: Command): Promise<unknown> {
  switch (c.op) {
    case 'connect':
      nc = await connect({ servers: c.url, name: 'bench-decode-side' });
      return null;
    case 'count':
      Atomics.store(counter, 0, 0);
      subs.set(c.subject, nc!.subscribe(c.subject, {
        callback: (err) => {
          if (err) return;
          Atomics.add(counter, 0, 1);
          Atomics.notify(counter, 0);
        },
      }));
      break;
    case 'echo':
      subs.set(c.subject, nc!.subscribe(c.subject, { callback: (err, msg) => void (err ? undefined : msg.respond(c.reply)) }));
      break;
    case 'kv':
      receiver?.stop();
      receiver = new KvReceiver(latentKvLayout(c.layout), c.layoutKey);
      await receiver.start(nc!, c.subject);
      return null;
    case 'kvStats':
      return { chunks: receiver!.chunks, bytes: receiver!.bytes, refused: receiver!.refused, invalid: receiver!.invalid };
    case 'unsubscribe':
      subs.get(c.subject)?.unsubscribe();
      subs.delete(c.subject);
      return null;
    case 'close':
      receiver?.stop();
      await nc?.drain();
      return null;
  }
  await nc!.flush(); // the server has the subscription before the sender starts
  return null;
}

parentPort!.on('message', (m: { id: number; command: Command }) => {
  run(m.command).then(
    (result) => parentPort!.postMessage({ id: m.id, result }),
    (err: unknown) => parentPort!.postMessage({ id: m.id, error: String((err as Error)?.stack ?? err) }),
  );
});
