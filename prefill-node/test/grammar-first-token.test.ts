// The completion's first token under a grammar (constrained decoding), sampled on this node: the job's
// grammar compiled over the model's vocabulary gives the first mask, and the GPU sampler only ever picks a
// token it allows; a grammar this node cannot compile (or cannot compile at all, without a tokenizer) is a
// refusal, not a retry.
import test from 'ava';
import { loadPrefillModel } from '@latentwire/gpu/prefill';
import { testGpu } from '@latentwire/gpu/testing';
import { GrammarCache, grammarVocabulary, jsonSchemaGrammar } from '@latentwire/model';
import { FIXTURE_DIR, readFixtureJson } from '@latentwire/testing';
import type { PrefillJob } from '@latentwire/protocol';
import { firstTokenMask } from '../src/process-job.js';
import { PrefillRefusedError } from '../src/errors.js';

const ids = readFixtureJson<{ cases: { input_ids: number[] }[] }>('reference.json').cases[0]!.input_ids;

test('prefill node - the first token is sampled under the grammar\'s first mask; no tokenizer or a bad grammar is a refusal', async (t) => {
  const gpu = await testGpu();
  const { folder, model } = loadPrefillModel(gpu, FIXTURE_DIR);
  const grammars = new GrammarCache(grammarVocabulary(folder));
  const schema = { type: 'array', items: { type: 'integer' }, minItems: 1 };
  const job = { sampling: { temperature: 1, topK: 0, topP: 1, seed: 1, grammar: { root: jsonSchemaGrammar(schema).root, maxTokens: 8 } } } as unknown as PrefillJob;
  const mask = firstTokenMask({ grammars }, job)!;
  const allowed = (id: number) => ((mask[id >>> 5]! >>> (id & 31)) & 1) === 1;
  const bytes = grammarVocabulary(folder).bytes;
  t.true([...Array(folder.config.vocabSize).keys()].filter(allowed).every((id) => bytes[id]![0] === '['.charCodeAt(0)), 'only tokens opening the array');
  for (let seed = 0; seed < 8; seed++) {
    const out = await model.prefill(ids, { sample: { temperature: 1.5, topK: 0, topP: 1, seed, counter: 0, mask } });
    out.release();
    t.true(allowed(out.token!), `seed ${seed}: token ${out.token} is allowed`);
  }
  // a resumed job: the state advances over the tokens already generated ('[' here), then masks the next one
  const open = bytes.findIndex((b) => b?.length === 1 && b[0] === '['.charCodeAt(0));
  const resumed = firstTokenMask({ grammars }, { ...job, resumeTokens: [open] } as PrefillJob)!;
  const after = [...Array(folder.config.vocabSize).keys()].filter((id) => ((resumed[id >>> 5]! >>> (id & 31)) & 1) === 1);
  t.true(after.length > 0 && !after.includes(open), 'the mask after "[" differs from the first one');
  t.true(after.every((id) => /^[\s0-9-]/.test(String.fromCharCode(bytes[id]![0]!))), 'after "[": an integer (or whitespace) comes');
  t.throws(() => firstTokenMask({ grammars }, { ...job, resumeTokens: [open, open] } as PrefillJob), { instanceOf: PrefillRefusedError, message: /not allowed/ });
  t.is(firstTokenMask({ grammars }, { sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } } as PrefillJob), null);
  t.throws(() => firstTokenMask({}, job), { instanceOf: PrefillRefusedError, message: /no tokenizer/ });
  t.throws(() => firstTokenMask({ grammars }, { sampling: { ...job.sampling, grammar: { root: { t: 'nope' } } } } as PrefillJob), { instanceOf: PrefillRefusedError, message: /unknown node type/ });
  model.dispose();
});
