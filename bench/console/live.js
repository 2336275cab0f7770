// live.js — the console's memory over a long live run: signs in, opens the
// air-quality page and a station's chart, and samples the JavaScript heap
// (after a forced collection) every SAMPLE seconds while the simulator
// (started by run.sh) writes the city. Prints "first_bytes last_bytes max_bytes
// samples". GROVE_URL GROVE_EMAIL GROVE_PASSWORD SECONDS SAMPLE.
'use strict';
const { chromium } = require('playwright-core');

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--js-flags=--expose-gc', '--enable-precise-memory-info'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(process.env.GROVE_URL + '/');
  await page.fill('input[name=email]', process.env.GROVE_EMAIL);
  await page.fill('input[name=password]', process.env.GROVE_PASSWORD);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('button.tile', { timeout: 30000 });
  await page.click('button.tile');
  await page.waitForFunction(() => window.Chart && Chart.getChart(document.querySelector('#station-panel canvas')));
  const heap = () => page.evaluate(() => { gc(); gc(); return performance.memory.usedJSHeapSize; });
  const seconds = Number(process.env.SECONDS || 60), every = Number(process.env.SAMPLE || 5);
  const samples = [];
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    samples.push(await heap());
    await page.waitForTimeout(every * 1000); // a bench samples over time, by design
  }
  samples.push(await heap());
  const tiles = await page.$$eval('button.tile', (b) => b.length);
  console.log(`${samples[1] ?? samples[0]} ${samples[samples.length - 1]} ${Math.max(...samples)} ${samples.length} ${tiles}`);
  await browser.close();
})().catch((e) => { console.error(e); process.exit(1); });
