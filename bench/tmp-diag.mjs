import { Gpu } from '@latentwire/gpu';
import { benchDecodeAttention } from './dist/decode-attention.js';
const gpu = await Gpu.create({ dawnFeatures: ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'], profile: true });
const caps = gpu.matrixCapabilities;
const grid = [['v2-lite', 1, 1024], ['v2-lite', 1, 16384], ['v2-lite', 32, 1024], ['v2-lite', 64, 1024], ['v2-lite', 128, 1024], ['v2-lite', 64, 4096], ['v2', 32, 4096], ['v2', 1, 16384]];
for (const dtype of ['fp8_e4m3']) for (const [model, batch, context] of grid) {
  for (const splits of [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]) {
    if (splits * 32 > context) continue;
    if (splits) process.env.SPLITS = String(splits); else delete process.env.SPLITS;
    const rows = await benchDecodeAttention(gpu, [{ model, batch, context, dtype }], ['subgroup-matrix'], caps);
    for (const r of rows) console.log(splits ? 'sweep' : 'policy', r.model, r.batch, r.context, r.dtype, r.splits, r.ms.toFixed(4), r['ms min'].toFixed(4), r['ms max'].toFixed(4), (r['sglang ms'] ?? NaN).toFixed?.(4));
  }
}
process.exit(0);
