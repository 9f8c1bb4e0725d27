// Debian's headless Chromium through playwright-core, for the dashboard's browser tests:
// one page per call, every context closed when the file's tests end.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { tempDir } from './lib.mjs';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled', 'expired'];

const contexts = new Set();
after(async () => { for (const c of contexts) await c.close().catch(() => {}); });

// A fresh browser profile and its page; the page's uncaught errors collect in page.errors.
export async function browser() {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (tools/install-deps --test installs Debian's chromium)`);
  const ctx = await chromium.launchPersistentContext(tempDir('reactor-chromium-'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  contexts.add(ctx);
  const page = ctx.pages()[0] || await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  return page;
}

// The port a reactor started with `--listen 127.0.0.1:0` says it listens on.
export function portOf(reactor) {
  const m = reactor.stderr.match(/listening on 127\.0\.0\.1:(\d+)/);
  assert.ok(m, `no "listening on" line in:\n${reactor.stderr}`);
  return Number(m[1]);
}
