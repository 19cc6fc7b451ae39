// DeepSeekMoE router on the GPU: gate logits (route-logits.wgsl) then scoring + group-limited top-k + weights
// (route-select.wgsl), exactly as transformers 5 routes:
//   - DeepseekV2Moe (greedy, group_limited_greedy): softmax scores; weights = chosen (group-masked) scores ×
//     routed_scaling_factor. transformers' V2 never renormalizes: norm_topk_prob is ignored for these methods
//     (DeepSeek's original V2 code renormalized *instead of* scaling; no released V2 checkpoint sets it).
//   - DeepseekV3MoE (noaux_tc): sigmoid scores; choice = scores + e_score_correction_bias; group score = sum of
//     the two best choice values; weights = the unbiased scores of the chosen experts, divided by (sum + 1e-20)
//     when norm_topk_prob, then × routed_scaling_factor.
// Ties go to the lower expert (and group) index; torch.topk leaves them unspecified. Experts come out sorted
// best first (transformers uses sorted=False; the order never changes the layer's output).
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings, type StorageDecl } from '../../runtime/bindings.js';
import { fillWgsl, loadWgsl } from '../../runtime/wgsl-source.js';
import type { MoeConfig, TopkMethod } from '@latentwire/model';
import { weightLoadWgsl, type GpuTensor } from '../weight-dtype.js';
import { type WeightDtype } from '@latentwire/model';
import { defineKernel } from '../../runtime/define-kernel.js';

let logitsWgsl: string | null = null;
let selectWgsl: string | null = null;
const wgsl = (file: string) => loadWgsl(new URL(file, import.meta.url));

/** What the router needs to know; build it from the model config with `moeRouting`. Compile-time for the shaders. */
export interface MoeRouting {
  readonly nExperts: number;
  /** num_experts_per_tok (k). */
  readonly topK: number;
  readonly method: TopkMethod;
  /** n_group / topk_group (1 / 1 means no grouping). */
  readonly nGroup: number;
  readonly topkGroup: number;
  /** Only noaux_tc (V3) applies it, as transformers does. */
  readonly normTopkProb: boolean;
  readonly routedScalingFactor: number;
}

/** Logits lanes per expert (route-logits.wgsl's LANES; route-fused.wgsl sums in the same order). */
export const ROUTE_LOGITS_LANES = 64;

export function moeRouting(moe: MoeConfig): MoeRouting {
  return {
    nExperts: moe.nRoutedExperts,
    topK: moe.numExpertsPerTok,
    method: moe.topkMethod,
    nGroup: moe.nGroup,
    topkGroup: moe.topkGroup,
    normTopkProb: moe.normTopkProb,
    routedScalingFactor: moe.routedScalingFactor,
  };
}

function checkRouting(r: MoeRouting): void {
  const bad = (why: string) => {
    throw new RangeError(`moe routing: ${why}`);
  };
  const E = r.nExperts;
  if (!Number.isInteger(E) || E < 1) bad(`nExperts ${E}`);
  if (!Number.isInteger(r.topK) || r.topK < 1 || r.topK > E) bad(`topK ${r.topK} with ${E} experts`);
  if (r.method !== 'greedy') {
    if (!Number.isInteger(r.nGroup) || r.nGroup < 1 || E % r.nGroup !== 0) bad(`nGroup ${r.nGroup} does not divide ${E} experts`);
    if (!Number.isInteger(r.topkGroup) || r.topkGroup < 1 || r.topkGroup > r.nGroup) bad(`topkGroup ${r.topkGroup} of ${r.nGroup} groups`);
    if (r.topK > r.topkGroup * (E / r.nGroup)) bad(`topK ${r.topK} exceeds the experts of ${r.topkGroup} groups`);
    if (r.method === 'noaux_tc' && isGrouped(r) && E / r.nGroup < 2) bad('noaux_tc group scores need at least 2 experts per group');
  }
}

/** Group masking changes anything only when some groups are dropped. */
function isGrouped(r: MoeRouting): boolean {
  return r.method !== 'greedy' && r.topkGroup < r.nGroup;
}

// ---- logits ----

const LOGITS_UNIFORMS = { tokens: 'u32', hidden: 'u32', x_stride: 'u32', x_offset: 'u32' } as const;
const LOGITS_STORAGE = [['x', 'array<f32>'], ['w', 'array<u32>'], ['logits', 'array<f32>', 'read_write']] as const;
const LOGITS_BINDINGS = bindings(LOGITS_STORAGE, LOGITS_UNIFORMS);
/** With the norm folded in: its weight, and the normed rows written out. */
const LOGITS_NORM_BINDINGS = bindings([...LOGITS_STORAGE, ['norm_w', 'array<u32>'], ['xn', 'array<f32>', 'read_write']], { ...LOGITS_UNIFORMS, eps: 'f32' });

