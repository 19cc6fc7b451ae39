// Headless Chromium for the web page tests: Debian's /usr/bin/chromium (infra/setup.sh installs it;
// CHROMIUM_PATH overrides) driven by playwright-core, with no sandbox (CI runs as root) and nothing that
// reaches the network by itself. Screenshots go to integration/test-output/; with UPDATE_SCREENSHOTS=1 they
// also replace the README's in docs/screenshots/ (a plain test run leaves the committed ones alone).
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const PACKAGE_DIR = fileURLToPath(new URL('../../../', import.meta.url)); // integration/, from dist/test/helpers
export const OUTPUT_DIR = join(PACKAGE_DIR, 'test-output');
export const DOCS_SCREENSHOTS = join(PACKAGE_DIR, '..', 'docs', 'screenshots');

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run infra/setup.sh as root (it installs Debian's chromium) or set CHROMIUM_PATH`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-default-apps', '--disable-sync',
      '--no-first-run', '--disable-extensions', '--metrics-recording-only', '--disable-gpu',
    ],
  });
}

/** Saves a full-page screenshot as test-output/<name>.png (and docs/screenshots/<name>.png with UPDATE_SCREENSHOTS=1). */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(OUTPUT_DIR, { recursive: true });
  const file = join(OUTPUT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (process.env['UPDATE_SCREENSHOTS'] === '1') {
    mkdirSync(DOCS_SCREENSHOTS, { recursive: true });
    copyFileSync(file, join(DOCS_SCREENSHOTS, `${name}.png`));
  }
  return file;
}
