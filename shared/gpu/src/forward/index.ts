// The model forward both roles run: ModelForward builds the per-layer program sequence, the caller supplies
// the rows, the scratch and the attention block.
export { ModelForward, type AttentionBlock, type ForwardPass, type RopedQueryTarget } from './model-forward.js';
export { allocForwardScratch, mlpChunkRows, type ForwardScratch } from './scratch.js';
export { mlpPrograms, moePrograms, allocMoeScratch, type MlpBuffers, type MoeBuffers, type MoeScratchBuffers } from './mlp-programs.js';
