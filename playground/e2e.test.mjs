/**
 * The playground end to end, in Debian's Chromium through puppeteer-core: the seed example
 * shows spire-server's namespace-blind term at its line, Fix gives the one-line diff, a
 * share link reproduces the page in a fresh tab, the other views draw, an API error is
 * shown rather than thrown, and nothing logs an error.
 *
 *   APART_PLAYGROUND_DIR=target/playground APART_CHROMIUM=/usr/bin/chromium node --test playground/e2e.test.mjs
 *
 * It serves the built page itself (127.0.0.1, a free port). A missing build fails the test.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import puppeteer from 'puppeteer-core';
import { serve } from './serve.mjs';

const DIR = resolve(process.env.APART_PLAYGROUND_DIR ?? '/work/main/target/playground');
const CHROMIUM = process.env.APART_CHROMIUM ?? '/usr/bin/chromium';
const TIMEOUT = 20_000;

let server;
let base;
let browser;
/** Every page error and console error, from every page: the test ends by asserting none. */
const problems = [];

before(async () => {
  for (const f of ['index.html', 'main.js', 'apart_bg.wasm']) {
    assert.ok(
      existsSync(join(DIR, f)),
      `the built playground is missing ${join(DIR, f)}: build it first (node playground/build.mjs --out ${DIR}), or set APART_PLAYGROUND_DIR`,
    );
  }
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install chromium, or set APART_CHROMIUM`);
  ({ server, url: base } = await serve(DIR));
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // We run as root in a container: Chromium's sandbox needs user namespaces we lack.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  await browser?.close();
  await new Promise((done) => (server ? server.close(done) : done()));
});

async function open(url) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1440, height: 1000 });
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]');
  return page;
}

/** The findings panel as data: code, line, severity and text of each finding. */
const findings = (page) =>
  page.$$eval('#findings .finding', (els) => els.map((e) => ({ ...e.dataset, text: e.textContent })));

/** Diff content lines (not the ---/+++ headers) that add and that remove. */
async function diffCounts(page) {
  const lines = (await page.$eval('#diff', (e) => e.textContent)).split('\n');
  return {
    added: lines.filter((l) => l.startsWith('+') && !l.startsWith('+++')),
    removed: lines.filter((l) => l.startsWith('-') && !l.startsWith('---')),
  };
}

test('seed example: finding, fix, share, screenshot', async () => {
  const page = await open(base);
  await page.select('#example', 'seed');
  await page.waitForSelector('.finding[data-code="namespace-blind"][data-line="171"]');
  const first = await findings(page);
  const blind = first.find((f) => f.code === 'namespace-blind');
  assert.equal(blind.line, '171');
  assert.equal(blind.severity, 'error');
  assert.match(blind.text, /HelmRelease kube-system\/cilium/);
  assert.match(blind.text, /\$\.spec\.values\.authentication\.mutual\.spire\.install\.server\.affinity/);

  // A click takes the cursor to the line (CodeMirror draws only the lines in view, so the
  // mark is looked for once the line is scrolled in), where the line and gutter are marked.
  await page.click('.finding[data-code="namespace-blind"]');
  await page.waitForFunction(
    () => document.querySelector('#manifests-editor .cm-activeLineGutter')?.textContent === '171',
  );
  const mark = await page.$eval('#manifests-editor .cm-activeLine', (e) => [e.className, e.title]);
  assert.match(mark[0], /cm-apart-line-error/, 'the finding is marked in the manifests editor');
  assert.match(mark[1], /^namespace-blind: /);
  assert.ok(await page.$('#manifests-editor .cm-apart-dot-error'), 'a gutter dot marks the line');

  // Fix: the one-line diff and the fixed manifests.
  await page.click('#fix');
  await page.waitForSelector('#fix-panel:not([hidden]) #diff .diff-add');
  const { added, removed } = await diffCounts(page);
  assert.equal(added.length, 1, `one added line, got ${JSON.stringify(added)}`);
  assert.match(added[0], /^\+\s+namespaces: \[kube-system, flux-system\]$/);
  assert.equal(removed.length, 0, `no removed line, got ${JSON.stringify(removed)}`);
  const fixedText = await page.evaluate(() => window.apartPlayground.fixed());
  assert.match(
    fixedText.split('\n')[174],
    /^\s+namespaces: \[kube-system, flux-system\]$/,
    'line 175 of the fixed text is the added one',
  );
  // The fixed manifests open at the added line, marked.
  await page.waitForFunction(() =>
    document
      .querySelector('#fixed-editor .cm-apart-line-added')
      ?.textContent.includes('namespaces: [kube-system, flux-system]'),
  );

  // Share, then open the link in a fresh page: the same texts, view, findings and diff.
  const sent = await page.evaluate(() => window.apartPlayground.state());
  await page.click('#share');
  await page.waitForFunction(() => document.querySelector('#share-link')?.value.includes('#s='));
  const link = await page.$eval('#share-link', (e) => e.value);
  assert.ok(link.startsWith(base), link);

  const fresh = await open(link);
  await fresh.waitForSelector('.finding[data-code="namespace-blind"][data-line="171"]');
  const received = await fresh.evaluate(() => window.apartPlayground.state());
  for (const key of ['policy', 'manifests', 'cluster', 'pod', 'view', 'fix']) {
    assert.deepEqual(received[key], sent[key], `${key} survives the share link`);
  }
  assert.deepEqual(await findings(fresh), first);
  await fresh.waitForSelector('#fix-panel:not([hidden]) #diff .diff-add');
  assert.deepEqual(await diffCounts(fresh), { added, removed });

  // The screenshot, and the findings panel visibly drawn in it (not a blank region).
  await fresh.screenshot({ path: join(DIR, 'e2e.png'), fullPage: true });
  const box = await (await fresh.$('#results-check')).boundingBox();
  assert.ok(box && box.width > 300 && box.height > 100, `findings panel box ${JSON.stringify(box)}`);
  const clip = await fresh.screenshot({ clip: box, encoding: 'base64' });
  const ink = await fresh.evaluate(async (png) => {
    const img = new Image();
    img.src = `data:image/png;base64,${png}`;
    await img.decode();
    const canvas = Object.assign(document.createElement('canvas'), { width: img.width, height: img.height });
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const { data } = ctx.getImageData(0, 0, img.width, img.height);
    // Share of pixels clearly darker than the panel's white paper: its text and marks.
    let dark = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] < 3 * 160) dark++;
    return dark / (data.length / 4);
  }, clip);
  assert.ok(ink > 0.005 && ink < 0.6, `the findings panel shows content (dark pixel share ${ink})`);

  await fresh.close();
  await page.close();
});

test('audit and simulate views draw; an API error is shown, not thrown', async () => {
  const page = await open(base);
  await page.select('#example', 'incident');
  await page.waitForSelector('#results-audit:not([hidden]) #audit-picture');
  await page.waitForFunction(() => document.querySelector('#audit-picture').naturalWidth > 0);
  const verdict = await page.$eval('#audit .verdict', (e) => e.textContent);
  assert.match(verdict, /^VIOLATED/);
  assert.match(await page.$eval('#audit', (e) => e.textContent), /spire-server-0/);

  await page.click('#tab-simulate');
  await page.waitForSelector('#results-simulate:not([hidden]) #chosen-node');

  // Break the manifests as a user would, by typing: the error appears with its line.
  await page.click('#tab-check');
  await page.waitForSelector('#results-check:not([hidden]) .finding');
  await page.click('#manifests-editor .cm-content');
  await page.keyboard.down('Control');
  await page.keyboard.press('Home');
  await page.keyboard.up('Control');
  await page.keyboard.type('a: [\n');
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.$eval('#error', (e) => e.textContent), /manifests\.yaml:\d+:\d+:/);
  // Undo (as often as the typing took undo steps): the error goes, the findings come back.
  for (let i = 0; i < 5 && !(await page.$('#error[hidden]')); i++) {
    await page.keyboard.down('Control');
    await page.keyboard.press('KeyZ');
    await page.keyboard.up('Control');
    await new Promise((done) => setTimeout(done, 500));
  }
  await page.waitForSelector('#error[hidden]');
  assert.ok((await findings(page)).length > 0);
  await page.close();
});

test('no page or console errors', () => {
  assert.deepEqual(problems, []);
});
