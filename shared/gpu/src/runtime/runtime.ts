// The runtime every kernel goes through: buffers, compilation, dispatch and readback. A batch of programs is
// encoded into one command buffer (one compute pass unless profiling), with all their uniforms packed into
// one buffer at aligned offsets, so a whole model forward is a single submit with no CPU round trip.
// A list of programs run again and again with the same buffers and uniform values (a decode step's forward at
// one batch size) can be recorded once (Gpu.record): its pipelines, bind groups and uniforms are then set up
// for good, and running it costs only the encoder calls themselves (WebGPU cannot replay command buffers).
import {
  acquireDevice, DEFAULT_MATMUL_GROUP_ROWS, DEFAULT_MATMUL_SPLIT_K_MAX, DEFAULT_MOE_GROUP_TILES, DEFAULT_MOE_MMA_MIN_ROWS, type AdapterInfo, type GpuOptions,
} from './device.js';
import { GpuError } from './errors.js';
import { PipelineCache } from './pipeline-cache.js';
import { asBinding, checkWorkgroupLimit, type BufferBinding, type KernelProgram } from './program.js';
import { packUniformsInto, uniformByteSize } from './uniforms.js';
import { checkBufferCount } from './bindings.js';
import { Profiler, RUN_PROFILE_LABEL } from './profiler.js';
import { subgroupMatrixUnsupportedReason, type MatrixCapabilities } from './matrix-caps.js';
import { DEFAULT_MLA_PREFILL_MMA_ROWS } from '../kernels/mla-prefill-attention/mla-prefill-attention-mma.js';
import { measureWorkgroupSlots, type WorkgroupSlots } from './occupancy-probe.js';

/** What `gpu.matmulLimits` holds (the matmul launcher's MatmulLimits). */
export interface MatmulDeviceLimits {
  readonly maxComputeWorkgroupStorageSize: number; readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupsPerDimension: number; readonly minStorageBufferOffsetAlignment: number;
  readonly maxStorageBuffersPerShaderStage: number;
  readonly subgroupMatrix: boolean;
  readonly workgroupSlots: number;
  readonly moeMmaMinRows: number;
  readonly splitKMax: number;
  readonly groupRows: number;
  readonly moeGroupTiles: number;
  readonly routerGemmMinTokens: number | undefined;
  readonly gemvStageInput: boolean;
  readonly subgroupSize?: number;
}

export const STORAGE = 0x80 | 0x8 | 0x4; // STORAGE | COPY_DST | COPY_SRC

/** One copyBufferToBuffer of Gpu.copy (byte offsets and size). */
export interface BufferCopy {
  readonly src: GPUBuffer;
  readonly srcOffset: number;
  readonly dst: GPUBuffer;
  readonly dstOffset: number;
  readonly size: number;
}

/**
 * Programs bound once for repeated runs (Gpu.record): their pipelines, bind groups, workgroup counts, and their
 * uniforms in a buffer of their own. Passed to Gpu.run among plain programs, they are encoded without being
 * validated, packed or looked up again. The buffers they bind must outlive them; dispose() when done.
 */
export class RecordedPrograms {
  /** Dispatches it encodes (programs with a zero workgroup count are left out). */
  readonly dispatches: number;
  private disposed = false;

  /** @internal (Gpu.record makes them) */
  constructor(
    readonly label: string,
    /** @internal */ readonly pipelines: readonly GPUComputePipeline[],
    /** @internal */ readonly bindGroups: readonly GPUBindGroup[],
    /** @internal x, y, z per dispatch */ readonly workgroups: Uint32Array,
    /** @internal kernel labels, for the profiler */ readonly labels: readonly string[],
    private readonly uniforms: GPUBuffer | null,
    private readonly gpu: Gpu,
  ) {
    this.dispatches = pipelines.length;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Frees its uniform buffer once the work already submitted is done (runs queued before stay valid). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const u = this.uniforms;
    if (u) this.gpu.device.queue.onSubmittedWorkDone().then(() => u.destroy(), () => u.destroy());
  }
}

