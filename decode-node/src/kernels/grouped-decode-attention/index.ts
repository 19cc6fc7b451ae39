export {
  groupedDecodeAttention, groupedDecodeMerge, groupedDecodeAttentionShader, groupedDecodeMergeShader, groupedDecodePlan, chooseDecodeSplits, decodeSplitTarget, MAX_DECODE_SPLITS, decodeSplitsFor,
  groupedDecodeScratchBytes, groupedDecodeWorkgroupBytes, groupedDecodeLayout, groupedDecodeCost, MAX_POOL_BINDINGS,
  type GroupedDecodeVariant, type GroupedDecodeEngine, type GroupedDecodeAttentionArgs, type GroupedDecodeMergeArgs, type DecodeWorkgroupLimits,
} from './grouped-decode-attention.js';
export { mmaUnsupportedReason, MMA, type MatrixCapabilities } from './grouped-decode-attention-mma.js';
