// Model folder loading: the fixture opens, every kind of broken folder fails with an error naming the
// culprit, and resharded or fused-expert copies of the fixture load to the same bytes.
import test from 'ava';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ModelLoadError,
  SafetensorsIndex,
  expertWeights,
  layerTensorNames,
  openModelFolder,
  readWeightSlice,
  requireChatTemplate,
  tensorManifest,
  validateCheckpoint,
  weightSlice,
} from '../src/index.js';
import { FIXTURE_DIR, copyFixture, readFixtureJson, tempDir, writeRawSafetensors, type RawTensor } from '@latentwire/testing';

/** Byte equality without ava's slow structural diff of large arrays. */
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

const throwsLoad = (t: any, fn: () => unknown, message: RegExp) => t.throws(fn, { instanceOf: ModelLoadError, message });

/** Rewrites a copied folder's model.safetensors after `edit` changes the fixture's tensor list. */
function rewriteCheckpoint(dir: string, edit: (ts: RawTensor[]) => RawTensor[]): void {
  writeRawSafetensors(join(dir, 'model.safetensors'), edit(fixtureTensors()));
}

test('the fixture folder opens with a per-expert checkpoint that has exactly the manifest tensors', (t) => {
  const f = openModelFolder(FIXTURE_DIR);
  t.is(f.config.modelType, 'deepseek_v2');
  t.is(f.expertLayout, 'per-expert');
  t.deepEqual(f.tensors.map((s) => s.name).sort(), [...f.index.tensors.keys()].sort());
  t.is(f.tensors.length, 83);
  t.deepEqual(f.generation.eosTokenIds, [1]);
  t.true(f.generation.fromFile);
  t.not(f.chatTemplate, null);
  t.regex(f.fingerprint, /^[0-9a-f]{64}$/);
  t.is(openModelFolder(FIXTURE_DIR).fingerprint, f.fingerprint);
});

test('missing config.json is named', (t) => {
  const dir = copyFixture(t);
  rmSync(join(dir, 'config.json'));
  throwsLoad(t, () => openModelFolder(dir), /config\.json is missing/);
});

test('config.json that is not JSON is named', (t) => {
  const dir = copyFixture(t);
  writeFileSync(join(dir, 'config.json'), '{"model_type": ');
  throwsLoad(t, () => openModelFolder(dir), /config\.json is not valid JSON/);
});

test('missing tokenizer.json is named', (t) => {
  const dir = copyFixture(t);
  rmSync(join(dir, 'tokenizer.json'));
  throwsLoad(t, () => openModelFolder(dir), /tokenizer\.json is missing/);
});

test('missing model.safetensors is named', (t) => {
  const dir = copyFixture(t);
  rmSync(join(dir, 'model.safetensors'));
  throwsLoad(t, () => openModelFolder(dir), /no model\.safetensors or model\.safetensors\.index\.json/);
});

test('a shard named by the index but missing is named', (t) => {
  const dir = copyFixture(t);
  const [, b] = splitInTwo(dir);
  rmSync(join(dir, b));
  throwsLoad(t, () => openModelFolder(dir), new RegExp(`shard ${b.replace(/\./g, '\\.')} named in .* is missing`));
});

test('an unknown model_type names it and what is supported', (t) => {
  const dir = copyFixture(t);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...readFixtureJson('config.json'), model_type: 'llama' }));
  throwsLoad(t, () => openModelFolder(dir), /model_type "llama" is not supported; latentwire loads deepseek_v2, deepseek_v3/);
});

test('an unknown dtype (F8_E4M3) is refused naming the tensor', (t) => {
  const dir = copyFixture(t);
  const name = 'model.layers.0.self_attn.q_proj.weight';
  rewriteCheckpoint(dir, (ts) =>
    ts.map((x) => (x.name === name ? { ...x, dtype: 'F8_E4M3', bytes: x.bytes.subarray(0, x.bytes.length / 2) } : x)),
  );
  throwsLoad(t, () => openModelFolder(dir), new RegExp(`tensor ${name.replace(/\./g, '\\.')} .* has dtype F8_E4M3`));
});