export class Gpu {
  readonly pipelines: PipelineCache;
  readonly profiler: Profiler | null;
  private liveBuffers = new Set<GPUBuffer>();
  private ring: GPUBuffer | null = null;
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  /** Readback staging buffers by size, free for the next runAndRead. */
  private readonly staging = new Map<number, GPUBuffer[]>();
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;
  private readonly matmulEngine: 'auto' | 'f32';
  private readonly moeMmaMinRows: number;
  private readonly splitKMax: number;
  private readonly groupRows: number;
  private readonly moeGroupTiles: number;
  private readonly routerGemmMinTokens: number | undefined;
  private readonly gemvStageInput: boolean;
  private readonly subgroupReduce: boolean;
  private readonly moeDownCombine: boolean;
  /** Query rows a workgroup of the subgroup-matrix prefill attention takes (PREFILL_ATTENTION_ROWS). */
  readonly prefillAttentionRows: 64 | 128;
  private matmulLimitsMemo: MatmulDeviceLimits | null = null;
  private slotsMemo: WorkgroupSlots | null = null;
  private firstError: Error | null = null;
  /** Device limits read per run (device.limits is a native getter: read once, not per dispatch). */
  private readonly uniformAlign: number;
  private readonly maxDim: number;
  private encodedDispatches = 0;
  /**
   * The profiler times each dispatch (its own pass: a pass's cost added to every dispatch) rather than each run
   * (one pass, RUN_PROFILE_LABEL). Set by GpuOptions.profile; a bench may switch it between runs to time the same
   * work both ways.
   */
  profilePerKernel: boolean;

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
    this.splitKMax = opts.splitKMax ?? DEFAULT_MATMUL_SPLIT_K_MAX;
    this.groupRows = opts.groupRows ?? DEFAULT_MATMUL_GROUP_ROWS;
    this.moeGroupTiles = opts.moeGroupTiles ?? DEFAULT_MOE_GROUP_TILES;
    this.routerGemmMinTokens = opts.routerGemmMinTokens;
    this.gemvStageInput = opts.gemvStageInput ?? true;
    this.subgroupReduce = opts.subgroupReduce ?? true;
    this.moeDownCombine = opts.moeDownCombine ?? true;
    this.prefillAttentionRows = opts.prefillAttentionRows ?? DEFAULT_MLA_PREFILL_MMA_ROWS;
    this.profiler = opts.profile && features.has('timestamp-query') ? new Profiler(device) : null;
    this.profilePerKernel = opts.profile === true;
    this.uniformAlign = device.limits.minUniformBufferOffsetAlignment;
    this.maxDim = device.limits.maxComputeWorkgroupsPerDimension;
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
        maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
        subgroupMatrix: this.matmulOnMatrices, workgroupSlots: this.workgroupSlots.slots,
        moeMmaMinRows: this.moeMmaMinRows, splitKMax: this.splitKMax, groupRows: this.groupRows, moeGroupTiles: this.moeGroupTiles, routerGemmMinTokens: this.routerGemmMinTokens,
        gemvStageInput: this.gemvStageInput, moeDownCombine: this.moeDownCombine,
        ...(this.subgroupReduce && this.uniformSubgroupSize !== undefined ? { subgroupSize: this.uniformSubgroupSize } : {}),
      });
    }
    return this.matmulLimitsMemo;
  }
  /**
   * The one subgroup size every workgroup runs at, where the device has subgroups and its adapter reports a single
   * size (NVIDIA's 32); undefined otherwise, where a kernel cannot know which invocations share a subgroup.
   */
  get uniformSubgroupSize(): number | undefined {
    const { subgroupMinSize: lo, subgroupMaxSize: hi } = this.adapterInfo;
    return this.hasSubgroups && lo !== undefined && lo === hi ? lo : undefined;
  }
  /** Dispatches encoded by run() since the Gpu was created (benchmarks count a step's by it). */
  get dispatches(): number {
    return this.encodedDispatches;
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

  /** Buffer-to-buffer copies (offsets and sizes multiples of 4 bytes), queued after every write and run before. */
  copy(copies: readonly BufferCopy[]): void {
    if (copies.length === 0) return;
    const encoder = this.device.createCommandEncoder({ label: 'copies' });
    for (const c of copies) encoder.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
    this.device.queue.submit([encoder.finish()]);
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
    if (missing.length > 0) await Promise.all(missing.map((p) => this.pipelines.compile(p.shader)));
  }

  /**
   * Binds the programs for repeated runs: compiles them, packs their uniforms into a buffer of their own and
   * creates their bind groups, once. Run the result with run([..., recorded, ...]) as often as needed: it
   * reads the buffers the programs named, with the uniform values they had here.
   */
  async record(programs: readonly KernelProgram[], label = 'recorded'): Promise<RecordedPrograms> {
    await this.compile(programs);
    this.throwIfFailed();
    const live = programs.filter((p) => this.checkWorkgroups(p));
    const offsets: number[] = [];
    const total = this.uniformOffsets(live, offsets);
    let uniforms: GPUBuffer | null = null;
    if (total > 0) {
      uniforms = this.device.createBuffer({ label: `${label}.uniforms`, size: total, usage: 0x40 | 0x8 }); // UNIFORM | COPY_DST
      this.device.queue.writeBuffer(uniforms, 0, this.packAll(live, offsets, total));
    }
    const pipelines: GPUComputePipeline[] = [];
    const groups: GPUBindGroup[] = [];
    const workgroups = new Uint32Array(3 * live.length);
    live.forEach((p, i) => {
      const pipeline = this.pipelines.get(p.shader)!;
      pipelines.push(pipeline);
      groups.push(this.device.createBindGroup({ label: p.shader.label, layout: this.pipelines.layout(pipeline), entries: this.bindEntries(p, uniforms, offsets[i]!) }));
      workgroups[3 * i] = p.workgroups[0];
      workgroups[3 * i + 1] = p.workgroups[1] ?? 1;
      workgroups[3 * i + 2] = p.workgroups[2] ?? 1;
    });
    return new RecordedPrograms(label, pipelines, groups, workgroups, live.map((p) => p.shader.label), uniforms, this);
  }

  /**
   * Encodes and submits the programs in order; resolves once submitted (not finished). Recorded programs
   * (record()) among them are encoded as recorded.
   */
  async run(items: readonly (KernelProgram | RecordedPrograms)[]): Promise<void> {
    if (items.length === 0) return;
    await this.submit(items, null);
  }

  /**
   * run(items) with `byteSize` bytes of `buffer` from `offset` copied out at the end of the same submit (one
   * submit, into a staging buffer reused across calls): resolves once submitted, with the bytes' promise, which
   * settles when the GPU is done with this work (a decode step's tokens).
   */
  async runAndRead(
    items: readonly (KernelProgram | RecordedPrograms)[], buffer: GPUBuffer, offset: number, byteSize: number,
  ): Promise<{ readonly bytes: Promise<ArrayBuffer> }> {
    const size = Math.ceil(byteSize / 4) * 4;
    const staging = this.takeStaging(size);
    try {
      await this.submit(items, (encoder) => encoder.copyBufferToBuffer(buffer, offset, staging, 0, size));
    } catch (err) {
      staging.destroy();
      throw err;
    }
    const bytes = staging.mapAsync(0x1, 0, size).then(
      () => {
        const out = staging.getMappedRange(0, size).slice(0, byteSize);
        staging.unmap();
        this.giveBackStaging(staging);
        this.throwIfFailed();
        return out;
      },
      (err: unknown) => {
        staging.destroy();
        throw err;
      },
    );
    return { bytes };
  }

  /** A MAP_READ staging buffer of at least `size` bytes (sizes rounded to 256, so a few serve every batch). */
  private takeStaging(size: number): GPUBuffer {
    const rounded = Math.max(256, Math.ceil(size / 256) * 256);
    return this.staging.get(rounded)?.pop() ?? this.device.createBuffer({ label: 'readback', size: rounded, usage: 0x1 | 0x8 }); // MAP_READ | COPY_DST
  }

  private giveBackStaging(b: GPUBuffer): void {
    let free = this.staging.get(b.size);
    if (!free) this.staging.set(b.size, (free = []));
    if (free.length < 4) free.push(b);
    else b.destroy();
  }

  private async submit(items: readonly (KernelProgram | RecordedPrograms)[], after: ((encoder: GPUCommandEncoder) => void) | null): Promise<void> {
    let programs: KernelProgram[] | null = null;
    for (const it of items) {
      if (it instanceof RecordedPrograms) {
        if (it.isDisposed) throw new GpuError(`run: recorded programs '${it.label}' were disposed`);
      } else (programs ??= []).push(it);
    }
    if (programs) {
      if (programs.some((p) => !this.pipelines.get(p.shader))) await this.compile(programs);
    }
    this.throwIfFailed();
    // plain programs' uniforms: packed into the ring, at offsets in the order they run
    const offsets: number[] = [];
    const total = programs ? this.uniformOffsets(programs, offsets) : 0;
    const ring = this.uniformRing(total);
    if (ring) {
      // queue-ordered: work submitted before this write still sees the values it was submitted with
      this.device.queue.writeBuffer(ring, 0, this.packAll(programs!, offsets, total));
    }
    const encoder = this.device.createCommandEncoder({ label: 'latentwire' });
    const profiler = this.profiler;
    let pass = null as GPUComputePassEncoder | null;
    let current: GPUComputePipeline | null = null;
    let n = 0;
    // one pass for the whole run (timestamped when the profiler times runs); when it times kernels, a
    // timestamped pass per dispatch
    const perKernel = profiler !== null && this.profilePerKernel;
    const dispatch = (label: string, pipeline: GPUComputePipeline, group: GPUBindGroup, x: number, y: number, z: number) => {
      if (perKernel) {
        pass = encoder.beginComputePass({ label, timestampWrites: profiler.slot(label) });
        current = null;
      } else {
        pass ??= encoder.beginComputePass({ label: 'latentwire', ...(profiler ? { timestampWrites: profiler.slot(RUN_PROFILE_LABEL) } : {}) });
      }
      if (pipeline !== current) {
        pass.setPipeline(pipeline);
        this.pipelines.dispatched(pipeline);
        current = pipeline;
      }
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(x, y, z);
      n++;
      if (perKernel) {
        pass.end();
        pass = null;
      }
    };
    let plain = 0;
    for (const it of items) {
      if (it instanceof RecordedPrograms) {
        const { pipelines, bindGroups, workgroups: wg, labels } = it;
        for (let i = 0; i < pipelines.length; i++) dispatch(labels[i]!, pipelines[i]!, bindGroups[i]!, wg[3 * i]!, wg[3 * i + 1]!, wg[3 * i + 2]!);
        continue;
      }
      const uniformOffset = offsets[plain++]!;
      if (!this.checkWorkgroups(it)) continue;
      const pipeline = this.pipelines.get(it.shader)!;
      const [x, y = 1, z = 1] = it.workgroups;
      dispatch(it.shader.label, pipeline, this.bindGroup(it, pipeline, ring, uniformOffset), x, y, z);
    }
    pass?.end();
    profiler?.resolve(encoder);
    after?.(encoder);
    this.device.queue.submit([encoder.finish()]);
    this.encodedDispatches += n;
    await profiler?.collect();
  }

  /** False for a program with a zero workgroup count (nothing to dispatch); throws past the device's limit. */
  private checkWorkgroups(p: KernelProgram): boolean {
    checkWorkgroupLimit(p, this.maxDim);
    const [x, y = 1, z = 1] = p.workgroups;
    return x !== 0 && y !== 0 && z !== 0;
  }

  /** Each program's uniform offset (pushed to `offsets`, in order) and the bytes they take together. */
  private uniformOffsets(programs: readonly KernelProgram[], offsets: number[]): number {
    const align = this.uniformAlign;
    let total = 0;
    for (const p of programs) {
      offsets.push(total);
      if (p.shader.uniforms) total += Math.ceil(uniformByteSize(p.shader.uniforms) / align) * align;
    }
    return total;
  }

  /** The programs' uniform values, packed at their offsets into one staging array of `total` bytes. */
  private packAll(programs: readonly KernelProgram[], offsets: readonly number[], total: number): Uint8Array {
    const staging = new Uint8Array(total);
    const dv = new DataView(staging.buffer);
    for (let i = 0; i < programs.length; i++) {
      const p = programs[i]!;
      if (!p.shader.uniforms) continue;
      if (!p.uniformValues) throw new GpuError(`kernel ${p.shader.label}: uniforms declared but no values given`);
      packUniformsInto(p.shader.uniforms, p.uniformValues, dv, offsets[i]!);
    }
    return staging;
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
   * Bind groups are cached by pipeline, buffers (identity, offset, size) and uniform offset: programs rebuilt
   * each run with the same buffers find theirs again (the entries are only built on a miss).
   */
  private bindGroup(p: KernelProgram, pipeline: GPUComputePipeline, ring: GPUBuffer | null, uniformOffset: number): GPUBindGroup {
    let key = `${this.objectId(pipeline)}`;
    for (const b of p.buffers) {
      const bb = asBinding(b);
      key += bb === null ? `|${this.objectId(b)}` : `|${this.objectId(bb.buffer)}@${bb.offset ?? 0}+${bb.size ?? ''}`;
    }
    if (p.shader.uniforms) key += `|u${uniformOffset}`;
    let group = this.bindGroups.get(key);
    if (!group) {
      if (this.bindGroups.size >= 16384) this.bindGroups.clear();
      group = this.device.createBindGroup({ label: p.shader.label, layout: this.pipelines.layout(pipeline), entries: this.bindEntries(p, ring, uniformOffset) });
      this.bindGroups.set(key, group);
    }
    return group;
  }

  /** The program's buffers at bindings 0..n-1, then its uniforms (at `uniformOffset` of `uniforms`). */
  private bindEntries(p: KernelProgram, uniforms: GPUBuffer | null, uniformOffset: number): GPUBindGroupEntry[] {
    checkBufferCount(p.shader, p.buffers.length);
    const entries: GPUBindGroupEntry[] = p.buffers.map((b, binding) => {
      const bb: BufferBinding = asBinding(b) ?? { buffer: b as GPUBuffer };
      return { binding, resource: { buffer: bb.buffer, offset: bb.offset ?? 0, size: bb.size } };
    });
    if (p.shader.uniforms) {
      entries.push({ binding: p.buffers.length, resource: { buffer: uniforms!, offset: uniformOffset, size: uniformByteSize(p.shader.uniforms) } });
    }
    return entries;
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
    for (const free of this.staging.values()) for (const b of free) b.destroy();
    this.staging.clear();
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
