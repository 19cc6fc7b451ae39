// The gateway service as operators run it (node dist/src/main.js): cluster settings from the environment,
// start-up against real NATS and Redis, GET /metrics, a clean stop on SIGTERM, and a bad variable named.
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '@latentwire/protocol';
import { clusterSettingsFromEnv } from '../../src/index.js';
import { servers, stopServers } from './helpers/servers.js';

test.after.always(stopServers);

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

test('main - cluster settings: defaults, frozen, and errors that name the variable', (t) => {
  const { gatewayId, ...rest } = clusterSettingsFromEnv({});
  t.deepEqual(rest, {
    natsServers: ['nats://127.0.0.1:4222'], redisUrl: 'redis://127.0.0.1:6379', subjectPrefix: 'lw', heartbeatTimeoutMs: 3000, reserveTimeoutMs: 2000,
    admissionQueueMax: 256, admissionWaitMs: 5000, requestIdleTimeoutMs: 60_000, prefillAttempts: 3, prefillBackoffMs: 250,
    prefillQueueMaxWaitMs: 30_000, gatewayHeartbeatMs: 1000, nodeProbeTimeoutMs: 1000, cancelAckTimeoutMs: 500, cancelAttempts: 5, prefillSilenceMs: 10_000, prefillResumes: 1,
    resumeReplayMaxTokens: 1024,
  });
  t.regex(gatewayId!, /^gw-.+-\d+-[0-9a-f]{8}$/);
  t.not(clusterSettingsFromEnv({}).gatewayId, gatewayId, 'a new id per start');
  t.is(clusterSettingsFromEnv({ GATEWAY_ID: 'gw-eu.1' }).gatewayId, 'gw-eu.1');
  t.throws(() => clusterSettingsFromEnv({ GATEWAY_ID: 'gw 1' }), { instanceOf: ConfigError, message: /GATEWAY_ID/ });
  t.throws(() => clusterSettingsFromEnv({ PREFILL_QUEUE_MAX_WAIT_MS: '-1' }), { instanceOf: ConfigError, message: /PREFILL_QUEUE_MAX_WAIT_MS/ });
  t.throws(() => clusterSettingsFromEnv({ CANCEL_ATTEMPTS: '0' }), { instanceOf: ConfigError, message: /CANCEL_ATTEMPTS/ });
  t.throws(() => clusterSettingsFromEnv({ RESUME_REPLAY_MAX_TOKENS: String(2 ** 16 + 1) }), { instanceOf: ConfigError, message: /RESUME_REPLAY_MAX_TOKENS/ });
  t.is(clusterSettingsFromEnv({ RESUME_REPLAY_MAX_TOKENS: '0' }).resumeReplayMaxTokens, 0);
  t.true(Object.isFrozen(clusterSettingsFromEnv({})));
  t.is(clusterSettingsFromEnv({ ADMISSION_QUEUE_MAX: '0', NATS_SUBJECT_PREFIX: 'prod.eu' }).admissionQueueMax, 0);
  t.throws(() => clusterSettingsFromEnv({ RESERVE_TIMEOUT_MS: 'soon' }), { instanceOf: ConfigError, message: /RESERVE_TIMEOUT_MS/ });
  t.throws(() => clusterSettingsFromEnv({ PREFILL_ATTEMPTS: '0' }), { instanceOf: ConfigError, message: /PREFILL_ATTEMPTS/ });
  t.throws(() => clusterSettingsFromEnv({ REDIS_URL: 'http://localhost' }), { instanceOf: ConfigError, message: /REDIS_URL/ });
  t.throws(() => clusterSettingsFromEnv({ NATS_SUBJECT_PREFIX: 'lw.*' }), { instanceOf: ConfigError, message: /NATS_SUBJECT_PREFIX/ });
});

test.serial('main - starts against NATS and Redis, serves /health and /metrics, stops cleanly on SIGTERM', async (t) => {
  const { natsUrl, redisUrl } = await servers();
  const env = { ...process.env, NATS_URL: natsUrl, REDIS_URL: redisUrl, NATS_SUBJECT_PREFIX: 'test.main', GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: '0' };
  const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let stdout = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /"url":"([^"]+)"/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${stdout}`)));
  });
  const health = await (await fetch(`${url}/health`)).json();
  t.like(health, { status: 'ok', model: 'tiny-deepseek-v2', max_request_tokens: null }); // no decode node yet
  const metrics = await fetch(`${url}/metrics`);
  t.is(metrics.status, 200);
  const text = await metrics.text();
  t.regex(text, /latentwire_gateway_decode_nodes 0/);
  t.regex(text, /process_cpu_user_seconds_total/);

  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number];
  t.is(code, 0);
  t.regex(stdout, /"msg":"stopped"/);
});

test('main - the gateway code never loads webgpu', async (t) => {
  // A resolve hook that fails any import of `webgpu`, registered before the gateway's modules load.
  const hook = `export async function resolve(s, c, next) { if (s === 'webgpu') throw new Error('webgpu imported by ' + c.parentURL); return next(s, c); }`;
  const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
  const index = new URL('../../src/index.js', import.meta.url).href;
  const child = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '-e', `await import(${JSON.stringify(index)})`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  t.is(code, 0, stderr);
});