test('an unknown dtype (I64) is refused by a bare index too', (t) => {
  const dir = tempDir(t);
  writeRawSafetensors(join(dir, 'model.safetensors'), [{ name: 'ids', dtype: 'I64', shape: [2], bytes: new Uint8Array(16) }]);
  throwsLoad(t, () => SafetensorsIndex.open(dir), /tensor ids .* has dtype I64/);
});

test('a shape mismatch names the tensor and both shapes', (t) => {
  const dir = copyFixture(t);
  const name = 'model.layers.2.self_attn.kv_b_proj.weight';
  rewriteCheckpoint(dir, (ts) => ts.map((x) => (x.name === name ? { ...x, shape: [64, 512] } : x)));
  throwsLoad(t, () => openModelFolder(dir), /tensor model\.layers\.2\.self_attn\.kv_b_proj\.weight has shape \[64,512\], expected \[512,64\]/);
});

test('a missing tensor is named with its expected shape', (t) => {
  const dir = copyFixture(t);
  rewriteCheckpoint(dir, (ts) => ts.filter((x) => x.name !== 'model.layers.1.mlp.experts.5.up_proj.weight'));
  throwsLoad(t, () => openModelFolder(dir), /tensor model\.layers\.1\.mlp\.experts\.5\.up_proj\.weight is missing \(expected shape \[96,256\]\)/);
});

/** Splits the copied fixture into two shards plus model.safetensors.index.json; returns the shard names. */
function splitInTwo(dir: string): [string, string] {
  const ts = fixtureTensors();
  const half = Math.ceil(ts.length / 2);
  const names: [string, string] = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  writeRawSafetensors(join(dir, names[0]), ts.slice(0, half));
  writeRawSafetensors(join(dir, names[1]), ts.slice(half));
  const weight_map = Object.fromEntries(ts.map((x, i) => [x.name, names[i < half ? 0 : 1]]));
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map }));
  rmSync(join(dir, 'model.safetensors'));
  return names;
}

test('a sharded checkpoint validates and every tensor has the original bytes', (t) => {
  const dir = copyFixture(t);
  splitInTwo(dir);
  const f = openModelFolder(dir);
  const original = SafetensorsIndex.open(FIXTURE_DIR);
  t.is(new Set([...f.index.tensors.values()].map((x) => x.file)).size, 2);
  for (const spec of validateCheckpoint(f.config, f.index).tensors) {
    t.true(sameBytes(f.index.read(spec.name).bytes, original.read(spec.name).bytes), spec.name);
  }
  // Resharding does not change what model it is.
  t.is(f.fingerprint, openModelFolder(FIXTURE_DIR).fingerprint);
});

test('fused experts (transformers 5 gate_up_proj/down_proj) are detected and sliced to the per-expert bytes', (t) => {
  const dir = copyFixture(t);
  const ts = fixtureTensors();
  const byName = new Map(ts.map((x) => [x.name, x]));
  const cfg = openModelFolder(FIXTURE_DIR).config;
  const E = cfg.moe!.nRoutedExperts;
  const fused: RawTensor[] = ts.filter((x) => !/\.mlp\.experts\.\d+\./.test(x.name));
  for (const layer of [1, 2]) {
    const n = layerTensorNames(layer);
    const cat = (parts: string[]) => Buffer.concat(parts.map((p) => byName.get(p)!.bytes));
    const gateUp = cat([...Array(E).keys()].flatMap((e) => [n.expert(e).gate, n.expert(e).up]));
    const down = cat([...Array(E).keys()].map((e) => n.expert(e).down));
    fused.push({ name: n.fusedGateUp, dtype: 'BF16', shape: [E, 192, 256], bytes: gateUp });
    fused.push({ name: n.fusedDown, dtype: 'BF16', shape: [E, 256, 96], bytes: down });
  }
  writeRawSafetensors(join(dir, 'model.safetensors'), fused);
  const f = openModelFolder(dir);
  t.is(f.expertLayout, 'fused');
  t.true(f.tensors.some((s) => s.name === 'model.layers.1.mlp.experts.gate_up_proj'));
  const perExpert = openModelFolder(FIXTURE_DIR);
  for (const layer of [1, 2]) {
    for (let e = 0; e < E; e++) {
      const a = expertWeights(f.config, f.index, f.expertLayout, layer, e);
      const b = expertWeights(perExpert.config, perExpert.index, perExpert.expertLayout, layer, e);
      for (const k of ['gate', 'up', 'down'] as const) {
        t.deepEqual(a[k].shape, b[k].shape);
        t.true(sameBytes(readWeightSlice(a[k]), readWeightSlice(b[k])), `layer ${layer} expert ${e} ${k}`);
        t.true(sameBytes(readWeightSlice(b[k]), byName.get(layerTensorNames(layer).expert(e)[k])!.bytes));
      }
    }
  }
});