const PLAIN_X_WGSL = /* wgsl */ `fn norm_prologue(t0: u32, col: u32, lid: u32) {}
fn x_value(t: u32, r: u32, h: u32) -> f32 { return x[t * u.x_stride + u.x_offset + h]; }`;
// the workgroup's rows normed as rms-norm does; the first column of workgroups writes them out
const NORM_X_WGSL = /* wgsl */ `const RMS_ROWS: u32 = TOK;
const RMS_WG: u32 = EPW * LANES;
var<private> rms_t0: u32;
fn rms_x(r: u32, c: u32) -> f32 { return x[(rms_t0 + r) * u.x_stride + u.x_offset + c]; }
//!include rms-rows
fn x_value(t: u32, r: u32, h: u32) -> f32 { return x[t * u.x_stride + u.x_offset + h] * rms_inv[r] * norm_at(h); }
fn norm_prologue(t0: u32, col: u32, lid: u32) {
  rms_t0 = t0;
  rms_rows(lid, min(TOK, u.tokens - t0), u.hidden, u.eps);
  if (col == 0u) {
    for (var i = lid; i < TOK * u.hidden; i += RMS_WG) {
      let r = i / u.hidden;
      if (t0 + r < u.tokens) { xn[(t0 + r) * u.hidden + i % u.hidden] = x_value(t0 + r, r, i % u.hidden); }
    }
  }
}`;
const LOGITS_EPW = 4;
const LOGITS_LANES = ROUTE_LOGITS_LANES;

/**
 * Tokens per workgroup: 1 for one token, 2 up to 32 (16 tokens: 128 workgroups of V2's 64 experts), then 4. The
 * weights are re-read per workgroup from the L2 (16 KB for 4 experts), so fewer tokens a workgroup cost little.
 */
function logitsTok(tokens: number): number {
  return tokens <= 1 ? 1 : tokens <= 32 ? 2 : 4;
}
/** Input values a workgroup stages at a time: 16 KB of rows, in whole lane strides. */
const logitsChunk = (tok: number) => Math.floor(4096 / tok / LOGITS_LANES) * LOGITS_LANES;

interface RouteLogitsVariant {
  readonly nExperts: number;
  readonly dtype: WeightDtype;
  readonly tok: number;
  /** The norm's weight dtype where the norm is folded in. */
  readonly norm?: WeightDtype;
}

function build_routeLogitsShader({ nExperts, dtype, tok, norm }: RouteLogitsVariant): KernelShader {
  logitsWgsl ??= wgsl('./route-logits.wgsl');
  const B = norm ? LOGITS_NORM_BINDINGS : LOGITS_BINDINGS;
  return B.shader(`moe_route_logits_${dtype}_e${nExperts}_t${tok}${norm ? `_norm_${norm}` : ''}`, `const E = ${nExperts}u;
const EPW = ${LOGITS_EPW}u;
const LANES = ${LOGITS_LANES}u;
const TOK = ${tok}u;
const KC = ${logitsChunk(tok)}u;
${weightLoadWgsl(dtype, 'w')}
${norm ? `${weightLoadWgsl(norm, 'norm_w', 'norm_at')}\n${NORM_X_WGSL}` : PLAIN_X_WGSL}
${fillWgsl(logitsWgsl, { BINDINGS: B.wgsl }, 'route-logits.wgsl')}`);
}

export interface MoeRouterLogitsArgs {
  /** Hidden states [tokens, hidden] f32 (row stride / offset optional). */
  readonly x: GPUBuffer;
  readonly xStride?: number;
  readonly xOffset?: number;
  /** mlp.gate.weight [E, hidden], any stored dtype. */
  readonly gateWeight: GpuTensor;
  /** Output [tokens, E] f32. */
  readonly logits: GPUBuffer;
  readonly tokens: number;
  readonly hidden: number;
  /**
   * x is the residual stream, RMSNorm'd here first (post_attention_layernorm: no norm dispatch before), the normed
   * rows written to `xn` ([tokens, hidden] dense) for the experts, bit for bit what rmsNorm writes.
   */
  readonly norm?: { readonly weight: GpuTensor; readonly eps: number; readonly xn: GPUBuffer };
}

