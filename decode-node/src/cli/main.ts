#!/usr/bin/env node
// latentwire CLI: run the model locally on WebGPU.
//   logits   --model DIR --ids 0,17,42                  → {"logits": [...last position...], "argmax": [...every position...]}
//   logits   --model DIR --ids … --decode-steps N       → {"step_logits": [[...], ...], "ids": [...]}: N greedy tokens and
//            the logits that chose each, the first from the prefill, the others from absorbed decode steps
//   generate --model DIR (--prompt T | --chat T | --ids …) --max-tokens N [--temperature T --top-p P --top-k K
//            --seed S] [--kv-dtype D] [--page-size P] [--json]   → the text, or {"ids": [...], "text": "..."}
// generate prefills once, then decodes through the continuous-batching engine (weight-absorbed MLA over the
// paged latent cache), as the decode node does. KV_CACHE_DTYPE / PAGE_SIZE etc. apply unless given as flags.
// The environment (CLI_ENV, ./env.ts) is parsed before anything else; a bad value, an impossible size for the
// adapter (checked right after acquiring it) or a bad flag exits 2.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { Gpu, gpuOptions } from '@latentwire/gpu';
import { loadConfig } from '@latentwire/model';
import { pagesFor, parseKvDtype } from '@latentwire/protocol';
import { loadPrefillModel } from '@latentwire/gpu/prefill';
import { decodeSettingsFrom, type DecodeSettings } from '../config.js';
import { loadDecodeStack } from '../engine/load.js';
import { DecodeModel } from '../engine/decode-model.js';
import type { SamplingSettings } from '../engine/engine.js';
import { cliEnv } from './env.js';

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

function wholeNumber(s: string | undefined, name: string, def: number, min: number): number {
  const v = num(s, name, def);
  if (!Number.isInteger(v) || v < min) throw new UsageError(`${name} must be a whole number >= ${min}, got "${s}"`);
  return v;
}

async function main(argv: string[]): Promise<void> {
  const env = cliEnv(process.env);
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      model: { type: 'string' }, ids: { type: 'string' }, prompt: { type: 'string' }, chat: { type: 'string' },
      'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' },
      'top-k': { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' },
      'kv-dtype': { type: 'string' }, 'page-size': { type: 'string' }, 'decode-steps': { type: 'string' },
    },
    strict: true,
  });
  if (command !== 'logits' && command !== 'generate') {
    throw new UsageError('usage: latentwire <logits|generate> [--model DIR] …');
  }
  const overrides: { -readonly [K in keyof DecodeSettings]?: DecodeSettings[K] } = {};
  if (values['kv-dtype'] !== undefined) overrides.kvDtype = parseKvDtype(values['kv-dtype']);
  if (values['page-size'] !== undefined) overrides.pageSize = wholeNumber(values['page-size'], '--page-size', 64, 1);
  const modelDir = values.model !== undefined ? resolve(values.model) : env.MODEL_DIR;
  const ropeFreqPrecision = env.ROPE_FREQ_PRECISION;
  const gpu = await Gpu.create(gpuOptions(env));
  try {
    const cfg = loadConfig(modelDir);
    const settings = (o: Partial<DecodeSettings>) => decodeSettingsFrom(cfg, env, { ...overrides, ...o }, gpu.limits);
    settings({ maxBatch: 1 }); // sizes the adapter cannot hold fail here, before any weight is uploaded
    if (command === 'logits') {
      const ids = parseIds(values.ids);
      if (!ids) throw new UsageError('logits needs --ids');
      const { folder, model } = loadPrefillModel(gpu, modelDir, { ropeFreqPrecision });
      if (values['decode-steps'] === undefined) {
        const out = await model.prefill(ids, { allLogits: true });
        out.release();
        process.stdout.write(JSON.stringify({ logits: Array.from(out.lastLogits), argmax: Array.from(out.argmax!) }) + '\n');
        return;
      }
      const steps = wholeNumber(values['decode-steps'], '--decode-steps', 1, 1);
      const s = settings({ maxBatch: 1, maxContext: ids.length + steps });
      const pages = pagesFor(s, ids.length + steps);
      const dec = await DecodeModel.create(gpu, folder.config, model.weights, {
        maxBatch: 1, maxContext: ids.length + steps, pageSize: s.pageSize, kvDtype: s.kvDtype, numPages: pages,
        headGroup: s.headGroup, kvSplits: s.kvSplits, ropeFreqPrecision: model.ropeFreqPrecision,
      });
      const table = Array.from({ length: pages }, (_, i) => i);
      const out = await model.prefill(ids);
      await dec.writePrompt(out.latent, ids.length, table);
      out.release();
      const stepLogits: number[][] = [Array.from(out.lastLogits)];
      const chosen = [out.lastLogits.indexOf(Math.max(...out.lastLogits))];
      for (let i = 1; i < steps; i++) {
        const r = await dec.step({
          tokens: [chosen[i - 1]!], positions: [ids.length + i - 1], pageTables: [table],
          sampling: [{ temperature: 0, topK: 0, topP: 1, seed: 0, counter: i }], returnLogits: true,
        });
        stepLogits.push(Array.from(r.logits!));
        chosen.push(r.tokens[0]!);
      }
      dec.release();
      process.stdout.write(JSON.stringify({ step_logits: stepLogits, ids: chosen }) + '\n');
      return;
    }
    const sources = [values.prompt, values.chat, values.ids].filter((v) => v !== undefined).length;
    if (sources !== 1) throw new UsageError('generate needs exactly one of --prompt, --chat, --ids');
    const maxTokens = wholeNumber(values['max-tokens'], '--max-tokens', 16, 1);
    const sampling: SamplingSettings = {
      temperature: num(values.temperature, '--temperature', 0),
      topP: num(values['top-p'], '--top-p', 1),
      topK: num(values['top-k'], '--top-k', 0),
      seed: num(values.seed, '--seed', 0),
    };
    const stack = await loadDecodeStack(gpu, modelDir, () => settings({ maxBatch: 1 }), { ropeFreqPrecision });
    const { folder, engine } = stack;
    let ids: number[];
    if (values.ids !== undefined) ids = parseIds(values.ids)!;
    else if (values.chat !== undefined) {
      if (!folder.chatTemplate) throw new UsageError(`model ${folder.dir} has no chat template; use --prompt`);
      ids = folder.chatTemplate.encode([{ role: 'user', content: values.chat }], { addGenerationPrompt: true });
    } else ids = folder.tokenizer.encode(values.prompt!);
    const generated: number[] = [];
    await new Promise<void>((done, fail) => {
      try {
        engine.submit({ id: 'cli', promptIds: ids, maxTokens, sampling, eosTokenIds: folder.config.eosTokenIds }, {
          onTokens: (t) => generated.push(...t),
          onFinish: (reason, _usage, err) => (reason === 'error' ? fail(err) : done()),
        });
      } catch (err) {
        fail(err);
      }
    });
    const eos = new Set(folder.config.eosTokenIds);
    const text = folder.tokenizer.decode(generated.filter((t) => !eos.has(t)));
    process.stdout.write(values.json ? JSON.stringify({ ids: generated, text }) + '\n' : text + '\n');
    stack.release();
  } finally {
    gpu.dispose();
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const e = err as Error;
  const usage = e instanceof UsageError || e.name === 'KvDtypeError' || e.name === 'ConfigError'; // exit 2, as every service's bad value
  process.stderr.write(`latentwire: ${usage ? '' : `${e.name}: `}${e.message}\n`);
  process.exitCode = usage ? 2 : 1;
});
