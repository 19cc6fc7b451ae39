// Small kernels of the benches: seeded N(0,1)-like fills with an exact CPU twin, and a streaming read that
// measures the card's read bandwidth.
import { bindings, type KernelProgram } from '@latentwire/gpu';

const FILL_BINDINGS = bindings([['w', 'array<f32>', 'read_write']], { count: 'u32', first: 'u32', seed: 'u32', row: 'u32' });
const FILL_WG = 256;
const FILL_ROW = FILL_WG * 4096;

// Irwin–Hall: the sum of 12 uniforms minus 6 has mean 0 and variance 1 (tails cut at ±6). Each uniform has 16
// bits, so every step is exact in f32 on any GPU and in JavaScript: the CPU twin gives the same values bit for bit.
const NORMAL_WGSL = /* wgsl */ `
fn bench_hash(x: u32, seed: u32) -> u32 {
  var h = (x * 0x9e3779b9u) ^ seed;
  h ^= h >> 16u; h *= 0x7feb352du; h ^= h >> 15u; h *= 0x846ca68bu; h ^= h >> 16u;
  return h;
}
fn normal_value(j: u32, seed: u32) -> f32 {
  var s = 0.0;
  for (var k = 0u; k < 6u; k++) {
    let h = bench_hash(j * 6u + k, seed);
    s += (f32(h >> 16u) + 0.5) + (f32(h & 0xffffu) + 0.5);
  }
  return s / 65536.0 - 6.0;
}`;

function benchHash(x: number, seed: number): number {
  let h = (Math.imul(x, 0x9e3779b9) ^ seed) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The value normalFill writes at index j (CPU twin, identical to the f32 the GPU writes). */
export function normalValue(j: number, seed: number): number {
  let s = 0;
  for (let k = 0; k < 6; k++) {
    const h = benchHash((Math.imul(j, 6) + k) >>> 0, seed);
    s += (h >>> 16) + 0.5 + ((h & 0xffff) + 0.5);
  }
  return s / 65536 - 6;
}

/** Writes f32 normal_value(first + i, seed) to element i of `buffer`, i < count. */
export function normalFill(a: { buffer: GPUBuffer; count: number; first: number; seed: number }): KernelProgram {
  return {
    shader: FILL_BINDINGS.shader('bench_normal_fill', `${FILL_BINDINGS.wgsl}${NORMAL_WGSL}
@compute @workgroup_size(${FILL_WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = wg.y * u.row + wg.x * ${FILL_WG}u + lid;
  if (wg.x * ${FILL_WG}u + lid >= u.row || i >= u.count) { return; }
  w[i] = normal_value(u.first + i, u.seed);
}`),
    buffers: FILL_BINDINGS.buffers({ w: a.buffer }),
    uniformValues: { count: a.count, first: a.first >>> 0, seed: a.seed, row: FILL_ROW },
    workgroups: [Math.min(4096, Math.ceil(a.count / FILL_WG)), Math.ceil(a.count / FILL_ROW)],
  };
}

const READ_BINDINGS = bindings([['src', 'array<vec4<u32>>'], ['sink', 'array<u32>', 'read_write']], { n: 'u32', first: 'u32' });
const READ_WGS = 4096;

/**
 * Reads `bytes` of src as vec4<u32> once, from byte `firstByte` on (a multiple of 16; default 0): grid-stride,
 * two loads in flight a thread; writes nothing real.
 */
export function streamRead(src: GPUBuffer, sink: GPUBuffer, bytes: number, firstByte = 0): KernelProgram {
  return {
    shader: READ_BINDINGS.shader('bench_stream_read', `${READ_BINDINGS.wgsl}@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let total = ${READ_WGS * 256}u;
  var a = vec4<u32>(0u);
  var b = vec4<u32>(0u);
  var i = gid.x;
  for (; i + total < u.n; i += 2u * total) { a ^= src[u.first + i]; b ^= src[u.first + i + total]; }
  if (i < u.n) { a ^= src[u.first + i]; }
  let x = a ^ b;
  // never true for real data, but the compiler cannot know: the loads stay
  if (x.x == 0x9e3779b9u && x.y == 0x7feb352du) { sink[0] = x.z; }
}`),
    buffers: READ_BINDINGS.buffers({ src, sink }),
    uniformValues: { n: bytes / 16, first: firstByte / 16 },
    workgroups: [READ_WGS],
  };
}

const TOUCH_BINDINGS = bindings([['buf', 'array<f32>', 'read_write']], { n: 'u32' });
const TOUCH_WG = 256;

/**
 * The least a dispatch can do: each of `workgroups` workgroups of 256 threads updates one f32 of `buf` per thread.
 * A list of these over one buffer is a chain of dependent dispatches (each waits for the one before).
 */
export function touch(buf: GPUBuffer, workgroups: number): KernelProgram {
  return {
    shader: TOUCH_BINDINGS.shader('bench_touch', `${TOUCH_BINDINGS.wgsl}@compute @workgroup_size(${TOUCH_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x < u.n) { buf[gid.x] = fma(buf[gid.x], 0.5, 1.0); }
}`),
    buffers: TOUCH_BINDINGS.buffers({ buf }),
    uniformValues: { n: workgroups * TOUCH_WG },
    workgroups: [workgroups],
  };
}
