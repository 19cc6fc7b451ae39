export { headMatmul, headMatmulShader, headMatmulMmaShader, HEAD_MATMUL_APPEND_MAX_BATCH, HEAD_MATMUL_MMA_MIN_BATCH, type HeadMatmulArgs } from './head-matmul.js';
