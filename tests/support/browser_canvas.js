// Drives Debian's Chromium through playwright-core, in one of two ways, and prints the outcome as one JSON
// line. Never downloads a browser: the executable is /usr/bin/chromium, started headless with a fresh
// profile that is removed afterwards.
//
//   node browser_canvas.js <playwright-core folder> visits '<JSON: [{"page": url, "checks": [...]}, ...]>'
//     visits the pages in order and prints what each page's runChecks() returned for its checks
//     (browser_canvas.html): {"visits": [[result, ...], ...]}
//   node browser_canvas.js <playwright-core folder> deep-zoom <page url> <screenshot path>
//     opens one deep-zoom page (deep_zoom.html), waits until it says every tile of its view has loaded,
//     screenshots the viewer and prints the page's window.deepZoom
//
// Either way {"launchError": "..."} with exit status 3 when Chromium cannot start (the test then skips
// with that line), {"error": "..."} with status 1 on anything else.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const [playwrightDir, mode, ...rest] = process.argv.slice(2);
const { chromium } = require(playwrightDir);

const CHROMIUM = '/usr/bin/chromium';
// No sandbox (the tests run as root), no GPU, and nothing that reaches out of the machine on its own;
// one device pixel per CSS pixel, so that a screenshot is the page's size.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--force-device-scale-factor=1'];
const STEP_MS = 15000;
const DEEP_ZOOM_LOAD_MS = 60000;

async function visits(context, visitsJson) {
  const results = [];
  for (const visit of JSON.parse(visitsJson)) {
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    await page.goto(visit.page);
    results.push(await page.evaluate((checks) => window.runChecks(checks), visit.checks));
    await page.close();
  }
  return { visits: results };
}

async function deepZoom(context, pageUrl, screenshotPath) {
  const page = await context.newPage();
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.deepZoom.done || window.deepZoom.error !== null, null,
    { timeout: DEEP_ZOOM_LOAD_MS });
  const state = await page.evaluate(() => window.deepZoom);
  if (state.done) await page.locator('#viewer').screenshot({ path: screenshotPath });
  return state;
}

const MODES = { 'visits': visits, 'deep-zoom': deepZoom };

async function main() {
  if (!(mode in MODES)) throw new Error(`unknown mode ${mode}: one of ${Object.keys(MODES).join(', ')}`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-profile-'));
  let context = null;
  try {
    try {
      // A persistent context is how playwright takes a --user-data-dir of our choosing.
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30000,
        viewport: { width: 800, height: 600 }, deviceScaleFactor: 1,
      });
    } catch (error) {
      console.log(JSON.stringify({ launchError: String(error.message).split('\n')[0] }));
      process.exitCode = 3;
      return;
    }
    console.log(JSON.stringify(await MODES[mode](context, ...rest)));
  } finally {
    if (context !== null) await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.log(JSON.stringify({ error: String(error && error.stack ? error.stack : error) }));
  process.exitCode = 1;
});
