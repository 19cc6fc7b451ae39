// The HTTP layer's environment variables, parsed once at start.
import { env, parseEnv } from '@latentwire/protocol';
import { DEFAULT_CHAT_MAX_TOKENS } from './generation-params.js';

export const HTTP_ENV = {
  /** The model id clients send and /v1/models lists; default: the model folder's name. */
  SERVED_MODEL_NAME: env.optionalStr(),
  GATEWAY_HOST: env.str('0.0.0.0'),
  GATEWAY_PORT: env.int(8000, 0, 65535),
  /** max_tokens of a chat request that gives none (completions default to 16, as OpenAI's). */
  DEFAULT_MAX_TOKENS: env.int(DEFAULT_CHAT_MAX_TOKENS, 1),
};

export interface HttpSettings {
  readonly servedModelName: string | undefined;
  readonly host: string;
  readonly port: number;
  readonly defaultMaxTokens: number;
}

export function httpSettingsFromEnv(e: NodeJS.ProcessEnv = process.env): HttpSettings {
  const v = parseEnv(HTTP_ENV, e);
  return Object.freeze({ servedModelName: v.SERVED_MODEL_NAME, host: v.GATEWAY_HOST, port: v.GATEWAY_PORT, defaultMaxTokens: v.DEFAULT_MAX_TOKENS });
}
