export {
  kvQuantize, kvQuantizeShader, kvAppend, kvAppendEmbed, kvAppendRowWgsl, KV_APPEND_MAX_POOLS, type KvQuantizeArgs, type KvAppendArgs, type KvAppendEmbed, type KvRowWgsl,
} from './kv-quantize.js';
export { kvDequantize, kvDequantizeShader, type KvDequantizeArgs } from './kv-dequantize.js';
export { quantizeLatentRowsCpu, dequantizeLatentRowsCpu, latentScale, INV_E4M3_MAX } from './latent-row-cpu.js';
