// The one way kernels read their .wgsl files and fill a template's generated parts. A template marks each part
// with a `/*@NAME@*/` comment; the launcher supplies the code (unrolled loops, per-variant declarations).
import { readFileSync } from 'node:fs';

/** The text of a .wgsl file beside the launcher: `loadWgsl(new URL('./x.wgsl', import.meta.url))`. */
export function loadWgsl(url: URL): string {
  return readFileSync(url, 'utf8');
}

/** `template` with each `/*@NAME@*\/` replaced by parts[NAME]; a part the template lacks is an error, not a silent no-op. */
export function fillWgsl(template: string, parts: Readonly<Record<string, string>>, name = 'WGSL template'): string {
  let out = template;
  for (const [k, val] of Object.entries(parts)) {
    const marker = `/*@${k}@*/`;
    if (!out.includes(marker)) throw new Error(`${name} lacks ${marker}`);
    out = out.replaceAll(marker, val);
  }
  return out;
}

/** A .wgsl file beside the launcher with its parts filled; errors name the file. */
export function wgslFile(url: URL, parts: Readonly<Record<string, string>>): string {
  return fillWgsl(loadWgsl(url), parts, url.pathname.slice(url.pathname.lastIndexOf('/') + 1));
}
