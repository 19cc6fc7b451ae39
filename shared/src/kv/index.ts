// The latent KV cache contract shared by prefill (writer) and decode (reader): dtypes, FP8 codecs, page layout.
export * from './kv-dtype.js';
export * from './fp8.js';
export { fp8Wgsl } from './fp8-wgsl.js';
export * from './latent-layout.js';
