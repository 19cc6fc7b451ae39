#!/usr/bin/env node
// latentwire CLI: run the model locally on WebGPU (`latentwire --help`, `latentwire <command> --help`).
//   logits   --ids 0,17,42 [--decode-steps N]   → the prefill's logits, or N greedy tokens and the logits that chose them
//   generate (--prompt T | --chat T | --ids …)  → the text (or --json ids and text), through the decode engine
// Flags are parsed by commander: a bad value names the flag and what it accepts. The environment (CLI_ENV,
// ./env.ts) is parsed before the GPU is touched; a bad value, an impossible size for the adapter (checked right
// after acquiring it) or a bad flag exits 2.
import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { Gpu, gpuOptions } from '@latentwire/gpu';
import { loadConfig } from '@latentwire/model';
import { KV_DTYPES, pagesFor, type KvDtype } from '@latentwire/protocol';
import { loadPrefillModel } from '@latentwire/gpu/prefill';
import { loadProgressReporter } from '@latentwire/gpu/weights';
import { decodeSettingsFrom, type DecodeSettings } from '../config.js';
import { loadDecodeStack } from '../engine/load.js';
import { DecodeModel } from '../engine/decode-model.js';
import type { SamplingSettings } from '../engine/engine.js';
import { cliEnv } from './env.js';

class UsageError extends Error {}

/** Weight-load progress on stderr (stdout carries the answer): a bar on a terminal, else a line per tenth. */
const loadProgress = () => loadProgressReporter({
  log: {
    info(o, msg) {
      const { percent, ms } = o as { percent: number; ms: number };
      process.stderr.write(`latentwire: ${msg} (${percent}%, ${ms} ms)\n`);
    },
  },
});