test('weightSlice covers a whole tensor', (t) => {
  const index = SafetensorsIndex.open(FIXTURE_DIR);
  const s = weightSlice(index, 'model.norm.weight', [256]);
  t.true(sameBytes(readWeightSlice(s), index.read('model.norm.weight').bytes));
  throwsLoad(t, () => weightSlice(index, 'model.norm.weight', [255]), /has shape \[256\], expected \[255\]/);
});

test('tied embeddings drop lm_head from the manifest', (t) => {
  const cfg = { ...openModelFolder(FIXTURE_DIR).config, tieWordEmbeddings: true };
  t.false(tensorManifest(cfg).some((s) => s.name === 'lm_head.weight'));
});

test('the fingerprint changes when config.json changes', (t) => {
  const dir = copyFixture(t);
  const text = readFileSync(join(dir, 'config.json'), 'utf8').replace('"rms_norm_eps": 1e-06', '"rms_norm_eps": 1e-05');
  writeFileSync(join(dir, 'config.json'), text);
  t.not(openModelFolder(dir).fingerprint, openModelFolder(FIXTURE_DIR).fingerprint);
});

test('generation_config.json is optional: stop ids then come from config.json', (t) => {
  const dir = copyFixture(t);
  rmSync(join(dir, 'generation_config.json'));
  const g = openModelFolder(dir).generation;
  t.false(g.fromFile);
  t.deepEqual(g.eosTokenIds, [1]);
  t.is(g.bosTokenId, 0);
  t.false(g.doSample);
  t.deepEqual([g.temperature, g.topP, g.topK], [1, 1, 50]);
});

test('generation_config.json sampling defaults and eos lists are read', (t) => {
  const dir = copyFixture(t);
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [1, 7], do_sample: true, temperature: 0.3, top_p: 0.95 }));
  const g = openModelFolder(dir).generation;
  t.deepEqual(g.eosTokenIds, [1, 7]);
  t.deepEqual([g.doSample, g.temperature, g.topP, g.topK], [true, 0.3, 0.95, 50]);
});

test('a folder without a chat template opens, and asking for the template is a clear error', (t) => {
  const dir = copyFixture(t);
  const { chat_template: _, ...tc } = readFixtureJson('tokenizer_config.json');
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tc));
  const f = openModelFolder(dir);
  t.is(f.chatTemplate, null);
  throwsLoad(t, () => requireChatTemplate(f.chatTemplate, f.dir), /has no chat template/);
});

/** Every tensor of the fixture checkpoint with its bytes, in header order. */
export function fixtureTensors(): RawTensor[] {
  const index = SafetensorsIndex.open(FIXTURE_DIR);
  return [...index.tensors.values()].map((info) => {
    const { bytes } = index.read(info.name);
    return { name: info.name, dtype: info.dtype, shape: info.shape, bytes };
  });
}
