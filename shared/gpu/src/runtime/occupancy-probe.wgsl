// A workgroup as large as the device allows (most invocations, all of its workgroup memory) that spins on a
// dependent chain of `u.iters` FMAs: as many of them run at once as the GPU has room for (1
// per SM measured on an H200), so the dispatch time steps up each time the count passes a multiple of that room.
// Prepended by the launcher: const WG (invocations), PAD (vec4s of workgroup memory).
// Bindings: sink (read_write f32); uniforms u: iters.
/*@BINDINGS@*/

var<workgroup> pad: array<vec4<f32>, PAD>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  for (var i = lid; i < PAD; i += WG) { pad[i] = vec4<f32>(f32(i)); }
  workgroupBarrier();
  var a = pad[(lid * 7u) % PAD].x + f32(wg.x);
  for (var i = 0u; i < u.iters; i++) { a = fma(a, 0.999999, 0.5); }
  // never true (a stays near 5e5), but the compiler cannot know: the chain and the memory stay
  if (a == -1.0) { sink[0] = a; }
}
