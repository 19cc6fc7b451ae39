// The HTTP layer's environment variables, parsed once at start.
import { env, parseEnv, type EnvOf } from '@latentwire/protocol';
import { DEFAULT_CHAT_MAX_TOKENS } from './generation-params.js';

export const HTTP_ENV = {
  SERVED_MODEL_NAME: env.optionalStr().meta({ description: 'the model id of `/v1/models` and requests', shown: "the folder's name" }),
  GATEWAY_HOST: env.str('0.0.0.0').describe('HTTP listen address'),
  GATEWAY_PORT: env.int(8000, 0, 65535).describe('HTTP listen port (also serves `GET /metrics`)'),
  DEFAULT_MAX_TOKENS: env.int(DEFAULT_CHAT_MAX_TOKENS, 1).describe(
    '`max_tokens` of a chat request that gives none (completions default to 16, as OpenAI\'s): pages are reserved for ' +
    'prompt + `max_tokens`, so "all that fits" would let one request hold a whole node',
  ),
};

export interface HttpSettings {
  readonly servedModelName: string | undefined;
  readonly host: string;
  readonly port: number;
  readonly defaultMaxTokens: number;
}

export function httpSettingsFromEnv(e: NodeJS.ProcessEnv = process.env): HttpSettings {
  return httpSettings(parseEnv(HTTP_ENV, e));
}

export function httpSettings(v: EnvOf<typeof HTTP_ENV>): HttpSettings {
  return Object.freeze({ servedModelName: v.SERVED_MODEL_NAME, host: v.GATEWAY_HOST, port: v.GATEWAY_PORT, defaultMaxTokens: v.DEFAULT_MAX_TOKENS });
}
