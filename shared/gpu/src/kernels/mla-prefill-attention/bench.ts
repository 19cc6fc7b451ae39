// Timing helper for the prefill bench: random inputs of a given shape, `iters` dispatches in one submission after a
// warm-up, wall time per dispatch and the rate over the causal FLOPs (mlaPrefillAttentionCost).
// As a script: node dist/src/kernels/mla-prefill-attention/bench.js [T,...] [heads] [tiles JSON,...]
//   e.g. node .../bench.js 512,2048,4096 16 '{"bq":32,"bk":16,"threads":128}'
//   DAWN_FEATURES=allow_unsafe_apis,disable_robustness compares against Dawn without bounds clamping.
import { pathToFileURL } from 'node:url';
import { Gpu } from '../../runtime/index.js';
import {
  mlaPrefillAttention, mlaPrefillAttentionCost, mlaPrefillTiles, mlaPrefillWorkgroupBytes,
  type MlaHeadDims, type MlaPrefillTiles,
} from './mla-prefill-attention.js';

export interface MlaPrefillBenchOptions extends MlaHeadDims {
  readonly heads: number;
  readonly kvLoraRank: number;
  readonly qLen: number;
  readonly qPos0?: number;
  readonly tiles?: MlaPrefillTiles;
  readonly iters?: number;
}

export interface MlaPrefillBenchResult {
  readonly tiles: MlaPrefillTiles;
  readonly workgroupBytes: number;
  /** Milliseconds per dispatch (wall clock over `iters` dispatches in one submit). */
  readonly ms: number;
  readonly tflops: number;
}

export async function benchMlaPrefillAttention(gpu: Gpu, o: MlaPrefillBenchOptions): Promise<MlaPrefillBenchResult> {
  const qPos0 = o.qPos0 ?? 0;
  const kvLen = qPos0 + o.qLen;
  const dims = { nope: o.nope, rope: o.rope, v: o.v };
  const tiles = o.tiles ?? mlaPrefillTiles(dims, gpu.limits);
  const fill = (n: number) => {
    const a = new Float32Array(n);
    let s = 12345;
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      a[i] = (s / 2 ** 32) * 2 - 1;
    }
    return a;
  };
  const q = gpu.upload('bench-q', fill(o.qLen * o.heads * (o.nope + o.rope)));
  const kv = gpu.upload('bench-kv', fill(kvLen * o.heads * (o.nope + o.v)));
  const latent = gpu.upload('bench-latent', fill(kvLen * (o.kvLoraRank + o.rope)));
  const out = gpu.buffer('bench-out', o.qLen * o.heads * o.v * 4);
  const program = mlaPrefillAttention({
    q, kv, latent, out, ...dims, heads: o.heads, kvLoraRank: o.kvLoraRank, qLen: o.qLen, qPos0, kvLen,
    scale: 1 / Math.sqrt(o.nope + o.rope), tiles,
  });
  try {
    await gpu.run([program]);
    await gpu.sync();
    const iters = o.iters ?? 10;
    const t0 = performance.now();
    await gpu.run(Array.from({ length: iters }, () => program));
    await gpu.sync();
    const ms = (performance.now() - t0) / iters;
    const { flops } = mlaPrefillAttentionCost({ ...o, qPos0, kvLen });
    return { tiles, workgroupBytes: mlaPrefillWorkgroupBytes(dims, tiles), ms, tflops: flops / (ms * 1e9) };
  } finally {
    gpu.destroy(q, kv, latent, out);
  }
}

async function main(): Promise<void> {
  const lengths = (process.argv[2] ?? '512,2048').split(',').map(Number);
  const heads = Number(process.argv[3] ?? 16);
  const tilings: (MlaPrefillTiles | undefined)[] = process.argv[4] ? JSON.parse(`[${process.argv[4]}]`) : [undefined];
  const gpu = await Gpu.create({ adapter: process.env.WEBGPU_ADAPTER, dawnFeatures: process.env.DAWN_FEATURES?.split(',') });
  console.log(`${gpu.adapterInfo.vendor} ${gpu.adapterInfo.description}; workgroup memory ${gpu.limits.maxComputeWorkgroupStorageSize}`);
  for (const tiles of tilings) {
    for (const qLen of lengths) {
      const r = await benchMlaPrefillAttention(gpu, { heads, nope: 128, rope: 64, v: 128, kvLoraRank: 512, qLen, tiles });
      console.log(
        `T ${qLen} H ${heads} tiles ${r.tiles.bq}x${r.tiles.bk}/${r.tiles.threads} (${r.workgroupBytes} B): ${r.ms.toFixed(3)} ms, ${r.tflops.toFixed(2)} TFLOP/s`,
      );
    }
  }
  gpu.dispose();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
