// The runtime every kernel goes through: buffers, compilation, dispatch and readback. A batch of programs is
// encoded into one command buffer (one compute pass unless profiling), with all their uniforms packed into
// one buffer at aligned offsets, so a whole model forward is a single submit with no CPU round trip.
import { acquireDevice, type AdapterInfo, type GpuOptions } from './device.js';
import { GpuError } from './errors.js';
import { PipelineCache } from './pipeline-cache.js';
import type { BufferBinding, KernelProgram } from './program.js';
import { packUniforms, uniformByteSize } from './uniforms.js';
import { Profiler } from './profiler.js';
import { subgroupMatrixUnsupportedReason, type MatrixCapabilities } from './matrix-caps.js';
import { DEFAULT_MOE_MMA_MIN_ROWS } from '../kernels/moe/moe-experts.js';
import { measureWorkgroupSlots, type WorkgroupSlots } from './occupancy-probe.js';

/** What `gpu.matmulLimits` holds (the matmul launcher's MatmulLimits). */
export interface MatmulDeviceLimits {
  readonly maxComputeWorkgroupStorageSize: number; readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupsPerDimension: number; readonly minStorageBufferOffsetAlignment: number;
  readonly subgroupMatrix: boolean;
  readonly workgroupSlots: number;
  readonly moeMmaMinRows: number;
}

export const STORAGE = 0x80 | 0x8 | 0x4; // STORAGE | COPY_DST | COPY_SRC

export class Gpu {
  readonly pipelines: PipelineCache;
  readonly profiler: Profiler | null;
  private liveBuffers = new Set<GPUBuffer>();
  private ring: GPUBuffer | null = null;
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;
  private readonly matmulEngine: 'auto' | 'f32';
  private readonly moeMmaMinRows: number;
  private matmulLimitsMemo: MatmulDeviceLimits | null = null;
  private slotsMemo: WorkgroupSlots | null = null;
  private firstError: Error | null = null;

  private constructor(
    private readonly instance: GPU,
    readonly device: GPUDevice,
    readonly adapterInfo: AdapterInfo,
    readonly features: ReadonlySet<string>,
    opts: GpuOptions,
  ) {
    this.pipelines = new PipelineCache(device, opts.dumpWgsl ?? false);
    this.matmulEngine = opts.matmulEngine ?? 'auto';
    this.moeMmaMinRows = opts.moeMmaMinRows ?? DEFAULT_MOE_MMA_MIN_ROWS;
    this.profiler = opts.profile && features.has('timestamp-query') ? new Profiler(device) : null;
    device.addEventListener('uncapturederror', (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      this.firstError ??= new GpuError(`WebGPU error: ${err.message}`);
    });
  }

  static async create(opts: GpuOptions = {}): Promise<Gpu> {
    const acquired = await acquireDevice(opts);
    const gpu = new Gpu(acquired.instance, acquired.device, acquired.adapterInfo, acquired.features, opts);
    gpu.slotsMemo = await measureWorkgroupSlots(gpu);
    return gpu;
  }

  /**
   * How many of the largest workgroups this device runs at once, measured when the Gpu was created (1 per
   * SM on NVIDIA): kernels size their grids to fill the device by it instead of a card's SM count.
   */
  get workgroupSlots(): WorkgroupSlots {
    if (!this.slotsMemo) throw new GpuError('workgroupSlots: not measured yet');
    return this.slotsMemo;
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }
  get hasF16(): boolean {
    return this.features.has('shader-f16');
  }
  get hasSubgroups(): boolean {
    return this.features.has('subgroups');
  }
  /** What kernels pick their subgroup-matrix (tensor-core) variants by: the features and the adapter's subgroup facts. */
  get matrixCapabilities(): AdapterInfo & MatrixCapabilities {
    return { ...this.adapterInfo, features: this.features };
  }
  /** Whether matmuls run on subgroup matrices: the device can, and MATMUL_ENGINE did not say f32. */
  get matmulOnMatrices(): boolean {
    return this.matmulEngine === 'auto' && subgroupMatrixUnsupportedReason(this.matrixCapabilities) === null;
  }
  /** The device facts the matmul launcher sizes and picks its variants by (a plain object: limits are getters). */
  get matmulLimits(): MatmulDeviceLimits {
    if (!this.matmulLimitsMemo) {
      const l = this.device.limits;
      this.matmulLimitsMemo = Object.freeze({
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize, maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension, minStorageBufferOffsetAlignment: l.minStorageBufferOffsetAlignment,
        subgroupMatrix: this.matmulOnMatrices, workgroupSlots: this.workgroupSlots.slots,
        moeMmaMinRows: this.moeMmaMinRows,
      });
    }
    return this.matmulLimitsMemo;
  }
  /** Bytes held by buffers created through this runtime and not destroyed (for leak tests). */
  get liveBufferBytes(): number {
    let n = 0;
    for (const b of this.liveBuffers) n += b.size;
    return n;
  }
  get liveBufferCount(): number {
    return this.liveBuffers.size;
  }

