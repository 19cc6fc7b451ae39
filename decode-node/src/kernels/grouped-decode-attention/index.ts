export {
  groupedDecodeAttention, groupedDecodeAttentionShader, groupedDecodeMergeShader, groupedDecodePlan, chooseDecodeSplits,
  groupedDecodeScratchBytes, groupedDecodeWorkgroupBytes, groupedDecodeLayout, groupedDecodeCost, MAX_POOL_BINDINGS,
  type GroupedDecodeVariant, type GroupedDecodeAttentionArgs, type DecodeWorkgroupLimits,
} from './grouped-decode-attention.js';
