// Weight-load progress: uploadCheckpoint reports bytes as it reads them, and loadProgressReporter shows them
// to people — a progress bar when stderr is a terminal, else a log line every tenth of the way (and at the
// end), so a node taking minutes to load a large checkpoint says how far it is instead of going silent.
import cliProgress from 'cli-progress';
import type { ModelFolder } from '@latentwire/model';

export interface LoadProgress {
  /** Checkpoint bytes read and uploaded so far. */
  readonly loadedBytes: number;
  /** Every tensor's bytes in the checkpoint; some (unused ones) may never be loaded. */
  readonly totalBytes: number;
  /** The tensor (or expert group) just uploaded. */
  readonly tensor: string;
  /** The last report: every weight is on the GPU. */
  readonly done: boolean;
}

export type OnLoadProgress = (p: LoadProgress) => void;

/** The bytes of every tensor the checkpoint's safetensors files hold. */
export function checkpointBytes(folder: Pick<ModelFolder, 'index'>): number {
  let total = 0;
  for (const t of folder.index.tensors.values()) total += t.end - t.begin;
  return total;
}

/** Where the plain lines go: a pino logger fits. */
export interface ProgressLog {
  info(obj: object, msg: string): void;
}

export interface ProgressReporterOptions {
  readonly log: ProgressLog;
  /** Default process.stderr; a bar only when it is a TTY. */
  readonly stream?: NodeJS.WriteStream;
  /** Clock for the log lines' rate (ms), for tests. */
  readonly now?: () => number;
}

const MIB = 1024 * 1024;
const mib = (bytes: number): string => (bytes / MIB).toFixed(1);

export function loadProgressReporter(o: ProgressReporterOptions): OnLoadProgress {
  const stream = o.stream ?? process.stderr;
  const now = o.now ?? (() => performance.now());
  const started = now();
  const summary = (p: LoadProgress) => ({
    loadedBytes: p.loadedBytes, totalBytes: p.totalBytes, percent: p.totalBytes > 0 ? Math.round((100 * p.loadedBytes) / p.totalBytes) : 100,
    ms: Math.round(now() - started),
  });
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar({
      stream, hideCursor: true, clearOnComplete: false, barsize: 30, etaBuffer: 50,
      format: 'loading weights [{bar}] {percentage}% {loadedMiB}/{totalMiB} MiB eta {eta_formatted} {tensor}',
    }, cliProgress.Presets.shades_classic);
    let begun = false;
    return (p) => {
      const payload = { loadedMiB: mib(p.loadedBytes), totalMiB: mib(p.totalBytes), tensor: p.done ? '' : p.tensor };
      if (!begun) {
        bar.start(p.totalBytes, 0, payload);
        begun = true;
      }
      // what the model never reads (e.g. MTP layers) is not loaded: the bar ends at what was
      if (p.done) bar.setTotal(p.loadedBytes);
      bar.update(p.loadedBytes, payload);
      if (p.done) {
        bar.stop();
        o.log.info(summary(p), 'weights loaded');
      }
    };
  }
  let nextTenth = 1;
  return (p) => {
    if (p.done) {
      o.log.info(summary(p), 'weights loaded');
      return;
    }
    if (p.totalBytes <= 0 || p.loadedBytes < (nextTenth * p.totalBytes) / 10) return;
    while (p.loadedBytes >= (nextTenth * p.totalBytes) / 10) nextTenth++;
    o.log.info(summary(p), `loading weights: ${mib(p.loadedBytes)} of ${mib(p.totalBytes)} MiB`);
  };
}