export function moeRouterLogits(a: MoeRouterLogitsArgs): KernelProgram {
  const [E, H] = a.gateWeight.shape;
  if (a.gateWeight.shape.length !== 2 || H !== a.hidden || E === undefined) {
    throw new RangeError(`moeRouterLogits: gate weight [${a.gateWeight.shape}] is not [E, ${a.hidden}]`);
  }
  const tok = logitsTok(a.tokens);
  const rowsY = Math.ceil(a.tokens / tok);
  if (rowsY > 65535) throw new RangeError(`moeRouterLogits: ${a.tokens} tokens exceed one dispatch; split the batch`);
  const n = a.norm;
  if (n) {
    if (n.weight.shape.length !== 1 || n.weight.shape[0] !== a.hidden) throw new RangeError(`moeRouterLogits: norm weight [${n.weight.shape}] is not [${a.hidden}]`);
    if (n.xn === a.x || n.xn.size < a.tokens * a.hidden * 4) throw new RangeError('moeRouterLogits: xn must be its own buffer of tokens·hidden f32');
  }
  return {
    shader: routeLogitsShader({ nExperts: E, dtype: a.gateWeight.dtype, tok, ...(n ? { norm: n.weight.dtype } : {}) }),
    buffers: n
      ? LOGITS_NORM_BINDINGS.buffers({ x: a.x, w: a.gateWeight.buffer, logits: a.logits, norm_w: n.weight.buffer, xn: n.xn })
      : LOGITS_BINDINGS.buffers({ x: a.x, w: a.gateWeight.buffer, logits: a.logits }),
    uniformValues: {
      tokens: a.tokens, hidden: a.hidden, x_stride: a.xStride ?? a.hidden, x_offset: a.xOffset ?? 0, ...(n ? { eps: n.eps } : {}),
    },
    workgroups: [Math.ceil(E / LOGITS_EPW), rowsY],
  };
}

// ---- selection ----

const SELECT_UNIFORMS = { tokens: 'u32', scale: 'f32' } as const;
const SELECT_STORAGE = [['logits', 'array<f32>'], ['ids', 'array<u32>', 'read_write'], ['weights', 'array<f32>', 'read_write']] as const;
const SELECT_BINDINGS = bindings(SELECT_STORAGE, SELECT_UNIFORMS);
/** noaux_tc also reads e_score_correction_bias. */
const SELECT_BIAS_BINDINGS = bindings([...SELECT_STORAGE, ['bias', 'array<u32>']], SELECT_UNIFORMS);
const METHOD_CODE: Record<TopkMethod, number> = { greedy: 0, group_limited_greedy: 1, noaux_tc: 2 };

/** One thread per expert (32..256). */
function selectWorkgroup(E: number): number {
  return Math.min(256, Math.max(32, 2 ** Math.ceil(Math.log2(E))));
}

/**
 * route-select.wgsl's compile-time constants and its bias reader (noaux_tc reads the storage `bias`, which the
 * launcher declares last), with `wg` threads, and the shader label's routing part. route-fused.wgsl reuses them.
 */
export function routeSelectPrelude(r: MoeRouting, biasDtype: WeightDtype | null, wg: number, sharedExperts = 0): { prelude: string; label: string; biasStorage: StorageDecl[] } {
  checkRouting(r);
  checkSharedExperts(sharedExperts);
  const noaux = r.method === 'noaux_tc';
  if (noaux !== (biasDtype !== null)) throw new RangeError('moe routing: noaux_tc needs e_score_correction_bias, other methods take none');
  const grouped = isGrouped(r);
  const normalize = noaux && r.normTopkProb;
  const biasDecl = noaux ? weightLoadWgsl(biasDtype!, 'bias', 'bias_at') : `fn bias_at(i: u32) -> f32 { return 0.0; }\n`;
  const nGroup = grouped ? r.nGroup : 1;
  return {
    biasStorage: noaux ? [['bias', 'array<u32>']] : [],
    label: `${r.method}_e${r.nExperts}_k${r.topK}_g${nGroup}_${grouped ? r.topkGroup : 1}${normalize ? '_norm' : ''}${noaux ? `_${biasDtype}` : ''}${sharedExperts ? `_s${sharedExperts}` : ''}`,
    prelude: `const E = ${r.nExperts}u;
const K = ${r.topK}u;
const SHARED = ${sharedExperts}u;
const SLOTS = K + SHARED;
const EG = E + SHARED;
const WG = ${wg}u;
const METHOD = ${METHOD_CODE[r.method]}u;
const GROUPED = ${grouped};
const N_GROUP = ${nGroup}u;
const PER_GROUP = ${r.nExperts / nGroup}u;
const TOPK_GROUP = ${grouped ? r.topkGroup : 1}u;
const NORMALIZE = ${normalize};
${biasDecl}`,
  };
}

