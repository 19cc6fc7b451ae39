export { headMatmul, headMatmulShader, type HeadMatmulArgs } from './head-matmul.js';
