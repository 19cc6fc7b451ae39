// SwiGLU's gate, in the one operation order every kernel uses (g / (1 + e^-g), then · up), so fused and
// unfused paths round alike.
export const silu = /* wgsl */ `
fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }
fn silu_mul(gv: f32, uv: f32) -> f32 { return gv / (1.0 + exp(-gv)) * uv; }
fn silu_mul4(gv: vec4<f32>, uv: vec4<f32>) -> vec4<f32> { return gv / (1.0 + exp(-gv)) * uv; }
`;
