// The whole cluster under infra/nats-server.conf's per-role users and subject permissions: the gateway, the
// prefill worker and the decode node each connect with their role's NATS_USER/NATS_PASSWORD (through
// natsAuthFromEnv and natsConnectOptions, as the services do) and one request is served, every subject it
// uses (reserve, KV, control, tokens, heartbeats) within the roles' permissions; no permission error on
// the gateway's connection.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { testGpu } from '@latentwire/gpu/testing';
import { NATS_AUTH_ENV, natsAuthFromEnv, parseEnv, type NatsAuth } from '@latentwire/protocol';
import { startNatsServer } from '@latentwire/testing/servers';
import { startLocalCluster } from '../src/index.js';

const CONF = readFileSync(fileURLToPath(new URL('../../../infra/nats-server.conf', import.meta.url)), 'utf8');
const ROLES = ['gateway', 'prefill', 'decode'] as const;

test('nats auth - a cluster of per-role NATS users serves a request', async (t) => {
  const prefix = `lwauth${randomUUID().slice(0, 6)}`;
  const pw = Object.fromEntries(ROLES.map((r) => [r, `pw-${r}-${randomUUID()}`])) as Record<(typeof ROLES)[number], string>;
  const vars = ROLES.map((r) => `LW_NATS_${r.toUpperCase()}_PASSWORD: "${pw[r]}"`).join('\n');
  const nats = await startNatsServer({ config: `${vars}\n${CONF.replaceAll('"lw.', `"${prefix}.`)}` });
  t.teardown(() => nats.stop());
  const auth = (r: (typeof ROLES)[number]): NatsAuth => natsAuthFromEnv(parseEnv(NATS_AUTH_ENV, { NATS_USER: r, NATS_PASSWORD: pw[r] }))!;
  const cluster = await startLocalCluster({
    gpu: await testGpu(), decodeNodes: 1, natsUrl: nats.url, prefix, natsAuth: { gateway: auth('gateway'), prefill: auth('prefill'), decode: auth('decode') },
  });
  t.teardown(() => cluster.stop());
  const errors: string[] = [];
  void (async () => {
    for await (const st of cluster.nc.status()) if (st.type === 'error') errors.push(String(st.error));
  })();
  const r = await fetch(`${cluster.url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny-deepseek-v2', prompt: [1, 2, 3, 4, 5], max_tokens: 4, temperature: 0, ignore_eos: true }),
  });
  const body = (await r.json()) as { usage?: { completion_tokens: number } };
  t.is(r.status, 200, JSON.stringify(body));
  t.is(body.usage?.completion_tokens, 4, JSON.stringify(body));
  t.true(await cluster.pagesBack());
  t.deepEqual(errors, []);
});
