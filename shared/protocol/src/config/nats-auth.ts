// NATS credentials and TLS from the environment (part of COMMON_ENV), checked once at start, and the one place
// they become nats.js connect options (natsConnectOptions, used by every connect() in product code).
//   NATS_USER + NATS_PASSWORD | NATS_TOKEN | NATS_NKEY_SEED | NATS_CREDS_FILE   (at most one of the four ways)
//   NATS_TLS_CA, NATS_TLS_CERT + NATS_TLS_KEY                                  (files; a client cert needs its key)
// Secrets (password, token, seed) are never echoed: a refused value prints as (hidden) (SECRET_ENV), and a URL's
// user:password prints as user:*** (redactUrl).
import { existsSync, readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, type ConnectionOptions } from '@nats-io/nats-core';
import { z } from 'zod';
import { ConfigError } from './env.js';

export { redactUrl, SECRET_ENV } from './env.js';

const file = (what: string) =>
  z.string().min(1).refine((p) => existsSync(p), `expected a ${what} file (nothing there)`).optional();

export const NATS_AUTH_ENV = {
  NATS_USER: z.string().min(1).optional().describe('NATS user name (with `NATS_PASSWORD`); unset = no user/password'),
  NATS_PASSWORD: z.string().min(1).optional().describe('NATS password of `NATS_USER` (secret: never logged)'),
  NATS_TOKEN: z.string().min(1).optional().describe('NATS token, instead of a user (secret: never logged)'),
  NATS_NKEY_SEED: z
    .string()
    .regex(/^SU[A-Z2-7]{56}$/, 'expected a user nkey seed (SU followed by 56 base32 characters)')
    .optional()
    .describe('NATS user nkey seed (`SU…`), instead of a user or token (secret: never logged)'),
  NATS_CREDS_FILE: file('NATS .creds').describe('NATS credentials file (user JWT + nkey seed), instead of the above'),
  NATS_TLS_CA: file('CA certificate (PEM)').describe('CA certificate verifying the NATS server (PEM file); set for a server with a private CA'),
  NATS_TLS_CERT: file('client certificate (PEM)').describe('client certificate for NATS mutual TLS (PEM file, with `NATS_TLS_KEY`)'),
  NATS_TLS_KEY: file('client key (PEM)').describe('private key of `NATS_TLS_CERT` (PEM file)'),
};

export type NatsAuthEnv = { readonly [K in keyof typeof NATS_AUTH_ENV]?: z.infer<(typeof NATS_AUTH_ENV)[K]> };

/** How a process authenticates to NATS, checked: at most one way, each complete. No secret in its toString. */
export interface NatsAuth {
  readonly user?: string | undefined;
  readonly pass?: string | undefined;
  readonly token?: string | undefined;
  readonly nkeySeed?: string | undefined;
  readonly credsFile?: string | undefined;
  readonly tls?: { readonly caFile?: string | undefined; readonly certFile?: string | undefined; readonly keyFile?: string | undefined } | undefined;
}

