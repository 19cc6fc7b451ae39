// config.json normalization: both spellings, the real V2/V2-Lite/V3 shapes, transformers' defaults, and an
// error naming the key for each kind of bad value.
import test from 'ava';
import { ModelLoadError, layerTensorNames, normalizeConfig, tensorManifest, type MlaConfig } from '../src/index.js';
import { readFixtureJson, readTestFixture } from '@latentwire/testing';

const hubFixture = (name: string) => readTestFixture<Record<string, unknown>>(name);
const tiny = () => readFixtureJson<Record<string, unknown>>('config.json');

/** The fixture's transformers-5 config rewritten the way Hub checkpoints spell it. */
function toHubSpelling(cfg: Record<string, unknown>): Record<string, unknown> {
  const { rope_parameters, head_dim: _h, qk_head_dim: _q, transformers_version: _v, dtype, ...rest } = cfg as any;
  const { rope_theta, rope_type, ...scaling } = rope_parameters;
  return { ...rest, torch_dtype: dtype, rope_theta, rope_scaling: rope_type === 'default' ? null : { type: rope_type, ...scaling } };
}

const V3_HUB = {
  architectures: ['DeepseekV3ForCausalLM'],
  model_type: 'deepseek_v3',
  bos_token_id: 0,
  eos_token_id: 1,
  first_k_dense_replace: 3,
  hidden_act: 'silu',
  hidden_size: 7168,
  intermediate_size: 18432,
  kv_lora_rank: 512,
  max_position_embeddings: 163840,
  moe_intermediate_size: 2048,
  moe_layer_freq: 1,
  n_group: 8,
  n_routed_experts: 256,
  n_shared_experts: 1,
  norm_topk_prob: true,
  num_attention_heads: 128,
  num_experts_per_tok: 8,
  num_hidden_layers: 61,
  num_key_value_heads: 128,
  num_nextn_predict_layers: 1,
  q_lora_rank: 1536,
  qk_nope_head_dim: 128,
  qk_rope_head_dim: 64,
  rms_norm_eps: 1e-6,
  rope_scaling: { beta_fast: 32, beta_slow: 1, factor: 40, mscale: 1.0, mscale_all_dim: 1.0, original_max_position_embeddings: 4096, rope_type: 'yarn' },
  rope_theta: 10000,
  routed_scaling_factor: 2.5,
  scoring_func: 'sigmoid',
  tie_word_embeddings: false,
  topk_group: 4,
  topk_method: 'noaux_tc',
  v_head_dim: 128,
  vocab_size: 129280,
};

test('the fixture config normalizes to the documented tiny model', (t) => {
  const c = normalizeConfig(tiny());
  t.deepEqual(c, {
    modelType: 'deepseek_v2',
    vocabSize: 512,
    hiddenSize: 256,
    intermediateSize: 512,
    numLayers: 3,
    numHeads: 8,
    qLoraRank: null,
    kvLoraRank: 64,
    qkNopeHeadDim: 32,
    qkRopeHeadDim: 16,
    vHeadDim: 32,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ropeScaling: { kind: 'default' },
    maxPositionEmbeddings: 2048,
    moe: {
      nRoutedExperts: 8,
      nSharedExperts: 1,
      numExpertsPerTok: 2,
      moeIntermediateSize: 96,
      nGroup: 1,
      topkGroup: 1,
      topkMethod: 'greedy',
      scoringFunc: 'softmax',
      normTopkProb: false,
      routedScalingFactor: 1,
      firstKDenseReplace: 1,
      moeLayerFreq: 1,
    },
    tieWordEmbeddings: false,
    bosTokenId: 0,
    eosTokenIds: [1],
  } satisfies MlaConfig);
});

test('Hub spelling (rope_theta + rope_scaling) and transformers-5 spelling (rope_parameters) agree', (t) => {
  const hub = toHubSpelling(tiny());
  t.false('rope_parameters' in hub);
  t.deepEqual(normalizeConfig(hub), normalizeConfig(tiny()));
  // Same with yarn: {type: yarn, ...} beside rope_theta vs rope_parameters {rope_type: yarn, rope_theta, ...}.
  const yarn = { factor: 40, mscale: 0.707, mscale_all_dim: 0.707, original_max_position_embeddings: 4096, beta_fast: 32, beta_slow: 1 };
  const t5 = { ...tiny(), rope_parameters: { rope_type: 'yarn', rope_theta: 10000, ...yarn } };
  const a = normalizeConfig(t5);
  t.deepEqual(normalizeConfig(toHubSpelling(t5)), a);
  t.is(a.ropeScaling.kind, 'yarn');
});

