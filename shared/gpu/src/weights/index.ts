export type { ModelWeights, LayerWeights, MoeWeights, DenseWeights, MlpWeights, ExpertChunk, QueryWeights } from './model-weights.js';
export { uploadCheckpoint } from './upload-checkpoint.js';
export { syntheticWeights } from './synthetic-weights.js';
export { expertChunks, type BuildOptions } from './build-weights.js';
export { copySharedExperts } from './shared-experts.js';
export { checkpointBytes, loadProgressReporter, type LoadProgress, type OnLoadProgress, type ProgressLog, type ProgressReporterOptions } from './load-progress.js';
