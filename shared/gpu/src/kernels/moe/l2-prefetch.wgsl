// Reads words that the next dispatches will read, so that they find them in the L2 cache instead of HBM: the
// workgroups that run beside a latency-bound one (the MoE selection: one workgroup, a few µs during which the
// memory system idles) read the shared experts' gate/up rows the expert GEMV reads next. Workgroups [0, pf_wgs0)
// share range 0 (pf0[pf_off0, pf_off0 + pf_len0), in vec4<u32> words), the others range 1 (pf1 likewise); a
// thread's 8 loads are in flight at once (indices past its share clamped to the share's last word). Returns the
// words' xor, which the includer consumes under a condition that never holds at run time, so the loads stay.
//
// The includer declares pf0 and pf1 (array<vec4<u32>>, read), the uniforms pf_off0, pf_len0, pf_wgs0, pf_off1,
// pf_len1 (pf_len0, pf_len1 > 0) and const WG.

// [begin, end) of workgroup p's share of len words split over wgs workgroups
fn l2_prefetch_bounds(len: u32, p: u32, wgs: u32) -> vec2<u32> {
  let per = (len + wgs - 1u) / wgs;
  let begin = min(len, p * per);
  return vec2<u32>(begin, min(len, begin + per));
}

// the xor of words [off + b.x, off + b.y) of arr, this invocation's stride of them
fn l2_prefetch_range(arr: ptr<storage, array<vec4<u32>>, read>, off: u32, b: vec2<u32>, lid: u32) -> vec4<u32> {
  var acc = vec4<u32>(0u);
  if (b.x >= b.y) { return acc; }
  let last = off + b.y - 1u;
  for (var c = off + b.x + lid; c <= last; c += 8u * WG) {
    var w: array<vec4<u32>, 8>;
    for (var j = 0u; j < 8u; j++) { w[j] = (*arr)[min(c + j * WG, last)]; }
    for (var j = 0u; j < 8u; j++) { acc ^= w[j]; }
  }
  return acc;
}

fn l2_prefetch(p: u32, n: u32, lid: u32) -> u32 {
  var acc: vec4<u32>;
  if (p < u.pf_wgs0) {
    acc = l2_prefetch_range(&pf0, u.pf_off0, l2_prefetch_bounds(u.pf_len0, p, u.pf_wgs0), lid);
  } else {
    acc = l2_prefetch_range(&pf1, u.pf_off1, l2_prefetch_bounds(u.pf_len1, p - u.pf_wgs0, n - u.pf_wgs0), lid);
  }
  return acc.x ^ acc.y ^ acc.z ^ acc.w;
}
