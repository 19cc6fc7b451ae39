// Public API of model folder loading (everything before GPU upload).
export * from './errors.js';
export * from './mla-config.js';
export * from './safetensors.js';
export { normalizeConfig, loadConfig } from './config.js';
export { DEEPSEEK_V2_DEFAULTS, DEEPSEEK_V3_DEFAULTS, type RawDefaults } from './config-defaults.js';
export type { RopeSettings } from './rope-config.js';
export * from './rope-frequencies.js';
export * from './tensor-names.js';
export * from './tensor-manifest.js';
export * from './weight-slices.js';
export * from './tokenizer.js';
export * from './detokenizer.js';
export * from './chat-template.js';
export * from './generation-config.js';
export * from './model-folder.js';
export { readJsonFile } from './json-file.js';
export * from './numbers/fp8.js';
export * from './numbers/half.js';