test('DeepSeek-V2-Lite Hub config normalizes, yarn parsed', (t) => {
  const c = normalizeConfig(hubFixture('deepseek-v2-lite.config.json'));
  t.deepEqual(c.ropeScaling, { kind: 'yarn', factor: 40, originalMaxPositionEmbeddings: 4096, betaFast: 32, betaSlow: 1, mscale: 0.707, mscaleAllDim: 0.707 });
  t.is(c.qLoraRank, null);
  t.is(c.kvLoraRank + c.qkRopeHeadDim, 576);
  t.like(c.moe, { nRoutedExperts: 64, nSharedExperts: 2, numExpertsPerTok: 6, moeIntermediateSize: 1408, topkMethod: 'greedy', scoringFunc: 'softmax' });
  // 1 dense + 26 MoE layers: 3 global + 27 x 7 attention/norm + 3 dense MLP + 26 x (router + 64 x 3 + shared 3).
  t.is(tensorManifest(c).length, 3 + 27 * 7 + 3 + 26 * 196);
  t.is(tensorManifest(c, 'fused').length, 3 + 27 * 7 + 3 + 26 * 6);
});

test('DeepSeek-V2 Hub config normalizes with query compression and group-limited routing', (t) => {
  const c = normalizeConfig(hubFixture('deepseek-v2.config.json'));
  t.is(c.ropeScaling.kind, 'yarn');
  t.like(c.ropeScaling, { factor: 40, mscale: 0.707, mscaleAllDim: 0.707 });
  t.is(c.qLoraRank, 1536);
  t.like(c.moe, { nRoutedExperts: 160, nGroup: 8, topkGroup: 3, topkMethod: 'group_limited_greedy', routedScalingFactor: 16 });
  const shapes = new Map(tensorManifest(c).map((s) => [s.name, s.shape]));
  const n = layerTensorNames(1);
  t.deepEqual(shapes.get(n.qAProj), [1536, 5120]);
  t.deepEqual(shapes.get(n.qANorm), [1536]);
  t.deepEqual(shapes.get(n.qBProj), [128 * 192, 1536]);
  t.deepEqual(shapes.get(n.kvAProj), [576, 5120]);
  t.deepEqual(shapes.get(n.kvBProj), [128 * 256, 512]);
  t.deepEqual(shapes.get(n.oProj), [5120, 128 * 128]);
  t.deepEqual(shapes.get(n.sharedExperts.gate), [3072, 5120]);
  t.deepEqual(shapes.get(n.expert(159).down), [5120, 1536]);
  t.false(shapes.has(n.qProj));
  t.false(shapes.has(n.routerBias));
});

test('a DeepSeek-V3 config normalizes with sigmoid scoring and noaux_tc, and needs the router bias', (t) => {
  const c = normalizeConfig(V3_HUB);
  t.is(c.modelType, 'deepseek_v3');
  t.deepEqual(c.moe, {
    nRoutedExperts: 256,
    nSharedExperts: 1,
    numExpertsPerTok: 8,
    moeIntermediateSize: 2048,
    nGroup: 8,
    topkGroup: 4,
    topkMethod: 'noaux_tc',
    scoringFunc: 'sigmoid',
    normTopkProb: true,
    routedScalingFactor: 2.5,
    firstKDenseReplace: 3,
    moeLayerFreq: 1,
  });
  t.like(c.ropeScaling, { kind: 'yarn', factor: 40, mscale: 1, mscaleAllDim: 1 });
  const shapes = new Map(tensorManifest(c).map((s) => [s.name, s.shape]));
  t.deepEqual(shapes.get(layerTensorNames(3).routerBias), [256]);
  t.false(shapes.has(layerTensorNames(2).routerBias));
  t.deepEqual(shapes.get(layerTensorNames(2).mlp.gate), [18432, 7168]);
  // Without the V2-era keys, transformers' V3 defaults (sigmoid + noaux_tc) still apply.
  const { topk_method: _a, scoring_func: _b, moe_layer_freq: _c, ...bare } = V3_HUB;
  t.deepEqual(normalizeConfig(bare), c);
});

