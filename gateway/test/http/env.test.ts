// The HTTP layer's environment variables.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@latentwire/protocol';
import test from 'ava';
import { httpSettingsFromEnv } from '../../src/index.js';

test('env - defaults, a served model name, and a clear error for a bad port', (t) => {
  t.like(httpSettingsFromEnv({}), {
    servedModelName: undefined, host: '0.0.0.0', port: 8000, defaultMaxTokens: 1024,
    maxBodyBytes: undefined, bodyBytesPerToken: 16, maxInflationRatio: 100, tokenizerThreads: 2, requestTimeoutMs: 30_000, headersTimeoutMs: 10_000,
    apiAccess: { open: true }, opsAccess: { open: true },
  });
  t.like(httpSettingsFromEnv({ SERVED_MODEL_NAME: 'deepseek-ai/DeepSeek-V3', GATEWAY_PORT: '9000', GATEWAY_HOST: '127.0.0.1' }), {
    servedModelName: 'deepseek-ai/DeepSeek-V3',
    host: '127.0.0.1',
    port: 9000,
    defaultMaxTokens: 1024,
  });
  t.true(Object.isFrozen(httpSettingsFromEnv({})));
  t.throws(() => httpSettingsFromEnv({ GATEWAY_PORT: 'eighty' }), { instanceOf: ConfigError, message: /GATEWAY_PORT/ });
});

test('env - limits: MAX_BODY_BYTES=0 means derived, headers timeout at most the request timeout', (t) => {
  const s = httpSettingsFromEnv({ MAX_BODY_BYTES: '1000000', REQUEST_TIMEOUT_MS: '2000', HEADERS_TIMEOUT_MS: '5000', TOKENIZER_THREADS: '3' });
  t.like(s, { maxBodyBytes: 1_000_000, requestTimeoutMs: 2000, headersTimeoutMs: 2000, tokenizerThreads: 3 });
  t.throws(() => httpSettingsFromEnv({ TOKENIZER_THREADS: '0' }), { instanceOf: ConfigError, message: /TOKENIZER_THREADS/ });
});

test('env - API keys from API_KEYS and API_KEYS_FILE; /metrics follows them unless METRICS_API_KEY or METRICS_PUBLIC', (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'lw-keys-')), 'keys');
  writeFileSync(file, '# operators\nkey-c\n\n  key-d  \n');
  const s = httpSettingsFromEnv({ API_KEYS: 'key-a, key-b', API_KEYS_FILE: file });
  if (s.apiAccess.open) return t.fail('API keys set, yet the API is open');
  const keys = s.apiAccess.keys;
  t.deepEqual(['key-a', 'key-b', 'key-c', 'key-d', 'key-e', '# operators'].map((k) => keys.accepts(k)), [true, true, true, true, false, false]);
  t.is(s.opsAccess, s.apiAccess);
  // The settings print no key (e.g. if someone logs them).
  t.false(/key-[abcd]/.test(JSON.stringify(s)));
  const m = httpSettingsFromEnv({ API_KEYS: 'key-a', METRICS_API_KEY: 'scrape' });
  if (m.opsAccess.open) return t.fail('METRICS_API_KEY set, yet /metrics is open');
  t.true(m.opsAccess.keys.accepts('scrape'));
  t.false(m.opsAccess.keys.accepts('key-a'));
  t.true(httpSettingsFromEnv({ API_KEYS: 'key-a', METRICS_PUBLIC: '1' }).opsAccess.open);
  const err = t.throws(() => httpSettingsFromEnv({ API_KEYS_FILE: join(file, 'nope') }), { instanceOf: ConfigError, message: /API_KEYS_FILE/ });
  t.false(err!.message.includes('key-c'));
});
