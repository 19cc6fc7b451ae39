// A dry-run stand-in for a Gpu: code written against the Gpu (a prefill, a forward) runs through it unchanged,
// but nothing reaches the device. Buffers are stand-ins that only carry their label and size (so launchers
// validate extents as usual, at any size, without allocating), `run` records the programs instead of
// dispatching them, and reads answer zeros. The device's facts (limits, features, workgroup slots, the
// matmul limits) are the real Gpu's, so every launcher picks exactly the variant it would pick for real.
//
// Its use: listing the shaders a piece of code can select, to compile them ahead of traffic (see
// PrefillModel.compileAll), by calling the same code the requests run instead of restating its choices.
import type { Gpu } from './runtime.js';
import { asBinding, checkWorkgroupLimit, type KernelProgram } from './program.js';
import { GpuError } from './errors.js';

/** What a dry run saw: the programs of every `run`, in order. */
export interface DryRun {
  /** The stand-in, typed as the Gpu it replaces. */
  readonly gpu: Gpu;
  /** Programs recorded since the last take(). */
  take(): KernelProgram[];
}

/** Device facts read through to the real Gpu (read-only; nothing here touches the queue). */
const FACTS = new Set<PropertyKey>([
  'limits', 'matmulLimits', 'matrixCapabilities', 'matmulOnMatrices', 'features', 'hasF16', 'hasSubgroups', 'workgroupSlots', 'adapterInfo', 'prefillAttentionRows',
]);

export function dryRunGpu(real: Gpu): DryRun {
  let recorded: KernelProgram[] = [];
  const stand = (label: string, byteSize: number): GPUBuffer => {
    // the real Gpu's rounding and limit, so size checks see what a real buffer would hold, and a size the
    // device cannot hold fails the dry run as it would fail the real one
    const size = Math.max(16, Math.ceil(byteSize / 16) * 16);
    if (size > real.limits.maxBufferSize) throw new GpuError(`buffer ${label}: ${size} bytes exceeds maxBufferSize ${real.limits.maxBufferSize}`);
    return { label, size, usage: 0, mapState: 'unmapped', destroy: () => undefined } as unknown as GPUBuffer;
  };
  // fresh zero memory is mapped lazily: a read of a long prompt's pages costs nothing until someone looks at it
  const zeros = (bytes: number) => new ArrayBuffer(bytes);
  const own: Record<PropertyKey, unknown> = {
    profiler: null,
    buffer: (label: string, byteSize: number) => stand(label, byteSize),
    upload: (label: string, data: ArrayBufferView) => stand(label, data.byteLength),
    write: () => undefined,
    copy: () => undefined,
    destroy: () => undefined,
    compile: async () => undefined,
    run: async (programs: readonly KernelProgram[]) => {
      for (const p of programs) {
        checkWorkgroupLimit(p, real.limits.maxComputeWorkgroupsPerDimension);
        checkBindingSizes(p, real.limits.maxStorageBufferBindingSize);
      }
      recorded.push(...programs);
    },
    sync: async () => undefined,
    read: async (buffer: GPUBuffer, offset = 0, byteSize = buffer.size - offset) => zeros(byteSize),
    readF32: async (buffer: GPUBuffer, offset = 0, count?: number) => new Float32Array(zeros(count === undefined ? buffer.size - offset : count * 4)),
    readU32: async (buffer: GPUBuffer, offset = 0, count?: number) => new Uint32Array(zeros(count === undefined ? buffer.size - offset : count * 4)),
  };
  const gpu = new Proxy(real, {
    get(target, prop) {
      if (typeof prop === 'symbol' || prop === 'then') return undefined; // not a thenable, no inspection hooks
      if (Object.hasOwn(own, prop)) return own[prop];
      if (FACTS.has(prop)) return Reflect.get(target, prop, target);
      throw new Error(`dry run: Gpu.${String(prop)} is not available (add it to runtime/dry-run.ts if a dry run needs it)`);
    },
  });
  return {
    gpu,
    take: () => {
      const out = recorded;
      recorded = [];
      return out;
    },
  };
}

/**
 * A binding wider than the device binds fails the real dispatch (bind-group validation), as does a grid past the
 * workgroups a dimension takes (the runtime's check), so both fail the dry run too: a prompt length whose
 * activations outgrow a binding, or whose rows outgrow a grid, is then a length the device cannot prefill.
 */
function checkBindingSizes(p: KernelProgram, maxBinding: number): void {
  p.buffers.forEach((b, i) => {
    const bb = asBinding(b) ?? { buffer: b as GPUBuffer };
    const size = bb.size ?? bb.buffer.size - (bb.offset ?? 0);
    if (size > maxBinding) {
      // the kernel's name for the binding: a pooled buffer keeps the label it was first made under
      const name = p.shader.bindings?.[i] ?? bb.buffer.label;
      throw new GpuError(`${p.shader.label}: binding ${i} (${name}) of ${size} bytes exceeds maxStorageBufferBindingSize ${maxBinding}`);
    }
  });
}
