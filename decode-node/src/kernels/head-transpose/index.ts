export { headTranspose, headTransposeBytes, headTransposeShader, type HeadTransposeArgs } from './head-transpose.js';
