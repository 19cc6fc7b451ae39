export {
  moeRouting, moeRoute, moeRouterLogits, moeRouteSelect, routeLogitsShader, routeSelectShader,
  type MoeRouting, type MoeRouteArgs, type MoeRouterLogitsArgs, type MoeRouteSelectArgs,
} from './moe-route.js';
export {
  moeExperts, MOE_GEMM_VARIANTS, ROUTER_GEMM_MIN_TOKENS, moeRouteFused, MOE_ROUTE_FUSED_MAX_TOKENS, moeRouteFusedShader, moeSelectGroup, moeSelectGroupShader, moeScratchBytes, moeGemmVariant, MOE_GATE_UP_SPLITS_MAX, moeGroup, moeExpertGemms, moeCombine,
  moeGroupShader, moeGateUpShader, moeDownShader, moeCombineShader,
  type MoeDims, type MoeExpertChunk, type MoeExpertWeights, type MoeScratch, type MoeScratchBytes, type MoeGemmVariant,
  type MoeExpertsArgs, type MoeRouteFusedArgs, type MoeSelectGroupArgs, type MoeGroupArgs, type MoeExpertGemmArgs, type MoeCombineArgs,
} from './moe-experts.js';
