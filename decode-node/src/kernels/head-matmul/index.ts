export { headMatmul, headMatmulShader, HEAD_MATMUL_MAX_SPLITS, type HeadMatmulArgs } from './head-matmul.js';
