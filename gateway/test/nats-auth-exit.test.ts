// The gateway process with NATS credentials (infra/nats-server.conf's users): a wrong password fails start-up
// (exit 1, the server's authorization error on stderr, the password nowhere), and a password without a user is
// refused before connecting (exit 2 naming NATS_PASSWORD, its value hidden).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runEntry, startNatsServer } from '@latentwire/testing';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const CONF = readFileSync(fileURLToPath(new URL('../../../infra/nats-server.conf', import.meta.url)), 'utf8');

test('nats auth - a wrong NATS password fails start-up with the authorization error and without the secret', async (t) => {
  const vars = ['GATEWAY', 'PREFILL', 'DECODE'].map((r) => `LW_NATS_${r}_PASSWORD: "right-${r}"`).join('\n');
  const server = await startNatsServer({ config: `${vars}\n${CONF}` });
  t.teardown(() => server.stop());
  const secret = 'wrong-password-7f3a';
  const r = await runEntry(MAIN, { NATS_URL: server.url, NATS_USER: 'gateway', NATS_PASSWORD: secret, GATEWAY_PORT: '0', LOG_LEVEL: 'info' });
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /gateway: failed to start: .*authorization/i);
  t.false(`${r.stdout}${r.stderr}`.includes(secret), r.stderr);
});

test('nats auth - NATS_PASSWORD without NATS_USER exits 2 naming it, its value hidden', async (t) => {
  const r = await runEntry(MAIN, { NATS_PASSWORD: 'lonely-secret', NATS_URL: 'nats://127.0.0.1:1' });
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /NATS_PASSWORD: set without NATS_USER/);
  t.false(`${r.stdout}${r.stderr}`.includes('lonely-secret'), r.stderr);
});
