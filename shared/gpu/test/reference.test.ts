// The float64 reference against transformers' own numbers (tiny-deepseek-v2 fixture), on random V2/V3
// checkpoints, and on hand-checkable pieces of the math.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@latentwire/model';
import type { MlaConfig, MoeConfig } from '@latentwire/model';
import { SafetensorsIndex, tensorToFloat64 } from '@latentwire/model';
import { FIXTURE_DIR, readFixtureJson } from '@latentwire/testing';
import { storedValue, writeRandomCheckpoint, writeSafetensors, type PresetName } from '@latentwire/testing';
import * as ref from './reference/index.js';

interface FixtureCase {
  prompt: string;
  input_ids: number[];
  prefill_last_logits: number[];
  prefill_argmax: number[];
  greedy_ids: number[];
  step_logits: number[][];
}

// reference.json stores prefill logits with 6 decimals and step logits with 5, so half a unit of the last
// place is the floor of any comparison; on top, transformers' "float64" run still does RMSNorm, RoPE, the
// router and (eager) softmax in float32, worth a few 1e-7 here.
const PREFILL_TOLERANCE = 0.5e-6 + 0.5e-6;
const STEP_TOLERANCE = 0.5e-5 + 1e-6;
// The fixture was made from a bf16-loaded model, whose RoPE inv_freq buffer was rounded to bf16 (see rope.ts).
const AS_FIXTURE: ref.ReferenceOptions = { bf16InvFreq: true };

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'latentwire-reference-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const fixture = { cfg: loadConfig(FIXTURE_DIR), get: ref.safetensorsWeights(SafetensorsIndex.open(FIXTURE_DIR)) };
const cases = readFixtureJson<{ cases: FixtureCase[] }>('reference.json').cases;

const shortest = cases.reduce((best, c, i) => (c.input_ids.length < cases[best]!.input_ids.length ? i : best), 0);

cases.forEach((c, n) => {
  test(`reference - fixture case ${n} (${c.input_ids.length} tokens): prefill logits and argmax match transformers`, (t) => {
    const out = ref.referenceForward(fixture.cfg, fixture.get, c.input_ids, AS_FIXTURE);
    const err = maxAbsDiff(out.logits.at(-1)!, c.prefill_last_logits);
    t.log(`max |Δ| last-position logits: ${err.toExponential(2)}`);
    t.true(err < PREFILL_TOLERANCE);
    t.deepEqual(out.logits.map(ref.argmax), c.prefill_argmax);
    t.is(out.latent.length, fixture.cfg.numLayers);
    t.is(out.latent[0]!.length, c.input_ids.length * (fixture.cfg.kvLoraRank + fixture.cfg.qkRopeHeadDim));
  });

  // The greedy loop is the same code for every case and costs ~15 s of float64 forwards per long prompt:
  // the shortest case checks it (the prefill tests above cover every prompt).
  if (n !== shortest) return;
  test(`reference - fixture case ${n}: greedy by full forwards reproduces greedy_ids and step_logits`, (t) => {
    const g = ref.referenceGreedy(fixture.cfg, fixture.get, c.input_ids, c.greedy_ids.length, AS_FIXTURE);
    t.deepEqual(g.ids, c.greedy_ids);
    const err = Math.max(...g.stepLogits.map((l, i) => maxAbsDiff(l, c.step_logits[i]!)));
    t.log(`max |Δ| step logits: ${err.toExponential(2)}`);
    t.true(err < STEP_TOLERANCE);
  });
});

test('reference - exact RoPE frequencies move the fixture logits by ~1e-3 but not its tokens', (t) => {
  // What a float32 GPU with exact inv_freq should expect against reference.json.
  const c = cases[0]!;
  const out = ref.referenceForward(fixture.cfg, fixture.get, c.input_ids);
  const err = maxAbsDiff(out.logits.at(-1)!, c.prefill_last_logits);
  t.log(`max |Δ| with exact inv_freq: ${err.toExponential(2)}`);
  t.true(err > 1e-4 && err < 1e-2);
  t.deepEqual(out.logits.map(ref.argmax), c.prefill_argmax);
});

const presets: PresetName[] = ['v2-qlora-yarn-grouped', 'v3-noaux'];
for (const preset of presets) {
  for (const ropeSpelling of ['hub', 'transformers5'] as const) {
    test(`reference - random ${preset} (${ropeSpelling} config) loads back and gives usable logits`, (t) => {
      const ck = writeRandomCheckpoint(tempDir(t), { preset, ropeSpelling, seed: 7 });
      const cfg = loadConfig(ck.dir);
      const index = SafetensorsIndex.open(ck.dir);
      for (const [name, values] of ck.weights) t.deepEqual(tensorToFloat64(index.read(name, ck.shapes.get(name))), values, name);
      const ids = Array.from({ length: 21 }, (_, i) => (i * 37 + 5) % cfg.vocabSize);
      const { logits } = ref.referenceForward(cfg, ref.safetensorsWeights(index), ids);
      t.true(logits.every((l) => l.every(Number.isFinite)));
      t.true(logits.every((l) => Math.max(...l) - Math.min(...l) > 1));
      const gaps = logits.map((l) => {
        const [a, b] = ref.topK(l, 2);
        return l[a!]! - l[b!]!;
      });
      t.true(gaps.reduce((s, g) => s + g, 0) / gaps.length > 0.1);
    });
  }
}

