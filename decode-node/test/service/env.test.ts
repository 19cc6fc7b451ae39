// The service's environment: defaults, and a bad value fails naming its variable.
import test from 'ava';
import { serviceSettingsFromEnv } from '../../src/service/env.js';

test('service env - defaults', (t) => {
  const s = serviceSettingsFromEnv({});
  t.deepEqual(s.natsServers, ['nats://127.0.0.1:4222']);
  t.regex(s.nodeId, new RegExp(`^decode-.+-${process.pid}$`));
  t.regex(s.modelDir, /models\/tiny-deepseek-v2$/);
  t.like(s, { subjectPrefix: 'lw', heartbeatMs: 1000, tokenFlushMs: 5, metricsPort: 0, logLevel: 'info', drainTimeoutMs: 30_000, gatewaySilenceMs: 15_000 });
  t.true(Object.isFrozen(s));
});

test('service env - values are parsed and bad ones name their variable', (t) => {
  const s = serviceSettingsFromEnv({ NATS_URL: 'nats://a:1, nats://b:2', NODE_ID: 'gpu-3.rack-1', NATS_SUBJECT_PREFIX: 'test.x', HEARTBEAT_MS: '250', TOKEN_FLUSH_MS: '0' });
  t.like(s, { nodeId: 'gpu-3.rack-1', subjectPrefix: 'test.x', heartbeatMs: 250, tokenFlushMs: 0 });
  t.deepEqual(s.natsServers, ['nats://a:1', 'nats://b:2']);
  for (const [name, value] of [
    ['HEARTBEAT_MS', 'soon'], ['HEARTBEAT_MS', '0'], ['TOKEN_FLUSH_MS', '-1'], ['NODE_ID', 'a b'], ['NODE_ID', 'a.*'],
    ['NATS_SUBJECT_PREFIX', 'lw.>'], ['METRICS_PORT', '70000'], ['LOG_LEVEL', 'loud'],
    ['DRAIN_TIMEOUT_MS', 'later'], ['DRAIN_TIMEOUT_MS', '3600001'], ['GATEWAY_SILENCE_MS', '-5'],
  ] as const) {
    const err = t.throws(() => serviceSettingsFromEnv({ [name]: value }), { name: 'ConfigError' }, `${name}=${value}`);
    t.true(err!.message.includes(`${name}=`), err!.message);
  }
});
