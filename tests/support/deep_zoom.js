// Drives Debian's Chromium through playwright-core, as browser_canvas.js does: opens one deep-zoom page,
// waits until the page says every tile of its view has loaded, and screenshots the viewer.
//
//   node deep_zoom.js <playwright-core folder> <page url> <screenshot path>
//
// Prints the page's window.deepZoom as one JSON line; {"launchError": "..."} with exit status 3 when
// Chromium cannot start; {"error": "..."} with status 1 on anything else.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const [playwrightDir, pageUrl, screenshotPath] = process.argv.slice(2);
const { chromium } = require(playwrightDir);

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--force-device-scale-factor=1'];
const LOAD_MS = 60000;

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-profile-'));
  let context = null;
  try {
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30000,
        viewport: { width: 800, height: 600 }, deviceScaleFactor: 1,
      });
    } catch (error) {
      console.log(JSON.stringify({ launchError: String(error.message).split('\n')[0] }));
      process.exitCode = 3;
      return;
    }
    const page = await context.newPage();
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.deepZoom.done || window.deepZoom.error !== null, null,
      { timeout: LOAD_MS });
    const state = await page.evaluate(() => window.deepZoom);
    if (state.done) await page.locator('#viewer').screenshot({ path: screenshotPath });
    console.log(JSON.stringify(state));
  } finally {
    if (context !== null) await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.log(JSON.stringify({ error: String(error && error.stack ? error.stack : error) }));
  process.exitCode = 1;
});
