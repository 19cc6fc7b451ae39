// The variables every service shares, defined once and composed into each service's schema with pickEnv:
// NATS servers (always a list), Redis, the model folder (one default), the log level and the subject prefix;
// and NATS credentials and TLS (NATS_AUTH_ENV, nats-auth.ts).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { DEFAULT_SUBJECT_PREFIX, wireSubjects } from '../wire/subjects.js';
import { env } from './env.js';
import { NATS_AUTH_ENV } from './nats-auth.js';

/** The repo's tiny DeepSeek-V2 fixture: the one default of MODEL_DIR (this file is shared/protocol/dist/src/config/). */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../../../../models/tiny-deepseek-v2', import.meta.url));

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Comma-separated URLs, each with one of `protocols`; at least one. */
function urlList(def: string, protocols: readonly string[]) {
  const expected = `expected comma-separated ${protocols.map((p) => `${p}//host:port`).join(' or ')} URLs`;
  return z
    .string()
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .refine((v) => v.length > 0, expected)
    .refine((v) => v.every((u) => URL.canParse(u) && protocols.includes(new URL(u).protocol)), expected)
    .default([def]);
}

export const COMMON_ENV = {
  NATS_URL: urlList('nats://127.0.0.1:4222', ['nats:', 'tls:']).describe('NATS server(s), comma-separated'),
  REDIS_URL: z
    .string()
    .refine((u) => URL.canParse(u) && ['redis:', 'rediss:'].includes(new URL(u).protocol), 'expected redis://host:port or rediss://host:port')
    .default('redis://127.0.0.1:6379')
    .describe('Redis holding the BullMQ prefill queue; `redis://:password@host:port` for a password (never logged), `rediss://` for TLS'),
  MODEL_DIR: env
    .str(DEFAULT_MODEL_DIR)
    .transform((d) => resolve(d))
    .refine((d) => existsSync(join(d, 'config.json')), 'expected a Hugging Face model folder (no config.json there)')
    .meta({ description: 'Hugging Face model folder; every node must serve the same fingerprint', shown: 'models/tiny-deepseek-v2' }),
  LOG_LEVEL: env.oneOf(LOG_LEVELS, 'info').describe('pino level'),
  NATS_SUBJECT_PREFIX: env
    .str(DEFAULT_SUBJECT_PREFIX)
    .superRefine((p, ctx) => {
      try {
        wireSubjects(p);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    })
    .describe('first token(s) of every subject and of the queue name (one per cluster)'),
  ...NATS_AUTH_ENV,
};
