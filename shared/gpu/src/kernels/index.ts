// Kernels shared by the prefill and decode roles. Each is a pure function returning a KernelProgram.
export * from './weight-dtype.js';
export { rmsNorm, type RmsNormArgs } from './rms-norm/rms-norm.js';
export { embedding, type EmbeddingArgs } from './embedding/embedding.js';
export { rope, type RopeArgs } from './rope/rope.js';
export { argmax } from './argmax/argmax.js';
export { fillRandom } from './fill-random/fill-random.js';
export type { GemvConfig } from './matmul/gemv.js';
export { fusedGemv, FUSED_GEMV_MAX_M, type FusedGemvArgs, type FusedGemvOutput } from './matmul/gemv-fused.js';
export { matmul, matmulPrograms, matmulPlan, GEMV_MAX_M, GEMV_MMA_MAX_M, MMA_TILES, type MatmulArgs, type KSplit, type MatmulLimits, type MatmulVariant, type GemmTileName, type MmaTileName } from './matmul/matmul.js';
export { siluMul, type SiluMulArgs } from './silu-mul/silu-mul.js';
export { mlaPrefillAttention, mlaPrefillTiles, type MlaPrefillAttentionArgs } from './mla-prefill-attention/mla-prefill-attention.js';
export * from './moe/index.js';
export * from './kv-quantize/index.js';
export * from './sample/index.js';
