// The resumable-upload page (/docs/upload) as a person uses it: Debian's Chromium, driven by playwright-core,
// chooses a file, clicks Upload, and watches the progress and then the File, against the real service.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { File } from '../core/fileRecord.js';
import { startService, type TestService } from './support/service.js';
import { requireProgram } from './support/tools.js';

// Headless as root, and no calls home: this machine's closed network refuses them, many at a time.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const MiB = 1024 * 1024;
const TOKEN = 'browser-token-0123456789abcdef';

describe('GET /docs/upload in a browser', function () {
  this.timeout(120_000);
  let browser: Browser;
  let dir: string;
  before(async function () {
    const executablePath = requireProgram(this, 'chromium');
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
    dir = await mkdtemp(path.join(os.tmpdir(), 'fp-browser-'));
  });
  after(async () => {
    await browser?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A file of random bytes on disk, for the file input, and its SHA-256. */
  async function randomFile(name: string, size: number): Promise<{ file: string; sha256: string }> {
    const bytes = randomBytes(size);
    const file = path.join(dir, name);
    await writeFile(file, bytes);
    return { file, sha256: createHash('sha256').update(bytes).digest('hex') };
  }

  /** Opens the page, fills in the token (if any) and the file, and clicks Upload. */
  async function uploadFromPage(page: Page, url: string, file: string, token?: string): Promise<void> {
    await page.goto(`${url}/docs/upload`);
    if (token) await page.fill('#token', token);
    await page.setInputFiles('#file', file);
    await page.click('button:has-text("Upload")');
  }

  /** The id of the File the page shows, once its status is `processed`. */
  async function processedFileId(page: Page): Promise<string> {
    await page.locator('#status', { hasText: /^(processed|failed|error)$/ }).waitFor({ timeout: 90_000 });
    expect(await page.textContent('#error')).to.equal('');
    expect(await page.textContent('#status')).to.equal('processed');
    const shown = JSON.parse((await page.textContent('#file-json')) ?? '') as File;
    expect(shown.status).to.equal('processed');
    return shown.id;
  }

  describe('without tokens', () => {
    let service: TestService;
    before(async () => {
      service = await startService({ env: { MAX_UPLOAD_BYTES: '64MiB' } });
    });
    after(() => service?.close());

    it('uploads a 20 MiB file in 5 MiB chunks, shows the progress reach 100% and the File processed', async () => {
      const { file, sha256 } = await randomFile('random.bin', 20 * MiB);
      const page = await browser.newPage();
      // A script the page's Content-Security-Policy refused, or one that threw, shows up here.
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      page.on('console', (message) => {
        if (message.type() === 'error') errors.push(message.text());
      });
      const offsets: number[] = [];
      page.on('response', (response) => {
        if (response.request().method() === 'PATCH') offsets.push(Number(response.headers()['upload-offset']));
      });

      await uploadFromPage(page, service.url, file);
      await page.locator('#percent', { hasText: /^100%$/ }).waitFor({ timeout: 60_000 });
      expect(await page.getAttribute('#progress', 'value')).to.equal('100');
      const id = await processedFileId(page);
      await page.close();

      expect(errors).to.deep.equal([]);
      expect(offsets, 'Upload-Offset after each PATCH').to.deep.equal([5 * MiB, 10 * MiB, 15 * MiB, 20 * MiB]);
      const stored = (await (await fetch(`${service.url}/files/${id}/`)).json()) as File;
      expect(stored).to.include({ status: 'processed', name: 'random.bin', size: 20 * MiB, sha256 });
    });
  });

  describe('with API_TOKENS', () => {
    let service: TestService;
    before(async () => {
      service = await startService({ env: { API_TOKENS: TOKEN } });
    });
    after(() => service?.close());

    it('serves the page to anyone, fails the upload without a token and completes it with one', async () => {
      const { file, sha256 } = await randomFile('small.bin', 64 * 1024);
      const page = await browser.newPage();

      await uploadFromPage(page, service.url, file);
      await page.locator('#status', { hasText: /^error$/ }).waitFor({ timeout: 30_000 });
      expect(await page.textContent('#error')).to.contain('401');

      await page.fill('#token', TOKEN);
      await page.click('button:has-text("Upload")');
      const id = await processedFileId(page);
      await page.close();

      const response = await fetch(`${service.url}/files/${id}/`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(((await response.json()) as File).sha256).to.equal(sha256);
    });
  });
});