test('absent keys take transformers defaults for the model_type', (t) => {
  const v3 = normalizeConfig({ model_type: 'deepseek_v3' });
  t.like(v3, { vocabSize: 129280, hiddenSize: 7168, numLayers: 61, qLoraRank: 1536, maxPositionEmbeddings: 4096, bosTokenId: 0, eosTokenIds: [1] });
  t.like(v3.moe, { nRoutedExperts: 256, numExpertsPerTok: 8, nGroup: 8, topkGroup: 4, firstKDenseReplace: 3, routedScalingFactor: 2.5 });
  const v2 = normalizeConfig({ model_type: 'deepseek_v2', num_experts_per_tok: 6 });
  t.like(v2, { vocabSize: 32000, hiddenSize: 4096, numLayers: 32, qLoraRank: 1536, kvLoraRank: 512, bosTokenId: 1, eosTokenIds: [2] });
  t.like(v2.moe, { nRoutedExperts: 64, nSharedExperts: 2, moeIntermediateSize: 1407, firstKDenseReplace: 0, nGroup: 1 });
  // DeepseekV2Config's num_experts_per_tok defaults to None, which transformers documents as a dense model.
  t.is(normalizeConfig({ model_type: 'deepseek_v2' }).moe, null);
});

test('eos_token_id may be a list', (t) => {
  t.deepEqual(normalizeConfig({ ...tiny(), eos_token_id: [1, 5] }).eosTokenIds, [1, 5]);
  t.deepEqual(normalizeConfig({ ...tiny(), eos_token_id: null }).eosTokenIds, []);
});

const bad: [string, Record<string, unknown>, RegExp][] = [
  ['zero rank', { kv_lora_rank: 0 }, /key "kv_lora_rank" .*\(got 0\)/],
  ['fractional heads', { num_attention_heads: 8.5 }, /key "num_attention_heads" .*\(got 8\.5\)/],
  ['string size', { hidden_size: '256' }, /key "hidden_size" .*\(got "256"\)/],
  ['odd rope dim', { qk_rope_head_dim: 15 }, /key "qk_rope_head_dim" must be even/],
  ['top-k above experts', { num_experts_per_tok: 9 }, /key "num_experts_per_tok" \(9\) must not exceed n_routed_experts \(8\)/],
  ['n_group not dividing', { n_group: 3 }, /key "n_group" \(3\) must divide n_routed_experts \(8\)/],
  ['topk_group above n_group', { n_group: 2, topk_group: 4 }, /key "topk_group" \(4\) must not exceed n_group \(2\)/],
  ['unknown topk_method', { topk_method: 'random' }, /key "topk_method" must be/],
  ['rope type dynamic', { rope_parameters: { rope_type: 'dynamic', rope_theta: 10000, factor: 2 } }, /key "rope_parameters\.rope_type" is "dynamic"; latentwire supports RoPE types "default" and "yarn"/],
  ['rope type linear (Hub)', { rope_parameters: undefined, rope_scaling: { type: 'linear', factor: 2 } }, /key "rope_scaling\.type" is "linear"/],
  ['yarn without factor', { rope_parameters: { rope_type: 'yarn', rope_theta: 10000 } }, /key "rope_parameters\.factor"/],
  ['negative theta', { rope_parameters: { rope_type: 'default', rope_theta: -1 } }, /key "rope_parameters\.rope_theta" must be a positive number/],
  ['gelu', { hidden_act: 'gelu' }, /key "hidden_act" must be "silu"/],
  ['attention bias', { attention_bias: true }, /key "attention_bias" must be false/],
  ['eos outside vocab', { eos_token_id: [1, 512] }, /key "eos_token_id" 512 is outside the vocabulary/],
  ['missing model_type', { model_type: undefined }, /model_type undefined is not supported/],
];
for (const [what, patch, message] of bad) {
  test(`bad config (${what}) names the key`, (t) => {
    t.throws(() => normalizeConfig({ ...tiny(), ...patch }, 'tiny/config.json'), { instanceOf: ModelLoadError, message });
  });
}

test('a config that is not an object is refused', (t) => {
  t.throws(() => normalizeConfig([1, 2]), { instanceOf: ModelLoadError, message: /expected a JSON object/ });
});
