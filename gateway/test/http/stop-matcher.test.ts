// StopMatcher on its own: every way of cutting a text into pieces gives the same output.
import { seededRandom } from '@latentwire/testing';
import test from 'ava';
import { StopMatcher } from '../../src/index.js';

/** Cuts `text` into random pieces of 1-4 UTF-16 units (so even surrogate pairs get split). */
function randomPieces(text: string, rand: () => number): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < text.length; ) {
    const n = 1 + Math.floor(rand() * 4);
    pieces.push(text.slice(i, i + n));
    i += n;
  }
  return pieces;
}

function run(pieces: readonly string[], stops: string[]): { out: string; stopped: boolean } {
  const m = new StopMatcher(stops);
  let out = '';
  for (const p of pieces) {
    const r = m.push(p);
    out += r.text;
    if (r.stopped) return { out, stopped: true };
  }
  return { out: out + m.flush(), stopped: false };
}

/**
 * The reference, from all occurrences at once: the first piece in which any stop string is complete ends
 * the text, which is cut at the earliest-starting occurrence complete by the end of that piece.
 */
function expected(pieces: readonly string[], stops: string[]): { out: string; stopped: boolean } {
  const text = pieces.join('');
  const occurrences: { start: number; end: number }[] = [];
  for (const s of stops) for (let i = text.indexOf(s); i >= 0; i = text.indexOf(s, i + 1)) occurrences.push({ start: i, end: i + s.length });
  let pieceEnd = 0;
  for (const p of pieces) {
    pieceEnd += p.length;
    const done = occurrences.filter((o) => o.end <= pieceEnd);
    if (done.length > 0) return { out: text.slice(0, Math.min(...done.map((o) => o.start))), stopped: true };
  }
  return { out: text, stopped: false };
}

test('stop matcher - random piece boundaries give the reference cut (first stop to complete, earliest start)', (t) => {
  const rand = seededRandom(7);
  const alphabet = 'abAB é🙂';
  for (let trial = 0; trial < 2000; trial++) {
    const len = 1 + Math.floor(rand() * 40);
    let text = '';
    for (let i = 0; i < len; i++) text += [...alphabet][Math.floor(rand() * [...alphabet].length)];
    const stops = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => {
      const start = Math.floor(rand() * text.length);
      return rand() < 0.7 ? text.slice(start, start + 1 + Math.floor(rand() * 4)) : 'zz';
    }).filter((s) => s.length > 0);
    const pieces = randomPieces(text, rand);
    t.deepEqual(run(pieces, stops), expected(pieces, stops), JSON.stringify({ pieces, stops }));
  }
});

test('stop matcher - holds back exactly a possible stop prefix and nothing more', (t) => {
  const m = new StopMatcher(['STOP', 'xy']);
  t.deepEqual(m.push('a S'), { text: 'a ', stopped: false });
  t.deepEqual(m.push('T'), { text: '', stopped: false });
  t.deepEqual(m.push('x'), { text: 'ST', stopped: false });
  t.deepEqual(m.push('y!'), { text: '', stopped: true });
  t.deepEqual(m.push('more'), { text: '', stopped: true });
  t.is(m.flush(), '');
});

test('stop matcher - the first stop string to complete wins over one that started earlier', (t) => {
  // 'b' completes in the first piece; 'abc' would only complete in the second. Servers check stops as text
  // arrives, so the cut depends on where pieces (tokens) end.
  const m = new StopMatcher(['abc', 'b']);
  t.deepEqual(m.push('ab'), { text: 'a', stopped: true });
  const whole = new StopMatcher(['abc', 'b']);
  t.deepEqual(whole.push('abc'), { text: '', stopped: true });
});
