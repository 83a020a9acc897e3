// Drives Debian's Chromium through playwright-core: visits pages and prints, as one JSON line, what each
// page's runChecks() returned for its checks. Never downloads a browser: the executable is
// /usr/bin/chromium, started headless with a fresh profile that is removed afterwards.
//
//   node browser_canvas.js <playwright-core folder> '<JSON: [{"page": url, "checks": [...]}, ...]>'
//
// Prints {"visits": [[result, ...], ...]}; {"launchError": "..."} with exit status 3 when Chromium
// cannot start (the test then skips with that line); {"error": "..."} with status 1 on anything else.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const [playwrightDir, visitsJson] = process.argv.slice(2);
const { chromium } = require(playwrightDir);

const CHROMIUM = '/usr/bin/chromium';
// No sandbox (the tests run as root), no GPU, and nothing that reaches out of the machine on its own.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];
const STEP_MS = 15000;

async function main() {
  const visits = JSON.parse(visitsJson);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-profile-'));
  let context = null;
  try {
    try {
      // A persistent context is how playwright takes a --user-data-dir of our choosing.
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30000,
      });
    } catch (error) {
      console.log(JSON.stringify({ launchError: String(error.message).split('\n')[0] }));
      process.exitCode = 3;
      return;
    }
    const results = [];
    for (const visit of visits) {
      const page = await context.newPage();
      page.setDefaultTimeout(STEP_MS);
      await page.goto(visit.page);
      results.push(await page.evaluate((checks) => window.runChecks(checks), visit.checks));
      await page.close();
    }
    console.log(JSON.stringify({ visits: results }));
  } finally {
    if (context !== null) await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.log(JSON.stringify({ error: String(error && error.stack ? error.stack : error) }));
  process.exitCode = 1;
});
