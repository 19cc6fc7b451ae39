// The second half of a split-K GEMM: y (+)= Σ_s part[s·split_stride + m·N + n], the splits summed in order
// (so a result does not depend on scheduling), into y's strided rows. One invocation an output element.
//
// Prepended by the launcher (split-reduce.ts): bindings part @0, y @1, uniforms u @2, and `ACC`, the y term
// (`y[yi] + ` for the accumulate form, empty otherwise). Grid: (min(ceil(M·N / 256), max), rest).

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= u.M * u.N) { return; }
  var s = part[i];
  for (var k = 1u; k < u.splits; k++) { s += part[k * u.split_stride + i]; }
  let yi = (i / u.N) * u.y_stride + u.y_offset + i % u.N;
  y[yi] = /*@ACC@*/s;
}
