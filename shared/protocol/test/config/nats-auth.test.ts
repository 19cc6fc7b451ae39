// NATS credentials from the environment (NATS_AUTH_ENV → natsAuthFromEnv → natsConnectOptions), checked against
// a real nats-server running infra/nats-server.conf (one user per role, subject permissions): each role does its
// own traffic; the gateway can't forge tokens or decode heartbeats, nor read KV; a decode node can't read tokens;
// the server's permission errors reach the client as status errors / a closed subscription. Also nkey and token
// users, and TLS with a private CA and client certificates (openssl makes them).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { nkeys } from '@nats-io/nats-core';
import { connect, errors, type NatsConnection, type Status } from '@nats-io/transport-node';
import { startNatsServer } from '@latentwire/testing';
import { ConfigError, logNatsErrors, NATS_AUTH_ENV, natsAuthFromEnv, natsConnectOptions, parseEnv } from '../../src/config/index.js';
import { wireSubjects } from '../../src/wire/index.js';

const CONF = readFileSync(fileURLToPath(new URL('../../../../../infra/nats-server.conf', import.meta.url)), 'utf8');
const ROLES = ['gateway', 'prefill', 'decode'] as const;
type Role = (typeof ROLES)[number];
const s = wireSubjects('lw'); // the example config's prefix

/** The example config, its passwords (read from variables) defined in front of it. */
async function server(): Promise<{ server: Awaited<ReturnType<typeof startNatsServer>>; passwords: Record<Role, string> }> {
  const passwords = Object.fromEntries(ROLES.map((r) => [r, `pw-${r}-${randomUUID()}`])) as Record<Role, string>;
  const vars = ROLES.map((r) => `LW_NATS_${r.toUpperCase()}_PASSWORD: "${passwords[r]}"`).join('\n');
  return { server: await startNatsServer({ config: `${vars}\n${CONF}` }), passwords };
}

/** Connects as `role` the way a service does: from NATS_USER/NATS_PASSWORD through natsConnectOptions. */
async function as(url: string, user: string, password: string): Promise<{ nc: NatsConnection; errors: Error[] }> {
  const auth = natsAuthFromEnv(parseEnv(NATS_AUTH_ENV, { NATS_USER: user, NATS_PASSWORD: password }));
  const nc = await connect({ servers: url, name: `test-${user}`, ...natsConnectOptions(auth) });
  const errs: Error[] = [];
  void (async () => {
    for await (const st of nc.status() as AsyncIterable<Status>) if (st.type === 'error') errs.push(st.error);
  })();
  return { nc, errors: errs };
}

const received = (nc: NatsConnection, subject: string) => {
  const got: string[] = [];
  const sub = nc.subscribe(subject, { callback: (err, m) => void (err ? undefined : got.push(m.string())) });
  return { got, sub };
};
const settle = () => new Promise((r) => setTimeout(r, 150));

test('nats auth - each role does its own traffic under the example config', async (t) => {
  const { server: srv, passwords } = await server();
  t.teardown(() => srv.stop());
  const [gw, pf, dc] = await Promise.all(ROLES.map((r) => as(srv.url, r, passwords[r])));
  t.teardown(async () => { for (const c of [gw, pf, dc]) await c.nc.close(); });
  const node = 'decode-host.lan-1'; // a dotted node id (two subject tokens)

  // decode serves its subjects and answers requests (allow_responses)
  for (const subj of [s.reserve(node), s.kv(node), s.control(node), s.ping(node)]) {
    dc.nc.subscribe(subj, { callback: (_e, m) => void m.respond(`ack ${subj}`) });
  }
  const tokens = received(gw.nc, s.tokens('req-1'));
  const heartbeats = received(gw.nc, s.heartbeat);
  const prefillBeats = received(gw.nc, s.prefillHeartbeat);
  const gatewayBeats = received(dc.nc, s.gatewayHeartbeat);
  const cancels = received(pf.nc, s.prefillCancel);
  await Promise.all([gw.nc.flush(), pf.nc.flush(), dc.nc.flush()]);

  t.is((await gw.nc.request(s.reserve(node), 'r', { timeout: 2000 })).string(), `ack ${s.reserve(node)}`);
  t.is((await gw.nc.request(s.ping(node), 'p', { timeout: 2000 })).string(), `ack ${s.ping(node)}`);
  t.is((await gw.nc.request(s.control(node), 'c', { timeout: 2000 })).string(), `ack ${s.control(node)}`);
  t.is((await pf.nc.request(s.kv(node), 'k', { timeout: 2000 })).string(), `ack ${s.kv(node)}`);
  t.is((await pf.nc.request(s.control(node), 'd', { timeout: 2000 })).string(), `ack ${s.control(node)}`);
  dc.nc.publish(s.tokens('req-1'), 'tok');
  dc.nc.publish(s.heartbeat, 'hb');
  pf.nc.publish(s.prefillHeartbeat, 'phb');
  gw.nc.publish(s.gatewayHeartbeat, 'ghb');
  gw.nc.publish(s.prefillCancel, 'cancel');
  await Promise.all([gw.nc.flush(), pf.nc.flush(), dc.nc.flush()]);
  await settle();
  t.deepEqual([tokens.got, heartbeats.got, prefillBeats.got, gatewayBeats.got, cancels.got], [['tok'], ['hb'], ['phb'], ['ghb'], ['cancel']]);
  t.deepEqual([...gw.errors, ...pf.errors, ...dc.errors], []);
});

