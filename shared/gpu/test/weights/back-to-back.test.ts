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
