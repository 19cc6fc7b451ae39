#!/usr/bin/env node
// latentwire CLI: run the model locally on WebGPU.
//   logits   --model DIR --ids 0,17,42            → {"logits": [...last position...], "argmax": [...every position...]}
//   generate --model DIR (--prompt T | --chat T | --ids …) --max-tokens N [--temperature T --top-p P --top-k K
//            --seed S] [--json]                   → the text, or {"ids": [...], "text": "..."}
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { Gpu } from '@latentwire/shared/gpu';
import { gpuOptionsFromEnv, ropeFreqPrecisionFromEnv } from '@latentwire/shared/config';
import { loadPrefillModel } from '@latentwire/shared/prefill';
import { checkSamplingParams, type SamplingParams } from './sampling-params.js';
import { seededRandom } from '@latentwire/shared/util';
import { sampleLogits } from './sample-logits.js';

const DEFAULT_MODEL = resolve(fileURLToPath(import.meta.url), '../../../../../models/tiny-deepseek-v2');

class UsageError extends Error {}

function parseIds(s: string | undefined): number[] | undefined {
  if (s === undefined) return undefined;
  const ids = s.split(',').map((x) => x.trim()).filter(Boolean).map(Number);
  if (ids.length === 0 || ids.some((x) => !Number.isInteger(x) || x < 0)) throw new UsageError(`--ids must be comma-separated token ids, got "${s}"`);
  return ids;
}

function num(s: string | undefined, name: string, def: number): number {
  if (s === undefined) return def;
  const v = Number(s);
  if (!Number.isFinite(v)) throw new UsageError(`${name} must be a number, got "${s}"`);
  return v;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      model: { type: 'string' }, ids: { type: 'string' }, prompt: { type: 'string' }, chat: { type: 'string' },
      'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' },
      'top-k': { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' },
    },
    strict: true,
  });
  if (command !== 'logits' && command !== 'generate') {
    throw new UsageError('usage: latentwire <logits|generate> [--model DIR] …');
  }
  const gpu = await Gpu.create(gpuOptionsFromEnv());
  try {
    const { folder, model } = loadPrefillModel(gpu, values.model ?? DEFAULT_MODEL, { ropeFreqPrecision: ropeFreqPrecisionFromEnv() });
    if (command === 'logits') {
      const ids = parseIds(values.ids);
      if (!ids) throw new UsageError('logits needs --ids');
      const out = await model.prefill(ids, { allLogits: true });
      out.release();
      process.stdout.write(JSON.stringify({ logits: Array.from(out.lastLogits), argmax: Array.from(out.argmax!) }) + '\n');
      return;
    }
    const sources = [values.prompt, values.chat, values.ids].filter((v) => v !== undefined).length;
    if (sources !== 1) throw new UsageError('generate needs exactly one of --prompt, --chat, --ids');
    let ids: number[];
    if (values.ids !== undefined) ids = parseIds(values.ids)!;
    else if (values.chat !== undefined) {
      if (!folder.chatTemplate) throw new UsageError(`model ${folder.dir} has no chat template; use --prompt`);
      ids = folder.chatTemplate.encode([{ role: 'user', content: values.chat }], { addGenerationPrompt: true });
    } else ids = folder.tokenizer.encode(values.prompt!);
    const maxTokens = num(values['max-tokens'], '--max-tokens', 16);
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new UsageError('--max-tokens must be a whole number >= 1');
    const params: SamplingParams = checkSamplingParams({
      temperature: num(values.temperature, '--temperature', 0),
      topP: num(values['top-p'], '--top-p', 1),
      topK: num(values['top-k'], '--top-k', 0),
      seed: num(values.seed, '--seed', 0),
    });
    const random = seededRandom(params.seed);
    const generated: number[] = [];
    const eos = new Set(folder.config.eosTokenIds);
    // Prefill-only generation: every token re-runs the whole prompt (slow, but it proves the model)
    for (let i = 0; i < maxTokens; i++) {
      const out = await model.prefill([...ids, ...generated]);
      out.release();
      const next = sampleLogits(out.lastLogits, params, random);
      generated.push(next);
      if (eos.has(next)) break;
    }
    const text = folder.tokenizer.decode(generated.filter((t) => !eos.has(t)));
    process.stdout.write(values.json ? JSON.stringify({ ids: generated, text }) + '\n' : text + '\n');
  } finally {
    gpu.dispose();
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const e = err as Error;
  process.stderr.write(`latentwire: ${e instanceof UsageError ? '' : `${e.name}: `}${e.message}\n`);
  process.exitCode = e instanceof UsageError ? 2 : 1;
});
