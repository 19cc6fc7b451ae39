// GPU kernel times in every GPU service's /metrics when GPU_PROFILE is on: a cluster on a device that records
// timestamps serves one request, then the decode node's and the prefill node's registries hold seconds and
// dispatches per kernel, for the kernels that request ran (the prefill's attention, the decode's grouped
// attention), and they grow with more traffic. (In this in-process cluster both share one device, so one
// profiler: each registry sees every kernel.)
import test from 'ava';
import type { Registry } from 'prom-client';
import { Gpu } from '@latentwire/gpu';
import { startLocalCluster } from '../src/index.js';

async function kernelSamples(r: Registry, name: string): Promise<Map<string, number>> {
  const m = r.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  return new Map((await m.get()).values.map((v) => [String(v.labels['kernel']), v.value]));
}

const total = (m: Map<string, number>, part: string) => [...m].filter(([k]) => k.includes(part)).reduce((a, [, v]) => a + v, 0);

test('kernel metrics - with GPU_PROFILE each GPU service reports seconds and dispatches per kernel', async (t) => {
  const gpu = await Gpu.create({ adapter: process.env.WEBGPU_ADAPTER, profile: true });
  if (!gpu.profiler) return t.pass('the adapter records no timestamps: nothing to report'); // lavapipe does
  const cluster = await startLocalCluster({ gpu, decodeNodes: 1 });
  try {
    const ask = (max_tokens: number) => fetch(`${cluster.url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-deepseek-v2', prompt: [1, 2, 3, 4, 5], max_tokens, temperature: 0 }),
    }).then((r) => r.json());
    await ask(4);
    const dec = cluster.registries.decode[0]!, pre = cluster.registries.prefill;
    const seconds = await kernelSamples(dec, 'latentwire_gpu_kernel_seconds_total');
    const dispatches = await kernelSamples(dec, 'latentwire_gpu_kernel_dispatches_total');
    t.true(total(seconds, 'grouped_decode_attn') > 0, JSON.stringify([...seconds.keys()]));
    t.log(`${seconds.size} kernels; grouped attention ${(1e3 * total(seconds, 'grouped_decode_attn')).toFixed(2)} ms in ${total(dispatches, 'grouped_decode_attn')} dispatches`);
    t.true(total(dispatches, 'grouped_decode_attn') >= 3, 'one grouped attention dispatch per layer and step at least');
    t.true(total(await kernelSamples(pre, 'latentwire_gpu_kernel_seconds_total'), 'mla_prefill') > 0);
    // counters: a second request only adds
    await ask(4);
    const after = await kernelSamples(dec, 'latentwire_gpu_kernel_dispatches_total');
    t.true(total(after, 'grouped_decode_attn') > total(dispatches, 'grouped_decode_attn'));
    t.true(await cluster.pagesBack());
  } finally {
    await cluster.stop();
    gpu.dispose();
  }
});
