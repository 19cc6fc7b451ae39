// The HTTP layer's environment variables, parsed once at start.
import { readFileSync } from 'node:fs';
import { ConfigError, env, MAX_WIRE_CHOICES, parseEnv, type EnvOf } from '@latentwire/protocol';
import { accessFor, ApiKeySet, type Access } from './api-keys.js';
import { DEFAULT_MAX_CHOICES } from './choices.js';
import { DEFAULT_CHAT_MAX_TOKENS } from './generation-params.js';
import { DEFAULT_LIMITS } from './limits.js';

export const HTTP_ENV = {
  SERVED_MODEL_NAME: env.optionalStr().meta({ description: 'the model id of `/v1/models` and requests', shown: "the folder's name" }),
  GATEWAY_HOST: env.str('0.0.0.0').describe('HTTP listen address'),
  GATEWAY_PORT: env.int(8000, 0, 65535).describe('HTTP listen port (also serves `GET /metrics`)'),
  DEFAULT_MAX_TOKENS: env.int(DEFAULT_CHAT_MAX_TOKENS, 1).describe(
    '`max_tokens` of a chat request that gives none (completions default to 16, as OpenAI\'s): pages are reserved for ' +
    'prompt + `max_tokens`, so "all that fits" would let one request hold a whole node',
  ),
  MAX_N: env.int(DEFAULT_MAX_CHOICES, 1, MAX_WIRE_CHOICES).describe(
    'most choices one request may ask for (`n`, and `best_of` candidates); they share the prompt\'s prefill and pages, ' +
    'but each holds a batch slot and pages for its own `max_tokens`',
  ),
  MAX_BODY_BYTES: env.int(0).describe(
    'largest request body in bytes, compressed and inflated alike (413 past it); 0: `max_position_embeddings` × ' +
    '`BODY_BYTES_PER_TOKEN` + 64 KiB, room for a prompt that fills the context',
  ),
  BODY_BYTES_PER_TOKEN: env.int(DEFAULT_LIMITS.bodyBytesPerToken, 1).describe(
    'JSON bytes allowed per token of context when `MAX_BODY_BYTES` is 0 (English is ~4 bytes a token, `\\u` escapes of CJK ~12)',
  ),
  MAX_INFLATION_RATIO: env.int(DEFAULT_LIMITS.maxInflationRatio, 1).describe(
    'a gzip, deflate or br body inflating to more than this many times its compressed size (past its first 64 KiB) is refused (413)',
  ),
  TOKENIZER_THREADS: env.int(DEFAULT_LIMITS.tokenizerThreads, 1, 256).describe(
    'worker threads that render chat templates and tokenize prompts, off the event loop (each loads the tokenizer once)',
  ),
  REQUEST_TIMEOUT_MS: env.int(DEFAULT_LIMITS.requestTimeoutMs, 100).describe(
    'a client must send its whole request (headers and body) within this (408 and the connection closed); streaming the answer is not limited',
  ),
  SHUTDOWN_TIMEOUT_MS: env.int(30_000, 0, 3_600_000).describe('on SIGTERM/SIGINT new requests get 503 and running streams may finish this long; the rest are then cut off and cancelled on the nodes'),
  HEADERS_TIMEOUT_MS: env.int(DEFAULT_LIMITS.headersTimeoutMs, 100).describe('a client must send its request headers within this (at most `REQUEST_TIMEOUT_MS`)'),
  API_KEYS: env.list([]).describe(
    'keys accepted as `Authorization: Bearer <key>` on `/v1/*`, comma-separated; with none here nor in `API_KEYS_FILE` the API is open (a warning at start)',
  ),
  API_KEYS_FILE: env.optionalStr().describe('file of further API keys, one a line (blank lines and `#` comments skipped)'),
  METRICS_API_KEY: env.optionalStr().describe('if set, `GET /metrics` and `GET /v1/cluster` (every operator route) take this key and no other'),
  METRICS_PUBLIC: env.bool(false).describe('`GET /metrics` and `GET /v1/cluster` open even when API keys are set (a scraper on a private network); otherwise they take an API key'),
};

export interface HttpSettings {
  readonly servedModelName: string | undefined;
  readonly host: string;
  readonly port: number;
  readonly defaultMaxTokens: number;
  /** MAX_N. */
  readonly maxChoices: number;
  /** undefined: derived from the model's context (MAX_BODY_BYTES=0). */
  readonly maxBodyBytes: number | undefined;
  readonly bodyBytesPerToken: number;
  readonly maxInflationRatio: number;
  readonly tokenizerThreads: number;
  readonly requestTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly headersTimeoutMs: number;
  /** Who may call /v1/*. */
  readonly apiAccess: Access;
  /** Who may call GET /metrics. */
  readonly opsAccess: Access;
}

export function httpSettingsFromEnv(e: NodeJS.ProcessEnv = process.env): HttpSettings {
  return httpSettings(parseEnv(HTTP_ENV, e));
}

export function httpSettings(v: EnvOf<typeof HTTP_ENV>): HttpSettings {
  const apiKeys = ApiKeySet.of([...v.API_KEYS, ...(v.API_KEYS_FILE === undefined ? [] : readKeyFile(v.API_KEYS_FILE))]);
  const apiAccess = accessFor(apiKeys);
  const opsAccess: Access =
    v.METRICS_API_KEY !== undefined ? accessFor(ApiKeySet.of([v.METRICS_API_KEY])) : v.METRICS_PUBLIC ? { open: true } : apiAccess;
  return Object.freeze({
    servedModelName: v.SERVED_MODEL_NAME,
    host: v.GATEWAY_HOST,
    port: v.GATEWAY_PORT,
    defaultMaxTokens: v.DEFAULT_MAX_TOKENS,
    maxChoices: v.MAX_N,
    maxBodyBytes: v.MAX_BODY_BYTES === 0 ? undefined : v.MAX_BODY_BYTES,
    bodyBytesPerToken: v.BODY_BYTES_PER_TOKEN,
    maxInflationRatio: v.MAX_INFLATION_RATIO,
    tokenizerThreads: v.TOKENIZER_THREADS,
    requestTimeoutMs: v.REQUEST_TIMEOUT_MS,
    shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT_MS,
    headersTimeoutMs: Math.min(v.HEADERS_TIMEOUT_MS, v.REQUEST_TIMEOUT_MS),
    apiAccess,
    opsAccess,
  });
}

function readKeyFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    // The message names the file, never its contents.
    throw ConfigError.of('API_KEYS_FILE', file, `cannot be read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}
