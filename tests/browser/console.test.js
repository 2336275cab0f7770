// console.test.js — the console in Debian's Chromium, driven by
// playwright-core: sign in, see a station's AQI arrive live when a reading
// closes its window, see an alert appear, open a chart (by mouse and by
// keyboard), dark mode, phone width, sign out. Run by
// tests/e2e/test_console.py, which starts grove and passes:
//   GROVE_URL GROVE_EMAIL GROVE_PASSWORD GROVE_WRITE_KEY GROVE_T0 (ns) ARTIFACTS
'use strict';

const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const url = process.env.GROVE_URL;
const artifacts = process.env.ARTIFACTS || '.';
const T0 = BigInt(process.env.GROVE_T0);
const MIN = 60n * 1000000000n;

function check(cond, what) {
  if (!cond) throw new Error('failed: ' + what);
  console.log('ok   ' + what);
}

async function reading(seconds, pm25) {
  const time = Number((T0 + BigInt(seconds) * 1000000000n) / 1000000n) / 1000;
  const r = await fetch(url + '/api/v1/flow/readings', {
    method: 'POST',
    headers: { 'X-API-Key': process.env.GROVE_WRITE_KEY, 'Content-Type': 'application/json' },
    body: JSON.stringify({ readings: [{ station: 'web-1', region: 'plaza', time, pm25 }] }),
  });
  if (r.status !== 200) throw new Error('reading refused: ' + (await r.text()));
}

(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'], // as root in CI
  });
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(15000);
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

    await page.goto(url + '/');
    await page.waitForSelector('#login:not([hidden])');
    await page.fill('input[name=email]', process.env.GROVE_EMAIL);
    await page.fill('input[name=password]', 'not the password');
    await page.click('#login button[type=submit]');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
    check(await page.isVisible('#login'), 'a wrong password is refused with a message');
    await page.screenshot({ path: path.join(artifacts, 'login.png') });

    errors.length = 0; /* the browser logs the refused sign-in's 401: expected */
    await page.fill('input[name=password]', process.env.GROVE_PASSWORD);
    await page.click('#login button[type=submit]');
    const tile = '[data-station="web-1"]';
    await page.waitForSelector(tile);
    check(await page.isHidden('#login'), 'signed in, the air-quality page shows');
    check((await page.textContent(tile + ' .aqi')) === '–', 'a station without a closed window shows no AQI');
    check(await page.getAttribute('nav a[data-page=flow]', 'aria-current') === 'page', 'navigation marks the page');
    await page.waitForSelector('.live[data-on=true]');

    // a reading closes the first window: the tile changes without reloading
    await reading(60, 5);
    await page.waitForFunction((t) => document.querySelector(t + ' .aqi').textContent !== '–', tile);
    const label = await page.getAttribute(tile, 'aria-label');
    check(/AQI 28 · Good/.test(label), 'the AQI arrives live, in words as well as colour: ' + label);
    check(await page.textContent('[data-region="plaza"]').then((t) => t.includes('Good')), 'the region row too');

    // a smoky minute: Good → Unhealthy, an alert in the feed
    await reading(61, 150);
    await reading(120, 5);
    await page.waitForFunction(() => [...document.querySelectorAll('#alerts li')]
      .some((li) => li.textContent.includes('web-1') && li.textContent.includes('Unhealthy')));
    check(true, 'the alert appears in the feed');
    await page.waitForFunction((t) => document.querySelector(t).textContent.includes('Unhealthy'), tile);
    check(await page.getAttribute(tile, 'data-level') === '3', 'the tile shows the new category');
    await page.screenshot({ path: path.join(artifacts, 'flow.png'), fullPage: true });

    // the chart, by mouse
    await page.click(tile);
    await page.waitForFunction(() => /drawn in/.test(document.querySelector('.chart p').textContent));
    const aria = await page.getAttribute('.chart canvas', 'aria-label');
    check(/^\d+ readings of PM2\.5 at web-1$/.test(aria) && !aria.startsWith('0 '), 'the chart draws: ' + aria);
    await page.selectOption('select[aria-label=Range]', '24h');
    await page.waitForFunction(() => /last 24h/.test(document.getElementById('chart-title').textContent));
    check(true, 'the range picker redraws');
    await page.selectOption('select[aria-label=Pollutant]', 'no2');
    await page.waitForFunction(() => /0 readings of NO2/.test(document.querySelector('.chart canvas').getAttribute('aria-label')));
    check(true, 'the pollutant choice redraws (no NO2 here)');
    await page.screenshot({ path: path.join(artifacts, 'chart.png'), fullPage: true });

    // by keyboard
    await page.evaluate(() => { document.getElementById('chart-title').textContent = ''; });
    await page.focus(tile);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /web-1/.test(document.getElementById('chart-title').textContent));
    check(true, 'a station opens from the keyboard');

    // dark mode and a phone's width
    await page.click('#theme');
    check(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'dark mode');
    check(await page.getAttribute('#theme', 'aria-pressed') === 'true', 'the toggle says it is on');
    await page.setViewportSize({ width: 390, height: 844 });
    check(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'nothing overflows at phone width');
    await page.screenshot({ path: path.join(artifacts, 'flow-dark-phone.png') });
    await page.reload();
    await page.waitForSelector(tile);
    check(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'dark mode is remembered');

    // the other pages are there, and signing out ends the session
    await page.click('nav a[data-page=status]');
    await page.waitForSelector('table[aria-label="Backends of this instance"]');
    check(true, 'the status page');
    await page.click('#logout');
    await page.waitForSelector('#login:not([hidden])');
    check(true, 'signed out');
    check(errors.length === 0, 'no errors in the page: ' + JSON.stringify(errors));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.message); process.exit(1); });
