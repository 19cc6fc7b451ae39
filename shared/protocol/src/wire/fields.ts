// Field types shared by the message schemas. Every number a peer sends is bounded, so a decoded message can
// be used for sizes and indexes without further checks.
import { z } from 'zod';
import { KV_DTYPES } from '../kv/kv-dtype.js';
import { parseLatentLayoutKey } from './layout-key.js';

export const U32_MAX = 0xffffffff;

/**
 * Request and node ids: 1-128 of [A-Za-z0-9_.:-], where dots only separate non-empty parts, because ids
 * become NATS subject tokens (no wildcards, whitespace or empty tokens).
 */
export const ID_PATTERN = /^[A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*$/;
export const ID_MAX_LENGTH = 128;
export const wireId = z
  .string()
  .min(1)
  .max(ID_MAX_LENGTH)
  .regex(ID_PATTERN, 'must be [A-Za-z0-9_.:-] with no empty dot-separated part');

export const u32 = z.number().int().min(0).max(U32_MAX);
export const positiveU32 = z.number().int().min(1).max(U32_MAX);

/** A token id (u32; the vocabulary bound is the model's business, not the wire's). */
export const tokenId = u32;
export const tokenIds = (max: number) => z.array(tokenId).max(max);

/** Printable ASCII without spaces, e.g. a model fingerprint (sha256 hex). */
export const label = z.string().min(1).max(256).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

/** Free text for people (error details); bounded, never parsed. */
export const text = (max: number) => z.string().max(max);

export const kvDtype = z.enum(KV_DTYPES);

export const layoutKey = z
  .string()
  .max(64)
  .refine((k) => parseLatentLayoutKey(k) !== undefined, 'not a latent layout key of this version');

/** Milliseconds since the Unix epoch, as Date.now() gives them (fractions allowed). */
export const msEpoch = z.number().min(0).max(8.64e15);

/** Binary fields; msgpackr decodes `bin` to a Buffer, which is a Uint8Array. */
export const bytes = z.instanceof(Uint8Array);
