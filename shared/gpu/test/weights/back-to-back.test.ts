// Tensors uploaded back to back in one buffer: the dense and shared-expert MLPs' gate_proj and up_proj as one
// [2·inter, hidden] tensor (WeightSource.stacked), and each layer's routed experts in chunks; exactly the
// checkpoint's bytes, whether each tensor's bytes are a multiple of 4 (written one by one) or not (joined on the
// host first: odd inter and hidden in bf16).
import test from 'ava';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { expertWeights, openModelFolder, readWeightSlice, weightSlice, layerTensorNames } from '@latentwire/model';
import { FIXTURE_DIR, tempDir, writeRandomCheckpoint } from '@latentwire/testing';
import { testGpu } from '../../src/testing.js';
import { uploadCheckpoint } from '../../src/weights/index.js';

for (const [what, overrides] of [
  ['even sizes', { hidden_size: 32, intermediate_size: 48, moe_intermediate_size: 16 }],
  ['odd sizes', { hidden_size: 33, intermediate_size: 7, moe_intermediate_size: 5 }],
] as const) {
  test(`back-to-back weights - gate ‖ up hold the checkpoint's gate then up bytes, expert chunks their experts' (${what})`, async (t) => {
    const dir = tempDir(t);
    writeRandomCheckpoint(dir, { preset: 'v3-noaux', seed: 3, overrides });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURE_DIR, f), join(dir, f));
    const gpu = await testGpu();
    const folder = openModelFolder(dir);
    const weights = uploadCheckpoint(gpu, folder);
    t.teardown(() => weights.buffers.forEach((b) => b.destroy()));
    let checked = 0;
    const bytesOf = async (buffer: GPUBuffer, n: number) => new Uint8Array(await gpu.read(buffer, 0, Math.ceil(n / 4) * 4)).subarray(0, n);
    for (const [l, layer] of weights.layers.entries()) {
      if (layer.mlp.kind === 'moe') {
        for (const proj of ['gate', 'up', 'down'] as const) {
          for (const c of layer.mlp[proj]) {
            const want = Array.from({ length: c.count }, (_, i) => readWeightSlice(expertWeights(folder.config, folder.index, folder.expertLayout, l, c.firstExpert + i)[proj]));
            const all = Uint8Array.from(want.flatMap((w) => [...w]));
            t.deepEqual(await bytesOf(c.tensor.buffer, all.length), all, `layer ${l} experts ${proj} from ${c.firstExpert}`);
          }
        }
      }
      const n = layerTensorNames(l);
      const [mlp, names] = layer.mlp.kind === 'dense' ? [layer.mlp, n.mlp] : [layer.mlp.shared, n.sharedExperts];
      if (!mlp) continue;
      const want = [names.gate, names.up].map((name) => readWeightSlice(weightSlice(folder.index, name)));
      const bytes = want[0]!.length + want[1]!.length;
      t.deepEqual(mlp.gateUp.shape, [2 * (mlp.down.shape[1] as number), folder.config.hiddenSize]);
      const got = await bytesOf(mlp.gateUp.buffer, bytes);
      t.deepEqual(got, Uint8Array.from([...want[0]!, ...want[1]!]), `layer ${l}`);
      checked++;
    }
    t.true(checked >= 2, 'a dense layer and a MoE layer with shared experts');
  });
}

// The decode node's load (routeSharedExperts): the shared experts of S·I columns are copied after the routed experts
// as S experts of I (expert E + s: rows s·I.. of the shared gate and up, columns s·I.. of the shared down); where a
// down row's I values are not whole 4-byte words (bf16, odd I) the copy is not made and the layers say so.
for (const [what, overrides, copied] of [
  ['even sizes', { hidden_size: 32, intermediate_size: 48, moe_intermediate_size: 16 }, true],
  ['odd sizes', { hidden_size: 33, intermediate_size: 7, moe_intermediate_size: 5 }, false],
] as const) {
  test(`back-to-back weights - the shared experts' copy after the routed experts (${what})`, async (t) => {
    const dir = tempDir(t);
    writeRandomCheckpoint(dir, { preset: 'v3-noaux', seed: 4, overrides });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURE_DIR, f), join(dir, f));
    const gpu = await testGpu();
    const folder = openModelFolder(dir);
    const weights = uploadCheckpoint(gpu, folder, undefined, { routeSharedExperts: true });
    t.teardown(() => weights.buffers.forEach((b) => b.destroy()));
    const moe = folder.config.moe!, E = moe.nRoutedExperts, S = moe.nSharedExperts, I = moe.moeIntermediateSize, H = folder.config.hiddenSize;
    t.true(S > 0, 'the preset has shared experts');
    let checked = 0;
    for (const [l, layer] of weights.layers.entries()) {
      if (layer.mlp.kind !== 'moe') continue;
      t.is(layer.mlp.routedShared, copied ? S : 0, `layer ${l}`);
      if (!copied) continue;
      const n = layerTensorNames(l).sharedExperts;
      const [gate, up, down] = [n.gate, n.up, n.down].map((name) => readWeightSlice(weightSlice(folder.index, name)));
      const rowBytes = 2 * I, expertBytes = rowBytes * H; // bf16
      for (let s = 0; s < S; s++) {
        const slot = async (chunks: typeof layer.mlp.gate) => {
          const c = chunks.find((k) => E + s >= k.firstExpert && E + s < k.firstExpert + k.count)!;
          return new Uint8Array(await gpu.read(c.tensor.buffer, (E + s - c.firstExpert) * expertBytes, expertBytes));
        };
        t.deepEqual(await slot(layer.mlp.gate), gate!.subarray(s * expertBytes, (s + 1) * expertBytes), `layer ${l} gate of shared expert ${s}`);
        t.deepEqual(await slot(layer.mlp.up), up!.subarray(s * expertBytes, (s + 1) * expertBytes), `layer ${l} up of shared expert ${s}`);
        const wantDown = new Uint8Array(expertBytes);
        for (let h = 0; h < H; h++) wantDown.set(down!.subarray((h * S + s) * rowBytes, (h * S + s + 1) * rowBytes), h * rowBytes);
        t.deepEqual(await slot(layer.mlp.down), wantDown, `layer ${l} down of shared expert ${s}`);
      }
      checked++;
    }
    t.true(copied ? checked >= 1 : true, 'a MoE layer checked');
  });
}
