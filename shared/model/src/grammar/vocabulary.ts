// Each token's bytes as the tokenizer decodes it, for the grammar's token masks: byte-level BPE tokens
// through GPT-2's byte↔unicode table, SentencePiece-style ones with '▁' as a space and <0xNN> byte
// fallback, added tokens as their literal text. Special tokens get null (never allowed by a grammar; EOS
// is allowed apart, where the output may end).
import type { ModelFolder } from '../model-folder.js';
import type { Tokenizer } from '../tokenizer.js';
import type { GrammarVocabulary } from './token-grammar.js';

let byteDecoder: Map<string, number> | null = null;
/** GPT-2's bytes_to_unicode, inverted. */
function gpt2ByteDecoder(): Map<string, number> {
  if (byteDecoder) return byteDecoder;
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  byteDecoder = new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]!), b]));
  return byteDecoder;
}

const enc = new TextEncoder();

export function tokenBytes(tokenizer: Tokenizer, size: number): (Uint8Array | null)[] {
  const { decoders, added } = tokenizer.vocabInfo;
  const byteLevel = decoders.includes('ByteLevel');
  const out: (Uint8Array | null)[] = new Array(size).fill(null);
  const dec = byteLevel ? gpt2ByteDecoder() : null;
  for (let id = 0; id < size; id++) {
    const a = added.get(id);
    if (a) {
      out[id] = a.special ? null : enc.encode(a.content);
      continue;
    }
    const tok = tokenizer.idToToken(id);
    if (tok === undefined) continue;
    if (dec) {
      const bytes: number[] = [];
      let ok = true;
      for (const ch of tok) {
        const b = dec.get(ch);
        if (b === undefined) { ok = false; break; }
        bytes.push(b);
      }
      out[id] = ok ? Uint8Array.from(bytes) : enc.encode(tok);
    } else {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(tok);
      out[id] = m ? Uint8Array.of(parseInt(m[1]!, 16)) : enc.encode(tok.replaceAll('\u2581', ' '));
    }
  }
  return out;
}

/** The grammar vocabulary of a model folder: the model's vocab size, its tokens' bytes, its EOS ids. */
export function grammarVocabulary(folder: Pick<ModelFolder, 'tokenizer' | 'config' | 'generation'>): GrammarVocabulary {
  const size = folder.config.vocabSize;
  const eos = [...new Set([...folder.generation.eosTokenIds, ...(folder.tokenizer.eosTokenId !== null ? [folder.tokenizer.eosTokenId] : [])])].filter((id) => id < size);
  return { size, bytes: tokenBytes(folder.tokenizer, size), eos };
}