test('nats auth - the gateway cannot publish tokens or decode heartbeats, nor read KV; decode cannot read tokens', async (t) => {
  const { server: srv, passwords } = await server();
  t.teardown(() => srv.stop());
  const [gw, pf, dc] = await Promise.all(ROLES.map((r) => as(srv.url, r, passwords[r])));
  const gw2 = await as(srv.url, 'gateway', passwords.gateway); // the one a forged token would reach
  t.teardown(async () => { for (const c of [gw, gw2, pf, dc]) await c.nc.close(); });

  const logged: { obj: object; msg: string }[] = [];
  logNatsErrors(gw.nc, { warn: (obj, msg) => void logged.push({ obj, msg }) }); // what the services log
  const tokens = received(gw2.nc, s.tokens('req-2'));
  const heartbeats = received(gw2.nc, s.heartbeat);
  const kv = received(dc.nc, s.kv('n1'));
  await gw2.nc.flush();
  await dc.nc.flush();

  gw.nc.publish(s.tokens('req-2'), 'forged by the gateway');
  gw.nc.publish(s.heartbeat, 'forged heartbeat');
  gw.nc.publish(s.kv('n1'), 'kv from the gateway');
  pf.nc.publish(s.tokens('req-2'), 'forged by prefill');
  await gw.nc.flush();
  await pf.nc.flush();
  await settle();
  t.deepEqual([tokens.got, heartbeats.got, kv.got], [[], [], []]);
  const denied = (errs: Error[]) => errs.map((e) => (e instanceof errors.PermissionViolationError ? `${e.operation} ${e.subject}` : `${e.name}: ${e.message}`)).sort();
  t.deepEqual(denied(gw.errors), [`publish ${s.heartbeat}`, `publish ${s.kv('n1')}`, `publish ${s.tokens('req-2')}`].sort());
  t.deepEqual(denied(pf.errors), [`publish ${s.tokens('req-2')}`]);
  t.deepEqual(logged.find((l) => l.msg.includes(s.tokens('req-2')))?.obj, { error: 'PermissionViolationError', operation: 'publish', subject: s.tokens('req-2') });

  // subscriptions outside a role's permissions are refused: the subscription closes with the error
  const snoopKv = gw.nc.subscribe(s.kv('n1'));
  const snoopTokens = dc.nc.subscribe(s.tokens('req-2'));
  await gw.nc.flush();
  await dc.nc.flush();
  const closedWith = async (p: Promise<void | Error>) => {
    const e = await Promise.race([p, new Promise<string>((r) => setTimeout(() => r('still open'), 2000))]);
    return e instanceof errors.PermissionViolationError ? `${e.operation} ${e.subject}` : String(e);
  };
  t.is(await closedWith(snoopKv.closed), `subscription ${s.kv('n1')}`);
  t.is(await closedWith(snoopTokens.closed), `subscription ${s.tokens('req-2')}`);

  // the same subjects still carry the real traffic: the subscriptions above were live
  dc.nc.publish(s.tokens('req-2'), 'real');
  await dc.nc.flush();
  await settle();
  t.deepEqual(tokens.got, ['real']);
});

test('nats auth - a wrong password is refused at connect, and the error holds no secret', async (t) => {
  const { server: srv, passwords } = await server();
  t.teardown(() => srv.stop());
  const err = await t.throwsAsync(as(srv.url, 'gateway', 'wrong-secret-123'));
  t.regex(`${err!.name}: ${err!.message}`, /authorization/i);
  t.false(`${err!.message}${err!.stack}`.includes('wrong-secret-123'));
  t.truthy(passwords.gateway);
});