  buffer(label: string, byteSize: number, usage: number = STORAGE): GPUBuffer {
    const size = Math.max(16, Math.ceil(byteSize / 16) * 16);
    if (size > this.limits.maxBufferSize) {
      throw new GpuError(`buffer ${label}: ${size} bytes exceeds maxBufferSize ${this.limits.maxBufferSize}`);
    }
    const b = this.device.createBuffer({ label, size, usage });
    this.liveBuffers.add(b);
    return b;
  }

  upload(label: string, data: ArrayBufferView, usage: number = STORAGE): GPUBuffer {
    const b = this.buffer(label, data.byteLength, usage);
    this.write(b, data);
    return b;
  }

  write(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    // writeBuffer needs a multiple of 4 bytes; pad the tail through a copy when needed
    if (data.byteLength % 4 === 0) {
      this.device.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
    } else {
      const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
      padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      this.device.queue.writeBuffer(buffer, offset, padded);
    }
  }

  destroy(...buffers: (GPUBuffer | null | undefined)[]): void {
    for (const b of buffers) {
      if (!b) continue;
      this.liveBuffers.delete(b);
      b.destroy();
    }
  }

  /** Compiles every shader not yet compiled (start-up warm-up or first use). */
  async compile(programs: readonly KernelProgram[]): Promise<void> {
    const missing = programs.filter((p) => !this.pipelines.get(p.shader));
    await Promise.all(missing.map((p) => this.pipelines.compile(p.shader)));
  }

  /** Encodes and submits the programs in order; resolves once submitted (not finished). */
  async run(programs: readonly KernelProgram[]): Promise<void> {
    if (programs.length === 0) return;
    await this.compile(programs);
    this.throwIfFailed();
    const align = this.limits.minUniformBufferOffsetAlignment;
    const offsets: number[] = [];
    let total = 0;
    for (const p of programs) {
      offsets.push(total);
      if (p.shader.uniforms) total += Math.ceil(uniformByteSize(p.shader.uniforms) / align) * align;
    }
    const ring = this.uniformRing(total);
    if (ring) {
      const staging = new Uint8Array(total);
      programs.forEach((p, i) => {
        if (!p.shader.uniforms) return;
        if (!p.uniformValues) throw new GpuError(`kernel ${p.shader.label}: uniforms declared but no values given`);
        staging.set(new Uint8Array(packUniforms(p.shader.uniforms, p.uniformValues)), offsets[i]);
      });
      // queue-ordered: work submitted before this write still sees the values it was submitted with
      this.device.queue.writeBuffer(ring, 0, staging);
    }
    const encoder = this.device.createCommandEncoder({ label: 'latentwire' });
    let pass = null as GPUComputePassEncoder | null;
    for (let i = 0; i < programs.length; i++) {
      const p = programs[i]!;
      const pipeline = this.pipelines.get(p.shader)!;
      const bindGroup = this.bindGroup(p, pipeline, ring, offsets[i]!);
      const [x, y = 1, z = 1] = p.workgroups;
      const maxDim = this.limits.maxComputeWorkgroupsPerDimension;
      if (x > maxDim || y > maxDim || z > maxDim) {
        throw new GpuError(`kernel ${p.shader.label}: dispatch ${x}x${y}x${z} exceeds ${maxDim} workgroups per dimension`);
      }
      if (x === 0 || y === 0 || z === 0) continue;
      if (this.profiler) {
        pass?.end();
        pass = encoder.beginComputePass({ label: p.shader.label, timestampWrites: this.profiler.slot(p.shader.label) });
      } else {
        pass ??= encoder.beginComputePass({ label: 'latentwire' });
      }
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(x, y, z);
      if (this.profiler) {
        pass.end();
        pass = null;
      }
    }
    pass?.end();
    this.profiler?.resolve(encoder);
    this.device.queue.submit([encoder.finish()]);
    await this.profiler?.collect();
  }

