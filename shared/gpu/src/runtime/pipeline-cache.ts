// Compiled pipelines keyed by label + WGSL source: two programs that differ only in uniforms share one
// pipeline. Compilation is async (createComputePipelineAsync), so errors surface as rejections with the
// compiler's messages, and start-up can compile everything ahead of traffic.
import { GpuError } from './errors.js';
import type { KernelShader } from './program.js';

export class PipelineCache {
  private readonly pending = new Map<string, Promise<GPUComputePipeline>>();
  private readonly ready = new Map<string, GPUComputePipeline>();
  /** Fast path: memoized shader objects (memo-shader.ts) are found by identity, without hashing their source. */
  private readonly byObject = new WeakMap<KernelShader, GPUComputePipeline>();
  private readonly layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();
  /** Pipelines dispatched at least once (a driver that compiles at first dispatch has compiled these). */
  private readonly used = new WeakSet<GPUComputePipeline>();

  constructor(private readonly device: GPUDevice, private readonly dumpWgsl = false) {}

  static key(shader: KernelShader): string {
    return `${shader.label}\u0000${shader.source}`;
  }

  get size(): number {
    return this.pending.size;
  }

  /** The compiled pipeline if it is ready, else undefined (call `compile` first). */
  get(shader: KernelShader): GPUComputePipeline | undefined {
    let pipeline = this.byObject.get(shader);
    if (!pipeline) {
      pipeline = this.ready.get(PipelineCache.key(shader));
      if (pipeline) this.byObject.set(shader, pipeline);
    }
    return pipeline;
  }

  /** Notes a dispatch of `pipeline` (the runtime calls it for each). */
  dispatched(pipeline: GPUComputePipeline): void {
    this.used.add(pipeline);
  }

  /** The labels of the compiled pipelines never dispatched yet (a warm-up leaves none). */
  undispatched(): string[] {
    return [...this.ready.values()].filter((p) => !this.used.has(p)).map((p) => p.label);
  }

  /** The pipeline's bind group layout (asking Dawn for it on every dispatch costs a native call each). */
  layout(pipeline: GPUComputePipeline): GPUBindGroupLayout {
    let layout = this.layouts.get(pipeline);
    if (!layout) {
      layout = pipeline.getBindGroupLayout(0);
      this.layouts.set(pipeline, layout);
    }
    return layout;
  }

  compile(shader: KernelShader): Promise<GPUComputePipeline> {
    const key = PipelineCache.key(shader);
    let p = this.pending.get(key);
    if (!p) {
      p = this.build(shader, key);
      this.pending.set(key, p);
      p.catch(() => this.pending.delete(key));
    }
    return p;
  }

  private async build(shader: KernelShader, key: string): Promise<GPUComputePipeline> {
    if (this.dumpWgsl) console.error(`// ---- WGSL ${shader.label}\n${shader.source}`);
    const module = this.device.createShaderModule({ label: shader.label, code: shader.source });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length > 0) {
      const lines = shader.source.split('\n');
      const detail = errors.map((m) => `  line ${m.lineNum}: ${m.message}\n    ${lines[m.lineNum - 1] ?? ''}`).join('\n');
      throw new GpuError(`kernel ${shader.label} does not compile:\n${detail}`);
    }
    try {
      const pipeline = await this.device.createComputePipelineAsync({
        label: shader.label,
        layout: 'auto',
        compute: { module, entryPoint: 'main' },
      });
      this.ready.set(key, pipeline);
      return pipeline;
    } catch (cause) {
      throw new GpuError(`kernel ${shader.label}: pipeline creation failed`, { cause });
    }
  }
}