test('nats auth env - combinations are checked, naming the variable; secrets never echoed', (t) => {
  const check = (e: Record<string, string>) => {
    try {
      natsAuthFromEnv(parseEnv(NATS_AUTH_ENV, e));
      return null;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return { variables: [...err.variables], message: err.message };
    }
  };
  t.deepEqual(check({ NATS_PASSWORD: 'secret-pw' })?.variables, ['NATS_PASSWORD']);
  t.deepEqual(check({ NATS_USER: 'gateway' })?.variables, ['NATS_USER']);
  t.deepEqual(check({ NATS_USER: 'gateway', NATS_PASSWORD: 'secret-pw', NATS_TOKEN: 'secret-token' })?.variables, ['NATS_TOKEN']);
  t.deepEqual(check({ NATS_TLS_CERT: CONF_PATH })?.variables, ['NATS_TLS_KEY']);
  t.deepEqual(check({ NATS_TLS_CA: '/nonexistent/ca.pem' })?.variables, ['NATS_TLS_CA']);
  const seed = check({ NATS_NKEY_SEED: 'SUnot-a-seed-secret' });
  t.deepEqual(seed?.variables, ['NATS_NKEY_SEED']);
  t.false(seed!.message.includes('not-a-seed-secret'), seed!.message);
  for (const m of [check({ NATS_PASSWORD: 'secret-pw' }), check({ NATS_USER: 'u', NATS_PASSWORD: 'secret-pw', NATS_TOKEN: 'secret-token' })]) {
    t.false(/secret-pw|secret-token/.test(m!.message), m!.message);
  }
  t.is(check({}), null);
  t.is(natsAuthFromEnv(parseEnv(NATS_AUTH_ENV, {})), undefined); // nothing set: no options
  t.deepEqual(natsConnectOptions(undefined), {});
  const auth = natsAuthFromEnv(parseEnv(NATS_AUTH_ENV, { NATS_TOKEN: 'secret-token', NATS_TLS_CA: CONF_PATH }));
  t.deepEqual(natsConnectOptions(auth), { token: 'secret-token', tls: { caFile: CONF_PATH } });
  t.false(JSON.stringify({ auth }).includes('secret-token')); // a settings object logged whole shows only the way
});

const CONF_PATH = fileURLToPath(new URL('../../../../../infra/nats-server.conf', import.meta.url));

test('nats auth - an nkey user connects with NATS_NKEY_SEED; a token user with NATS_TOKEN', async (t) => {
  const kp = nkeys.createUser();
  const seed = new TextDecoder().decode(kp.getSeed());
  const srv = await startNatsServer({
    config: `authorization { users = [ { nkey: ${kp.getPublicKey()}, permissions: { publish: "lw.>", subscribe: "lw.>" } } ] }`,
  });
  t.teardown(() => srv.stop());
  const nc = await connect({ servers: srv.url, ...natsConnectOptions(natsAuthFromEnv(parseEnv(NATS_AUTH_ENV, { NATS_NKEY_SEED: seed }))) });
  await nc.flush();
  await nc.close();
  const other = new TextDecoder().decode(nkeys.createUser().getSeed());
  await t.throwsAsync(connect({ servers: srv.url, ...natsConnectOptions(natsAuthFromEnv(parseEnv(NATS_AUTH_ENV, { NATS_NKEY_SEED: other }))) }), { message: /authorization/i });

  const tok = await startNatsServer({ config: 'authorization { token: "tok-secret-1" }' });
  t.teardown(() => tok.stop());
  const nc2 = await connect({ servers: tok.url, ...natsConnectOptions(natsAuthFromEnv(parseEnv(NATS_AUTH_ENV, { NATS_TOKEN: 'tok-secret-1' }))) });
  await nc2.flush();
  await nc2.close();
  await t.throwsAsync(connect({ servers: tok.url }), { message: /authorization/i });
});

test('nats auth - TLS: NATS_TLS_CA verifies the server, NATS_TLS_CERT/KEY pass its client check', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'latentwire-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=test-ca');
  // nats.js checks a server reached by IP address against the name `localhost` (a host name: that name), hence both
  for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(f(`${name}.ext`), `${ext}\n`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
  }
  const srv = await startNatsServer({
    config: `tls { cert_file: "${f('server.pem')}", key_file: "${f('server.key')}", ca_file: "${f('ca.pem')}", verify: true }`,
  });
  t.teardown(() => srv.stop());
  const url = srv.url.replace('nats://', 'tls://');
  const opts = (e: Record<string, string>) => natsConnectOptions(natsAuthFromEnv(parseEnv(NATS_AUTH_ENV, e)));
  const nc = await connect({ servers: url, ...opts({ NATS_TLS_CA: f('ca.pem'), NATS_TLS_CERT: f('client.pem'), NATS_TLS_KEY: f('client.key') }) });
  await nc.flush();
  t.true(nc.info?.tls_required ?? false);
  await nc.close();
  // no client certificate: the server's verify refuses it; no CA: the client refuses the server's certificate
  await t.throwsAsync(connect({ servers: url, ...opts({ NATS_TLS_CA: f('ca.pem') }), reconnect: false }));
  await t.throwsAsync(connect({ servers: url, ...opts({ NATS_TLS_CERT: f('client.pem'), NATS_TLS_KEY: f('client.key') }), reconnect: false }));
});
