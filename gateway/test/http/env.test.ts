// The HTTP layer's environment variables.
import { ConfigError } from '@latentwire/protocol';
import test from 'ava';
import { httpSettingsFromEnv } from '../../src/index.js';

test('env - defaults, a served model name, and a clear error for a bad port', (t) => {
  t.deepEqual(httpSettingsFromEnv({}), { servedModelName: undefined, host: '0.0.0.0', port: 8000, defaultMaxTokens: 1024 });
  t.deepEqual(httpSettingsFromEnv({ SERVED_MODEL_NAME: 'deepseek-ai/DeepSeek-V3', GATEWAY_PORT: '9000', GATEWAY_HOST: '127.0.0.1' }), {
    servedModelName: 'deepseek-ai/DeepSeek-V3',
    host: '127.0.0.1',
    port: 9000,
    defaultMaxTokens: 1024,
  });
  t.true(Object.isFrozen(httpSettingsFromEnv({})));
  t.throws(() => httpSettingsFromEnv({ GATEWAY_PORT: 'eighty' }), { instanceOf: ConfigError, message: /GATEWAY_PORT/ });
});