test('reference - random v3-noaux: the correction bias and the groups change which experts are chosen', (t) => {
  const ck = writeRandomCheckpoint(tempDir(t), { preset: 'v3-noaux', seed: 3 });
  const cfg = loadConfig(ck.dir);
  const get = ref.mapWeights(ck.weights);
  const ids = Array.from({ length: 30 }, (_, i) => (i * 11 + 2) % cfg.vocabSize);
  const out = ref.referenceForward(cfg, get, ids);
  const moe = cfg.moe!;
  const asV2: MoeConfig = { ...moe, topkMethod: 'greedy', scoringFunc: 'softmax' };
  const sameSet = (a: ref.RouteChoice, b: ref.RouteChoice) => [...a.expertIds].sort().join() === [...b.expertIds].sort().join();
  let biasMatters = 0;
  let differsFromV2 = 0;
  let tokens = 0;
  out.routes.forEach((routes, l) => {
    if (!routes) return;
    const logits = ref.linear(out.mlpInputs[l]!, get(ref.layerName(l, 'mlp.gate.weight')), cfg.hiddenSize);
    routes.forEach((route, tok) => {
      const row = ref.row(logits, moe.nRoutedExperts, tok);
      tokens++;
      if (!sameSet(route, ref.moeRoute(moe, row, new Float64Array(moe.nRoutedExperts)))) biasMatters++;
      if (!sameSet(route, ref.moeRoute(asV2, row, null))) differsFromV2++;
      t.true(Math.abs(route.weights.reduce((s, w) => s + w, 0) - moe.routedScalingFactor) < 1e-12);
    });
  });
  t.log(`${biasMatters}/${tokens} routings change without the bias, ${differsFromV2}/${tokens} differ from V2 greedy`);
  t.true(biasMatters >= tokens / 10);
  t.true(differsFromV2 >= tokens / 10);
});

test('reference - hand-checked routing: V2 group-limited softmax and V3 noaux_tc', (t) => {
  const base: MoeConfig = {
    nRoutedExperts: 4, nSharedExperts: 0, numExpertsPerTok: 2, moeIntermediateSize: 1, nGroup: 2, topkGroup: 1,
    topkMethod: 'group_limited_greedy', scoringFunc: 'softmax', normTopkProb: true, routedScalingFactor: 2,
    firstKDenseReplace: 0, moeLayerFreq: 1,
  };
  // Group 1 holds the best expert (3), so experts 0 and 1 are out although 0 beats 2.
  const logits = Float64Array.from([1, -5, 0.5, 2]);
  const p = ref.softmax(logits);
  const v2 = ref.moeRoute(base, logits, null);
  t.deepEqual(v2.expertIds, [3, 2]);
  t.deepEqual(v2.weights, [p[3]! * 2, p[2]! * 2]); // V2 scales and never renormalizes
  // V3: the bias lifts expert 1 so group 0's top-2 sum wins; weights use the unbiased sigmoid, renormalized.
  const v3cfg: MoeConfig = { ...base, topkMethod: 'noaux_tc', scoringFunc: 'sigmoid' };
  const v3 = ref.moeRoute(v3cfg, logits, Float64Array.from([0, 2, 0, 0]));
  t.deepEqual(v3.expertIds, [1, 0]);
  const s = [ref.sigmoid(-5), ref.sigmoid(1)];
  t.true(Math.abs(v3.weights[0]! - (2 * s[0]!) / (s[0]! + s[1]!)) < 1e-15);
});

test('reference - hand-checked RoPE: complex pairs, YaRN ramp, mscale factors', (t) => {
  const cfg = { ...fixture.cfg, qkRopeHeadDim: 8, ropeTheta: 10000 } as MlaConfig;
  // Default RoPE on (1, 0): pair 0 turns by exactly `position` radians.
  const x = Float64Array.from([1, 0, 0, 1, 0, 0, 0, 0]);
  const y = ref.applyRope(x, [2], 8, ref.ropeInvFreq(cfg), 1);
  t.true(maxAbsDiff(y.subarray(0, 4), [Math.cos(2), Math.sin(2), -Math.sin(0.2), Math.cos(0.2)]) < 1e-15);
  const yarn = { ...cfg, ropeScaling: { kind: 'yarn', factor: 4, originalMaxPositionEmbeddings: 64, betaFast: 32, betaSlow: 1, mscale: 0.9, mscaleAllDim: 0.707 } } as MlaConfig;
  // Correction range [0, 2): pair 0 keeps its frequency, pair 1 is half-way, pairs 2-3 are divided by 4.
  t.true(maxAbsDiff(ref.ropeInvFreq(yarn), [1, 0.1 * (0.5 + 0.5 / 4), 0.01 / 4, 0.001 / 4]) < 1e-15);
  t.true(Math.abs(ref.ropeAttentionFactor(yarn) - (1 + 0.09 * Math.log(4)) / (1 + 0.0707 * Math.log(4))) < 1e-15);
  const qk = cfg.qkNopeHeadDim + 8;
  t.true(Math.abs(ref.softmaxScale(yarn) - qk ** -0.5 * (1 + 0.0707 * Math.log(4)) ** 2) < 1e-15);
  t.is(ref.softmaxScale(cfg), qk ** -0.5);
});

test('reference - safetensors writer round-trips BF16, F16 and F32 through the loader', (t) => {
  const dir = tempDir(t);
  const values = [0, 1, -2.5, 1 / 3, 65504, 1e-7, -3.14159];
  writeSafetensors(join(dir, 'model.safetensors'), ['BF16', 'F16', 'F32'].map((dtype) => ({ name: dtype, dtype, shape: [7], values })));
  const index = SafetensorsIndex.open(dir);
  for (const dtype of ['BF16', 'F16', 'F32']) {
    t.deepEqual(Array.from(tensorToFloat64(index.read(dtype))), values.map((v) => storedValue(v, dtype)), dtype);
  }
  writeSafetensors(join(dir, 'model.safetensors'), [{ name: 'w', dtype: 'F8_E4M3', shape: [2, 3] }]);
  t.throws(() => SafetensorsIndex.open(dir), { message: /F8_E4M3/ });
});