  /**
   * The persistent uniform buffer (program i of a run reads its uniforms at that run's offset i), grown when
   * a run needs more. Being persistent, it lets bind groups be reused across runs (bindGroup()).
   */
  private uniformRing(bytes: number): GPUBuffer | null {
    if (bytes === 0) return null;
    if (!this.ring || this.ring.size < bytes) {
      const old = this.ring;
      if (old) this.device.queue.onSubmittedWorkDone().then(() => old.destroy(), () => old.destroy());
      this.ring = this.device.createBuffer({ label: 'uniforms', size: Math.max(bytes, 2 * (old?.size ?? 0), 1 << 16), usage: 0x40 | 0x8 });
      this.bindGroups.clear();
    }
    return this.ring;
  }

  /**
   * Bind groups are cached by pipeline, buffers (identity, offset, size) and uniform offset: a decode step
   * encodes the same ~600 dispatches every step, and creating their bind groups was most of its CPU time.
   */
  private bindGroup(p: KernelProgram, pipeline: GPUComputePipeline, ring: GPUBuffer | null, uniformOffset: number): GPUBindGroup {
    let key = `${this.objectId(pipeline)}`;
    const entries: GPUBindGroupEntry[] = p.buffers.map((b, binding) => {
      const bb: BufferBinding = 'buffer' in b && !(b instanceof GPUBuffer) ? (b as BufferBinding) : { buffer: b as GPUBuffer };
      key += `|${this.objectId(bb.buffer)}@${bb.offset ?? 0}+${bb.size ?? ''}`;
      return { binding, resource: { buffer: bb.buffer, offset: bb.offset ?? 0, size: bb.size } };
    });
    if (p.shader.uniforms) {
      key += `|u${uniformOffset}`;
      entries.push({ binding: p.buffers.length, resource: { buffer: ring!, offset: uniformOffset, size: uniformByteSize(p.shader.uniforms) } });
    }
    let group = this.bindGroups.get(key);
    if (!group) {
      if (this.bindGroups.size >= 16384) this.bindGroups.clear();
      group = this.device.createBindGroup({ label: p.shader.label, layout: this.pipelines.layout(pipeline), entries });
      this.bindGroups.set(key, group);
    }
    return group;
  }

  private objectId(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(o, id);
    }
    return id;
  }

  /** Waits for all submitted work and surfaces any WebGPU error raised meanwhile. */
  async sync(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    this.throwIfFailed();
  }

  async read(buffer: GPUBuffer, offset = 0, byteSize = buffer.size - offset): Promise<ArrayBuffer> {
    const size = Math.ceil(byteSize / 4) * 4;
    const staging = this.device.createBuffer({ label: 'readback', size, usage: 0x1 | 0x8 }); // MAP_READ | COPY_DST
    const encoder = this.device.createCommandEncoder({ label: 'readback' });
    encoder.copyBufferToBuffer(buffer, offset, staging, 0, size);
    this.device.queue.submit([encoder.finish()]);
    await staging.mapAsync(0x1);
    const out = staging.getMappedRange().slice(0, byteSize);
    staging.unmap();
    staging.destroy();
    this.throwIfFailed();
    return out;
  }

  async readF32(buffer: GPUBuffer, offset = 0, count?: number): Promise<Float32Array> {
    return new Float32Array(await this.read(buffer, offset, count === undefined ? undefined : count * 4));
  }

  async readU32(buffer: GPUBuffer, offset = 0, count?: number): Promise<Uint32Array> {
    return new Uint32Array(await this.read(buffer, offset, count === undefined ? undefined : count * 4));
  }

  dispose(): void {
    for (const b of this.liveBuffers) b.destroy();
    this.liveBuffers.clear();
    this.ring?.destroy();
    this.bindGroups.clear();
    this.device.destroy();
  }

  private throwIfFailed(): void {
    if (this.firstError) {
      const e = this.firstError;
      this.firstError = null;
      throw e;
    }
  }
}