// ---- flag parsers: a bad value names the flag and what it accepts (commander prefixes the flag) ----
function ids(s: string): number[] {
  const out = s.split(',').map((x) => x.trim()).filter(Boolean).map(Number);
  if (out.length === 0 || out.some((x) => !Number.isInteger(x) || x < 0)) throw new InvalidArgumentError('expected comma-separated token ids, e.g. 0,17,42');
  return out;
}
const numberIn = (min: number, max: number, minOpen = false) => (s: string): number => {
  const v = Number(s);
  if (s.trim() === '' || !Number.isFinite(v) || (minOpen ? v <= min : v < min) || v > max) {
    throw new InvalidArgumentError(`expected a number in ${minOpen ? '(' : '['}${min}, ${max}]`);
  }
  return v;
};
const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) => (s: string): number => {
  const v = Number(s);
  if (!/^\d+$/.test(s.trim()) || v < min || v > max) throw new InvalidArgumentError(`expected a whole number ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`}`);
  return v;
};

interface CommonOptions { model?: string; kvDtype?: KvDtype; pageSize?: number; json?: boolean }
interface LogitsOptions extends CommonOptions { ids: number[]; decodeSteps?: number }
interface GenerateOptions extends CommonOptions {
  prompt?: string; chat?: string; ids?: number[]; maxTokens: number; temperature: number; topP: number; topK: number; seed: number;
}

/** Options every command takes: the model folder and the decode engine's cache settings. */
function withCommon(c: Command): Command {
  return c
    .option('--model <dir>', 'Hugging Face model folder (default: MODEL_DIR)')
    .addOption(new Option('--kv-dtype <dtype>', 'latent KV cache dtype (default: KV_CACHE_DTYPE)').choices(KV_DTYPES))
    .option('--page-size <tokens>', 'tokens per KV cache page (default: PAGE_SIZE)', wholeNumber(1));
}

function program(run: (command: 'logits' | 'generate', o: LogitsOptions | GenerateOptions) => Promise<void>): Command {
  const cli = new Command('latentwire')
    .description('Run a DeepSeek-V2/V3 (MLA) checkpoint locally on WebGPU, as the prefill and decode nodes do.\n' +
      'Environment variables (MODEL_DIR, KV_CACHE_DTYPE, PAGE_SIZE, WEBGPU_ADAPTER, …) apply unless a flag is given.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  withCommon(cli.command('logits'))
    .description('prefill --ids and print {"logits": [last position], "argmax": [every position]}; with --decode-steps N,\n' +
      'N greedy tokens and the logits that chose each: {"step_logits": [...], "ids": [...]} (the first from the prefill,\n' +
      'the others from weight-absorbed decode steps over the paged latent cache)')
    .requiredOption('--ids <ids>', 'prompt token ids, comma-separated', ids)
    .option('--decode-steps <n>', 'greedy tokens to produce', wholeNumber(1))
    .action((o: LogitsOptions) => run('logits', o));
  withCommon(cli.command('generate'))
    .description('prefill once, then decode through the continuous-batching engine; print the text (or --json ids and text)')
    .addOption(new Option('--prompt <text>', 'raw prompt text').conflicts(['chat', 'ids']))
    .addOption(new Option('--chat <text>', "a user message, through the model's chat template").conflicts(['ids']))
    .option('--ids <ids>', 'prompt token ids, comma-separated', ids)
    .option('--max-tokens <n>', 'tokens to generate', wholeNumber(1), 16)
    .option('--temperature <t>', '0 = greedy', numberIn(0, 100), 0)
    .option('--top-p <p>', 'nucleus sampling mass', numberIn(0, 1, true), 1)
    .option('--top-k <k>', '0 = no top-k cut', wholeNumber(0, 0xffffffff), 0)
    .option('--seed <s>', 'sampling seed (u32)', wholeNumber(0, 0xffffffff), 0)
    .option('--json', 'print {"ids": [...], "text": "..."}')
    .action((o: GenerateOptions) => run('generate', o));
  return cli;
}

async function runCommand(command: 'logits' | 'generate', values: LogitsOptions | GenerateOptions): Promise<void> {
  const env = cliEnv(process.env);
  const overrides: { -readonly [K in keyof DecodeSettings]?: DecodeSettings[K] } = {};
  if (values.kvDtype !== undefined) overrides.kvDtype = values.kvDtype;
  if (values.pageSize !== undefined) overrides.pageSize = values.pageSize;
  const modelDir = values.model !== undefined ? resolve(values.model) : env.MODEL_DIR;
  const ropeFreqPrecision = env.ROPE_FREQ_PRECISION;
  const gpu = await Gpu.create(gpuOptions(env));
  try {
    const cfg = loadConfig(modelDir);
    const settings = (o: Partial<DecodeSettings>) => decodeSettingsFrom(cfg, env, { ...overrides, ...o }, gpu.limits, gpu.matrixCapabilities);
    settings({ maxBatch: 1 }); // sizes the adapter cannot hold fail here, before any weight is uploaded
    if (command === 'logits') {
      const { ids } = values as LogitsOptions;
      const { folder, model } = loadPrefillModel(gpu, modelDir, { ropeFreqPrecision, onLoadProgress: loadProgress() });
      const steps = (values as LogitsOptions).decodeSteps;
      if (steps === undefined) {
        const out = await model.prefill(ids, { allLogits: true });
        out.release();
        process.stdout.write(JSON.stringify({ logits: Array.from(out.lastLogits), argmax: Array.from(out.argmax!) }) + '\n');
        return;
      }
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
    const g = values as GenerateOptions;
    const { maxTokens } = g;
    const sampling: SamplingSettings = { temperature: g.temperature, topP: g.topP, topK: g.topK, seed: g.seed };
    const stack = await loadDecodeStack(gpu, modelDir, () => settings({ maxBatch: 1 }), { ropeFreqPrecision, onLoadProgress: loadProgress() });
    const { folder, engine } = stack;
    let ids: number[];
    if (g.ids !== undefined) ids = g.ids;
    else if (g.chat !== undefined) {
      if (!folder.chatTemplate) throw new UsageError(`model ${folder.dir} has no chat template; use --prompt`);
      ids = folder.chatTemplate.encode([{ role: 'user', content: g.chat }], { addGenerationPrompt: true });
    } else ids = folder.tokenizer.encode(g.prompt!);
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
    process.stdout.write(g.json ? JSON.stringify({ ids: generated, text }) + '\n' : text + '\n');
    stack.release();
  } finally {
    gpu.dispose();
  }
}

async function main(argv: string[]): Promise<void> {
  const cli = program(async (command, o) => {
    if (command === 'generate') {
      const g = o as GenerateOptions;
      if ([g.prompt, g.chat, g.ids].every((v) => v === undefined)) throw new UsageError('generate needs one of --prompt, --chat, --ids');
    }
    await runCommand(command, o);
  });
  if (argv.length === 0) {
    cli.outputHelp();
    process.exitCode = 2;
    return;
  }
  await cli.parseAsync(argv, { from: 'user' });
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    // commander already printed the message (or the help); help and --version exit 0, a usage error 2
    process.exitCode = err.exitCode === 0 ? 0 : 2;
    return;
  }
  const e = err as Error;
  const usage = e instanceof UsageError || e.name === 'KvDtypeError' || e.name === 'ConfigError'; // exit 2, as every service's bad value
  process.stderr.write(`latentwire: ${usage ? '' : `${e.name}: `}${e.message}\n`);
  process.exitCode = usage ? 2 : 1;
});
