// Shared WGSL pieces included by name: dependencies first, each piece once per shader, unknown names refused,
// and a shader built through bindings() gets its includes resolved.
import test from 'ava';
import { resolveIncludes } from '../../src/runtime/wgsl-pieces/index.js';
import { bindings } from '../../src/runtime/bindings.js';

const count = (s: string, what: string) => s.split(what).length - 1;

test('wgsl pieces - an include line becomes the piece, its dependencies first', (t) => {
  const out = resolveIncludes('a\n//!include fp8\nb');
  t.false(out.includes('//!include'));
  t.true(out.startsWith('a\n'));
  t.true(out.endsWith('b'));
  t.true(out.indexOf('fn e4m3_encode(') > 0 && out.indexOf('fn e4m3_encode(') < out.indexOf('fn e4m3_decode4('), 'fp8 = encode then decode');
});

test('wgsl pieces - each piece is emitted once however many includes name it', (t) => {
  const out = resolveIncludes('//!include fp8-decode, silu\nfn x() {}\n//!include fp8, silu\n  //!include fp8-decode');
  t.is(count(out, 'fn e4m3_decode4('), 1);
  t.is(count(out, 'fn fp8_round_bits('), 1, 'the later fp8 include adds only the encoder');
  t.is(count(out, 'fn silu('), 1);
  t.is(count(resolveIncludes('//!include fp8, fp8-encode, fp8'), 'fn fp8_round_bits('), 1);
});

test('wgsl pieces - an unknown name is an error naming it and the known ones', (t) => {
  t.throws(() => resolveIncludes('//!include silu, nope'), { message: /'nope' does not exist \(known: .*silu/ });
  t.throws(() => resolveIncludes('//!include fp9'), { message: /'fp9'/ });
});

test('wgsl pieces - shaders built through bindings() resolve their includes', (t) => {
  const s = bindings([['y', 'array<f32>', 'read_write']]).shader('k', '//!include silu\nfn main() {}');
  t.true(s.source.includes('fn silu_mul4('));
  t.false(s.source.includes('//!include'));
});