function checkSharedExperts(n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`moe routing: sharedExperts ${n}`);
}

/** route-select.wgsl's text (functions only: the launchers declare bindings and the entry point). */
export function routeSelectWgsl(): string {
  selectWgsl ??= wgsl('./route-select.wgsl');
  return selectWgsl;
}

interface RouteSelectVariant {
  readonly routing: MoeRouting;
  readonly biasDtype: WeightDtype | null;
  /** Shared experts routed with the others (MoeRouteSelectArgs.sharedExperts). */
  readonly sharedExperts: number;
}

function build_routeSelectShader({ routing: r, biasDtype, sharedExperts }: RouteSelectVariant): KernelShader {
  const B = r.method === 'noaux_tc' ? SELECT_BIAS_BINDINGS : SELECT_BINDINGS;
  const { prelude, label } = routeSelectPrelude(r, biasDtype, selectWorkgroup(r.nExperts), sharedExperts);
  return B.shader(`moe_route_select_${label}`, `${prelude}
${B.wgsl}${routeSelectWgsl()}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  route_token(wg.x + wg.y * nwg.x, lid);
}`);
}

export interface MoeRouteSelectArgs {
  readonly routing: MoeRouting;
  /** Router logits [tokens, E] f32 (from moeRouterLogits or any matmul). */
  readonly logits: GPUBuffer;
  /** noaux_tc: e_score_correction_bias [E] (f32 in checkpoints; any dtype); null for the V2 methods. */
  readonly bias: GpuTensor | null;
  /** Outputs: [tokens, topK + sharedExperts] u32 expert ids (best first, then the shared ones) and f32 weights. */
  readonly topkIds: GPUBuffer;
  readonly topkWeights: GPUBuffer;
  readonly tokens: number;
  /**
   * Shared experts routed with the others (default 0): each token's last slots name experts nExperts.. with
   * weight 1, so the expert GEMMs and the combine run them with the routed ones.
   */
  readonly sharedExperts?: number;
}

export function moeRouteSelect(a: MoeRouteSelectArgs): KernelProgram {
  const r = a.routing;
  if (a.bias && (a.bias.shape.length !== 1 || a.bias.shape[0] !== r.nExperts)) {
    throw new RangeError(`moeRouteSelect: bias shape [${a.bias.shape}] is not [${r.nExperts}]`);
  }
  const shader = routeSelectShader({ routing: r, biasDtype: r.method === 'noaux_tc' ? (a.bias?.dtype ?? null) : null, sharedExperts: a.sharedExperts ?? 0 });
  const x = Math.min(a.tokens, 65535);
  return {
    shader,
    buffers: r.method === 'noaux_tc'
      ? SELECT_BIAS_BINDINGS.buffers({ logits: a.logits, ids: a.topkIds, weights: a.topkWeights, bias: a.bias!.buffer })
      : SELECT_BINDINGS.buffers({ logits: a.logits, ids: a.topkIds, weights: a.topkWeights }),
    uniformValues: { tokens: a.tokens, scale: r.routedScalingFactor },
    workgroups: [x, Math.ceil(a.tokens / Math.max(1, x))],
  };
}

export interface MoeRouteArgs extends MoeRouterLogitsArgs {
  readonly routing: MoeRouting;
  readonly bias: GpuTensor | null;
  readonly topkIds: GPUBuffer;
  readonly topkWeights: GPUBuffer;
}

/** Logits then selection: [moeRouterLogits, moeRouteSelect]. `logits` is scratch of tokens·E f32. */
export function moeRoute(a: MoeRouteArgs): KernelProgram[] {
  if (a.gateWeight.shape[0] !== a.routing.nExperts) {
    throw new RangeError(`moeRoute: gate weight has ${a.gateWeight.shape[0]} rows for ${a.routing.nExperts} experts`);
  }
  return [
    moeRouterLogits(a),
    moeRouteSelect({ routing: a.routing, logits: a.logits, bias: a.bias, topkIds: a.topkIds, topkWeights: a.topkWeights, tokens: a.tokens }),
  ];
}

export const routeLogitsShader = defineKernel('moe_route_logits', build_routeLogitsShader);

export const routeSelectShader = defineKernel('moe_route_select', build_routeSelectShader);