/** The parsed variables as one NatsAuth (undefined when none is set), or a ConfigError naming the variable at fault (exit 2 at start). */
export function natsAuthFromEnv(v: NatsAuthEnv): NatsAuth | undefined {
  const problems: { variable: string; problem: string }[] = [];
  const bad = (variable: string, why: string) => problems.push({ variable, problem: `${variable}: ${why}` });
  if (v.NATS_PASSWORD !== undefined && v.NATS_USER === undefined) bad('NATS_PASSWORD', 'set without NATS_USER');
  if (v.NATS_USER !== undefined && v.NATS_PASSWORD === undefined) bad('NATS_USER', 'set without NATS_PASSWORD');
  const ways = (['NATS_USER', 'NATS_TOKEN', 'NATS_NKEY_SEED', 'NATS_CREDS_FILE'] as const).filter((k) => v[k] !== undefined);
  if (ways.length > 1) bad(ways[1]!, `set with ${ways[0]}: choose one way to authenticate`);
  if (v.NATS_TLS_CERT !== undefined && v.NATS_TLS_KEY === undefined) bad('NATS_TLS_KEY', 'unset while NATS_TLS_CERT is set');
  if (v.NATS_TLS_KEY !== undefined && v.NATS_TLS_CERT === undefined) bad('NATS_TLS_CERT', 'unset while NATS_TLS_KEY is set');
  if (problems.length > 0) throw new ConfigError(problems);
  if (Object.keys(NATS_AUTH_ENV).every((k) => v[k as keyof NatsAuthEnv] === undefined)) return undefined;
  const tls = v.NATS_TLS_CA !== undefined || v.NATS_TLS_CERT !== undefined
    ? { caFile: v.NATS_TLS_CA, certFile: v.NATS_TLS_CERT, keyFile: v.NATS_TLS_KEY }
    : undefined;
  const auth: NatsAuth = { user: v.NATS_USER, pass: v.NATS_PASSWORD, token: v.NATS_TOKEN, nkeySeed: v.NATS_NKEY_SEED, credsFile: v.NATS_CREDS_FILE, tls };
  // the secrets stay out of util.inspect/JSON (a settings object logged whole): only the way is shown
  return Object.freeze(Object.defineProperties({ ...auth }, {
    toJSON: { value: () => describeNatsAuth(auth), enumerable: false },
    [Symbol.for('nodejs.util.inspect.custom')]: { value: () => `NatsAuth(${describeNatsAuth(auth)})`, enumerable: false },
  }));
}

/** The way, without secrets: 'user gateway', 'token', 'nkey', 'creds <file>', 'none'; '+tls' when set. */
export function describeNatsAuth(a: NatsAuth): string {
  const way = a.user !== undefined ? `user ${a.user}` : a.token !== undefined ? 'token' : a.nkeySeed !== undefined ? 'nkey' : a.credsFile !== undefined ? `creds ${a.credsFile}` : 'none';
  return a.tls ? `${way}+tls` : way;
}

/** The nats.js connect options for `auth` (merge with servers and name): user/pass, token, an authenticator, tls. */
export function natsConnectOptions(auth: NatsAuth | undefined): Partial<ConnectionOptions> {
  if (!auth) return {};
  const o: Partial<ConnectionOptions> = {};
  if (auth.user !== undefined) Object.assign(o, { user: auth.user, pass: auth.pass });
  if (auth.token !== undefined) o.token = auth.token;
  if (auth.nkeySeed !== undefined) o.authenticator = nkeyAuthenticator(new TextEncoder().encode(auth.nkeySeed));
  if (auth.credsFile !== undefined) o.authenticator = credsAuthenticator(new Uint8Array(readFileSync(auth.credsFile)));
  if (auth.tls) {
    const tls: NonNullable<ConnectionOptions['tls']> = {};
    if (auth.tls.caFile !== undefined) tls.caFile = auth.tls.caFile;
    if (auth.tls.certFile !== undefined) tls.certFile = auth.tls.certFile;
    if (auth.tls.keyFile !== undefined) tls.keyFile = auth.tls.keyFile;
    o.tls = tls;
  }
  return o;
}

/**
 * Logs each error the NATS server reports on `nc` (until it closes): a permission violation names the operation
 * and subject (a role's user missing a permission: the message was dropped), other errors their message.
 */
export function logNatsErrors(
  nc: { status(): AsyncIterable<{ readonly type: string; readonly error?: unknown }> },
  log: { warn(obj: object, msg: string): void },
): void {
  void (async () => {
    for await (const st of nc.status()) {
      if (st.type !== 'error') continue;
      const e = st.error as { name?: string; message?: string; operation?: string; subject?: string } | undefined;
      log.warn({ error: e?.name, operation: e?.operation, subject: e?.subject }, `NATS error: ${e?.message ?? String(st.error)}`);
    }
  })().catch(() => undefined);
}
