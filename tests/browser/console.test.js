// console.test.js — the console in Debian's Chromium, driven by
// playwright-core, audited by axe-core: sign-in (focus on the heading),
// navigation from the running apps, stale stations, sort and search, the
// map, a station's AQI arriving live (focus and selection kept, unchanged
// values untouched), an alert that names the station and agrees with its
// tile at the same moment, alert filters, the station panel (readings,
// alerts, map, chart axes, hover, gaps, bands, AQI or concentration,
// compare, live update), keyboard-only use, the server hung, killed and
// back (offline indicator, reconnection, catching up), dark mode, phone
// width, sign out. Every wait is for a condition, never a fixed time.
// Run by tests/e2e/test_console.py, which starts grove and passes:
//   GROVE_URL GROVE_EMAIL GROVE_PASSWORD GROVE_WRITE_KEY GROVE_T0 (ns)
//   GROVE_CITY (JSON) ARTIFACTS
// and answers "@@ stop|cont|kill|start" (printed here) with "ok".
'use strict';

const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const url = process.env.GROVE_URL;
const artifacts = process.env.ARTIFACTS || '.';
const T0 = BigInt(process.env.GROVE_T0);
const CITY = JSON.parse(process.env.GROVE_CITY);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

function check(cond, what) {
  if (!cond) throw new Error('failed: ' + what);
  console.log('ok   ' + what);
}

// the server's fate is in test_console.py's hands
const rl = readline.createInterface({ input: process.stdin });
const acks = [];
rl.on('line', () => { const r = acks.shift(); if (r) r(); });
function server(what) { return new Promise((resolve) => { acks.push(resolve); console.log('@@ ' + what); }); }

async function reading(station, seconds, pm25) {
  const time = Number((T0 + BigInt(seconds) * 1000000000n) / 1000000n) / 1000;
  const r = await fetch(url + '/api/v1/flow/readings', {
    method: 'POST',
    headers: { 'X-API-Key': process.env.GROVE_WRITE_KEY, 'Content-Type': 'application/json' },
    body: JSON.stringify({ readings: [{ station, time, pm25 }] }),
  });
  if (r.status !== 200) throw new Error('reading refused: ' + (await r.text()));
}

async function audit(page, what) {
  // evaluated, not added as a tag: grove's Content-Security-Policy refuses
  // inline scripts, and the page is audited under it
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(AXE);
  const res = await page.evaluate(() => axe.run(document, { resultTypes: ['violations'] }));
  const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `axe-core: no serious or critical violation (${what})` +
    (bad.length ? ': ' + JSON.stringify(bad.map((v) => [v.id, v.help, v.nodes.slice(0, 3).map((n) => n.target.join(' '))])) : ''));
}

const tile = (id) => `button.tile[data-station="${id}"]`;
const expectedOrder = CITY.slice().sort((a, b) => b[5] - a[5]).map((c) => c[0]); // worst first: more PM2.5, higher AQI

(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'], // as root in CI
  });
  const errors = [];
  let outage = false, blockLive = false;
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(20000);
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      // while the server is away the browser logs its refused connections
      if (m.type() === 'error' && !(outage && /WebSocket|Failed to load resource|ERR_|Failed to fetch/.test(m.text())))
        errors.push(m.text());
    });
    // the live socket goes through here so that a test can keep the page
    // from reconnecting while the server changes behind its back
    await page.routeWebSocket(/\/api\/v1\/live/, (ws) => {
      if (blockLive) { ws.close(); return; }
      ws.connectToServer();
    });

    // ---- sign-in
    await page.goto(url + '/');
    await page.waitForSelector('#login:not([hidden])');
    await audit(page, 'sign-in page');
    await page.fill('input[name=email]', process.env.GROVE_EMAIL);
    await page.fill('input[name=password]', 'not the password');
    await page.click('#login button[type=submit]');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
    check(await page.isVisible('#login'), 'a wrong password is refused with a message');
    await page.screenshot({ path: path.join(artifacts, 'login.png') });

    errors.length = 0; /* the browser logs the refused sign-in's 401: expected */
    await page.fill('input[name=password]', process.env.GROVE_PASSWORD);
    await page.click('#login button[type=submit]');
    await page.waitForSelector(tile('web-1'));
    check(await page.isHidden('#login'), 'signed in, the air-quality page shows');
    await page.waitForFunction(() => document.activeElement && document.activeElement.matches('#page h1'));
    check(true, 'after sign-in, focus is on the main heading');
    const nav = await page.$$eval('nav#apps a', (as) => as.map((a) => a.textContent));
    const apps = await (await fetch(url + '/api/v1/apps')).json();
    const titles = apps.data.filter((a) => a.page).map((a) => a.page).sort((a, b) => (a.page === 'status') - (b.page === 'status'))
      .map((p) => p.title);
    check(JSON.stringify(nav) === JSON.stringify(titles) && nav.includes('Air quality') && nav[nav.length - 1] === 'Status',
      'the navigation shows the running apps\' pages only: ' + nav);
    check(await page.getAttribute('nav a[data-page=flow]', 'aria-current') === 'page', 'navigation marks the page');
    /* the table is src/app/apps.c: `&<name>_app` entries, in order */
    const table = fs.readFileSync(path.join(__dirname, '..', '..', 'src', 'app', 'apps.c'), 'utf8')
      .split('grove_apps[] = {')[1].split('}')[0];
    const appNames = [...table.matchAll(/&(\w+)_app\b/g)].map((m) => m[1]);
    check(appNames.length >= 2 && apps.data.map((a) => a.name).join() === appNames.join(), 'GET /api/v1/apps lists the app table');
    check((await page.textContent(tile('web-1') + ' .aqi')) === '–', 'a station without a closed window shows no AQI');
    await page.waitForSelector('#connection[data-state=online]');
    check((await page.textContent('#connection')) === 'Live', 'the connection indicator says live');

    // ---- stale stations: greyed, labelled, counted
    await page.waitForSelector(tile('harbour') + '.stale .stale-label:not([hidden])');
    const staleText = await page.innerText(tile('harbour'));
    check(/Stale/i.test(staleText) && /was Unhealthy for Sensitive Groups/.test(staleText), 'a silent station says it is stale: ' + staleText.replace(/\n/g, ' | '));
    check((await page.textContent(tile('harbour') + ' .cat')).startsWith('was '), 'its category is written as past');
    check(await page.$eval(tile('harbour'), (b) => !b.hasAttribute('data-level')), 'its category colour is gone (greyed)');
    await page.waitForFunction(() => /\d+ stale/.test(document.querySelector('.summary').textContent));
    check(true, 'the page counts stale stations: ' + await page.textContent('.summary'));
    await page.waitForFunction(() => /\(2 stale\)/.test(document.querySelector('[data-region="south"]').textContent));
    check(true, 'each region counts its stale stations');
    check(/reading .*ago|just now/.test(await page.textContent(tile('harbour') + ' time')), 'a tile says how old its data is');

    // ---- worst first, sort and search
    const cityOrder = () => page.$$eval('.grid li:not([hidden]) button.tile', (bs, ids) =>
      bs.map((b) => b.dataset.station).filter((id) => ids.includes(id)), CITY.map((c) => c[0]));
    await page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll('.grid button.tile')]
      .map((b) => b.dataset.station).filter((id) => want.includes(id))) === JSON.stringify(want), expectedOrder);
    check(true, 'tiles are sorted worst first by default: ' + (await cityOrder()).join(' '));
    await page.fill('#station-search', 'east');
    check(JSON.stringify(await cityOrder()) === '["mill","park"]', 'search by region');
    await page.fill('#station-search', 'harbour r');
    check(JSON.stringify(await cityOrder()) === '["harbour"]', 'search by name');
    await page.fill('#station-search', 'dock');
    check(JSON.stringify(await cityOrder()) === '["docks"]', 'search by id');
    check(/1 of \d+ stations match/.test(await page.textContent('#shown')), 'the search says how many match');
    await page.fill('#station-search', '');
    await page.selectOption('#station-sort', 'name');
    const byName = await cityOrder();
    const names = Object.fromEntries(CITY.map((c) => [c[0], c[1]]));
    check(JSON.stringify(byName) === JSON.stringify(byName.slice().sort((a, b) => names[a].localeCompare(names[b]))), 'sort by name');
    await page.selectOption('#station-sort', 'worst');

    // ---- the map
    await page.click('button[data-view=map]');
    await page.waitForSelector('svg.map g.dot[data-station="mill"]');
    check(await page.$$eval('svg.map g.dot', (g) => g.length) === CITY.length + 1, 'the map places every station with coordinates');
    check(await page.isHidden('.grid'), 'the map replaces the tiles');
    const xs = await page.$$eval('svg.map g.dot circle', (cs) => cs.map((c) => [c.closest('g').dataset.station, +c.getAttribute('cx'), +c.getAttribute('cy')]));
    const at = Object.fromEntries(xs.map(([id, x, y]) => [id, [x, y]]));
    check(at.school[1] < at.docks[1] && at.park[0] > at.harbour[0], 'positions follow the coordinates (north up, east right)');
    await page.click('svg.map g.dot[data-station="harbour"]');
    await page.waitForSelector('#station-panel[open]');
    check((await page.textContent('#panel-title')) === 'Harbour Road', 'a station on the map opens its panel');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#station-panel[open]', { state: 'detached' });
    await page.click('button[data-view=tiles]');
    await page.waitForSelector('.grid:not([hidden])');

    // ---- a reading closes the first window: the tile changes in place,
    // keeps focus and selection; other tiles are not touched
    await page.focus(tile('web-1'));
    await page.evaluate(() => {
      const t = document.querySelector('button.tile[data-station="web-1"]');
      window.__aqiNode = t.querySelector('.aqi');
      const r = document.createRange();
      r.selectNodeContents(t.querySelector('.name'));
      getSelection().removeAllRanges();
      getSelection().addRange(r);
      window.__said = [];
      new MutationObserver(() => { const s = document.getElementById('announce').textContent; if (s) window.__said.push(s); })
        .observe(document.getElementById('announce'), { childList: true, characterData: true, subtree: true });
      window.__touched = 0;
      new MutationObserver((ms) => { window.__touched += ms.length; })
        .observe(document.querySelector('button.tile[data-station="park"] .name'), { childList: true, characterData: true, subtree: true });
    });
    await reading('web-1', 60, 5);
    await page.waitForFunction((t) => document.querySelector(t + ' .aqi').textContent !== '–', tile('web-1'));
    const label = await page.evaluate((t) => document.querySelector(t).textContent, tile('web-1'));
    check(/AQI 28Good/.test(label) && await page.getAttribute(tile('web-1'), 'data-level') === '0', 'the AQI arrives live, in words as well as colour: ' + label);
    check(await page.evaluate(() => document.activeElement.dataset.station === 'web-1'), 'focus stays on the tile that updated');
    check(await page.evaluate(() => getSelection().toString() === 'Plaza Web'), 'selected text in an updated tile survives');
    check(await page.evaluate(() => window.__aqiNode === document.querySelector('button.tile[data-station="web-1"] .aqi')), 'the tile is updated, not rebuilt');
    check(await page.evaluate(() => window.__touched === 0), 'unchanged values are not re-rendered');
    await page.waitForFunction(() => document.querySelector('[data-region="plaza"]').textContent.includes('Good'));
    check(await page.textContent('[data-region="plaza"]').then((t) => t.includes('Plaza Web: 28 Good')), 'the region row shows its worst station beside its mean');

    // ---- a smoky minute: Good → Unhealthy; the alert names the station,
    // and the tile says the same the moment the alert shows
    await page.evaluate(() => {
      window.__atAlert = null;
      new MutationObserver(() => {
        const li = [...document.querySelectorAll('#alerts li')].find((l) => l.textContent.includes('Plaza Web') && l.textContent.includes('→ Unhealthy'));
        if (li && !window.__atAlert) {
          const t = document.querySelector('button.tile[data-station="web-1"]');
          window.__atAlert = [t.dataset.level, t.querySelector('.cat').textContent];
        }
      }).observe(document.getElementById('alerts'), { childList: true, subtree: true });
    });
    await reading('web-1', 61, 150);
    await reading('web-1', 120, 5);
    await page.waitForFunction(() => window.__atAlert);
    check(true, 'the alert appears in the feed with the station\'s name');
    const atAlert = await page.evaluate(() => window.__atAlert);
    check(atAlert[0] === '3' && atAlert[1] === 'Unhealthy', 'the tile agrees with the alert at the same moment: ' + atAlert);
    const alertLi = '#alerts li[data-level="3"]';
    check(/■ Unhealthy/.test(await page.textContent(alertLi + ' .badge')), 'severity by colour, icon and words');
    check(/just now|\d+ s ago/.test(await page.textContent(alertLi + ' time')), 'the alert says when: ' + await page.textContent(alertLi + ' time'));
    await page.waitForFunction(() => window.__said.some((s) => /Plaza Web is now Unhealthy/.test(s)));
    const said = await page.evaluate(() => window.__said);
    check(!said.some((s) => /is now Good/.test(s)) && said.filter((s) => /Plaza Web is now/.test(s)).length === 1,
      'the live region announces the category change, once, and nothing else of it: ' + JSON.stringify(said));
    await page.selectOption('#alert-region', 'south');
    check(await page.isHidden(alertLi), 'alerts filter by region');
    await page.selectOption('#alert-region', 'plaza');
    check(await page.isVisible(alertLi), '… and show their region');
    await page.selectOption('#alert-level', '4');
    check(await page.isHidden(alertLi) && await page.isVisible('text=No alerts match.'), 'alerts filter by severity');
    await page.selectOption('#alert-level', '-1');
    await page.selectOption('#alert-region', '');
    await page.screenshot({ path: path.join(artifacts, 'flow.png'), fullPage: true });
    await audit(page, 'air-quality page');

    // ---- the panel, from the alert
    await page.click(alertLi + ' button');
    await page.waitForSelector('#station-panel[open]');
    check((await page.textContent('#panel-title')) === 'Plaza Web', 'an alert opens its station');
    check(await page.evaluate(() => document.getElementById('station-panel').contains(document.activeElement)), 'the panel takes focus');
    await page.waitForSelector('#station-panel tr[data-pollutant=pm25]');
    check(/Fine particles \(PM2\.5\).*µg\/m³/.test(await page.textContent('#station-panel tr[data-pollutant=pm25]')), 'latest readings per pollutant, named, with units');
    check(/Unhealthy/.test(await page.textContent('.panel-alerts')), 'the station\'s alerts');
    check(await page.isVisible('.mini-map svg g.here'), 'its place on the map');
    const chartReady = () => page.waitForFunction(() => {
      const c = window.Chart && Chart.getChart(document.querySelector('#station-panel canvas'));
      return c && !/Loading/.test(document.getElementById('chart-note').textContent) ? true : false;
    });
    await chartReady();
    const axes = await page.evaluate(() => {
      const c = Chart.getChart(document.querySelector('#station-panel canvas'));
      const o = { hour: '2-digit', minute: '2-digit' };
      return { y: c.options.scales.y.title.text, x: c.options.scales.x.title.text,
        ticks: c.scales.x.ticks.map((t) => [t.label, new Date(t.value).toLocaleString([], o)]),
        bands: c.options.plugins.bands.bands.length, gaps: c.data.datasets[0].data.filter((p) => p.y === null).length,
        values: c.data.datasets[0].data.filter((p) => p.y !== null).map((p) => p.y),
        dots: c.data.datasets.filter((d) => d.dots).reduce((n, d) => n + d.data.length, 0) };
    });
    check(/AQI/.test(axes.y), 'the value axis says AQI: ' + axes.y);
    check(/^Time \(.+\)$/.test(axes.x) && axes.ticks.length > 2 && axes.ticks.every(([l, want]) => l === want), 'a time axis in local time: ' + axes.ticks.map((t) => t[0]).join(' '));
    check(axes.bands === 6, 'the EPA category bands are behind the line');
    check(axes.gaps > 0, 'missing readings are gaps, not lines across them');
    check(axes.values.includes(28), 'AQI values drawn (PM2.5 5 µg/m³ is AQI 28)');
    check(axes.dots > 0, 'a reading alone between gaps is drawn as a dot');
    await page.selectOption('#chart-measure', 'conc');
    await page.waitForFunction(() => /µg\/m³/.test(Chart.getChart(document.querySelector('#station-panel canvas')).options.scales.y.title.text));
    check(true, 'concentration is selectable, its unit on the value axis');
    // the chart may be redrawn by a live update meanwhile (which drops its
    // tooltip): point at the reading again until the tooltip shows
    let hover = null, tip = ['', ''];
    for (let tries = 0; tries < 10; tries++) {
      hover = await page.evaluate(() => {
        const canvas = document.querySelector('#station-panel canvas');
        const c = Chart.getChart(canvas);
        const meta = c.getDatasetMeta(0);
        const data = c.data.datasets[0].data;
        let i = data.findIndex((p) => p.y === 77.5);
        if (i < 0) i = data.findIndex((p) => p.y !== null);
        const pt = meta.data[i];
        const r = canvas.getBoundingClientRect();
        return { x: r.left + pt.x, y: r.top + pt.y, when: grove.when(data[i].x), value: data[i].y };
      });
      await page.mouse.move(0, 0);
      await page.mouse.move(hover.x, hover.y);
      const shown = await page.waitForFunction(() => Chart.getChart(document.querySelector('#station-panel canvas')).tooltip.getActiveElements().length > 0,
        null, { timeout: 3000 }).then(() => true, () => false);
      if (shown) {
        tip = await page.evaluate(() => { const t = Chart.getChart(document.querySelector('#station-panel canvas')).tooltip; return [(t.title || []).join(' '), (t.body || []).map((b) => b.lines.join(' ')).join(' ')]; });
        if (tip[0]) break;
      }
    }
    check(tip[0] === hover.when && tip[1].includes('µg/m³') && tip[1].includes(String(hover.value)), 'hover gives the exact time and value: ' + tip.join(' | '));
    await page.selectOption('#chart-range', '24h');
    await page.waitForFunction(() => /last 24 hours/.test(document.getElementById('chart-note').textContent));
    check(true, 'the range picker redraws');
    await page.selectOption('#chart-pollutant', 'no2');
    await page.waitForFunction(() => /No Nitrogen dioxide \(NO₂\) readings/.test(document.getElementById('chart-note').textContent));
    check(true, 'the pollutant choice redraws, named in full (no NO₂ here)');
    await page.selectOption('#chart-pollutant', 'pm25');
    await page.selectOption('#chart-range', '1h');
    await page.selectOption('#compare-with', 'harbour');
    await page.click('#compare-add');
    await page.waitForFunction(() => { const c = Chart.getChart(document.querySelector('#station-panel canvas')); return c.data.datasets.filter((d) => !d.dots).length === 2 && c.options.plugins.legend.display; });
    check(await page.evaluate(() => Chart.getChart(document.querySelector('#station-panel canvas')).data.datasets.filter((d) => !d.dots).map((d) => d.label).join()) === 'Plaza Web,Harbour Road', 'several stations compare on one chart, with a legend');
    const lastX = await page.evaluate(() => Math.max(...Chart.getChart(document.querySelector('#station-panel canvas')).data.datasets[0].data.map((p) => p.x)));
    await reading('web-1', 130, 40);
    await page.waitForFunction((x) => Math.max(...Chart.getChart(document.querySelector('#station-panel canvas')).data.datasets[0].data.map((p) => p.x)) > x, lastX);
    check(true, 'the chart updates live');
    await page.screenshot({ path: path.join(artifacts, 'chart.png') });
    await audit(page, 'station panel');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#station-panel[open]', { state: 'detached' });
    check(await page.evaluate(() => document.activeElement.closest('#alerts') !== null), 'Escape closes the panel and focus returns to where it was');

    // ---- keyboard only: the skip link, tiles, the panel
    await page.reload();
    await page.waitForSelector(tile('web-1'));
    await page.evaluate(() => { window.__page = document.querySelector('#page h1'); });
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement.classList.contains('skip')), 'the skip link comes first');
    const hash = await page.evaluate(() => location.hash);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement.matches('#page h1, main'));
    check(await page.evaluate((h) => location.hash === h && document.querySelector('#page h1') === window.__page, hash),
      'the skip link moves focus without reloading the page');
    let tabs = 0;
    while (tabs++ < 60 && !(await page.evaluate(() => document.activeElement.matches('button.tile')))) await page.keyboard.press('Tab');
    check(tabs < 60, 'tiles are reached with Tab (they are buttons)');
    const focused = await page.evaluate(() => document.activeElement.dataset.station);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#station-panel[open]');
    check(await page.evaluate(() => document.getElementById('station-panel').contains(document.activeElement)), 'Enter opens the panel, focus inside');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#station-panel[open]', { state: 'detached' });
    check(await page.evaluate((id) => document.activeElement.dataset.station === id, focused), 'Escape returns focus to the tile');
    check(await page.getAttribute('#alerts', 'tabindex') === '0', 'the alerts list scrolls by keyboard');

    // ---- the server hung, then killed, then back: the indicator tells
    // the truth and the page catches up by itself
    outage = true;
    await server('stop');
    await page.waitForFunction(() => /^Offline since \d/.test(document.getElementById('connection').textContent), null, { timeout: 60000 });
    check(true, 'a hung server shows: ' + await page.textContent('#connection'));
    await page.screenshot({ path: path.join(artifacts, 'offline.png') });
    await server('cont');
    await page.waitForSelector('#connection[data-state=online]', { timeout: 60000 });
    check(true, 'the page reconnects by itself when it answers again');
    await server('kill');
    await page.waitForFunction(() => /^Offline since/.test(document.getElementById('connection').textContent), null, { timeout: 60000 });
    check(true, 'a stopped server shows offline too');
    blockLive = true; // the page cannot reconnect until the new readings are in
    await server('start');
    // a station registered while the page cannot hear of it
    const reg = await fetch(url + '/api/v1/flow/stations', { method: 'POST',
      headers: { 'X-API-Key': process.env.GROVE_WRITE_KEY, 'Content-Type': 'application/json' },
      body: JSON.stringify({ id: 'newcomer', name: 'New Corner', region: 'plaza', lat: 51.52, lon: -0.09 }) });
    check(reg.ok, 'a station registered while the page is offline');
    blockLive = false;
    await page.waitForSelector('#connection[data-state=online]', { timeout: 60000 });
    await page.waitForSelector(tile('newcomer'), { timeout: 60000 });
    check(true, 'after a restart it reconnects and catches up (the new station shows)');
    outage = false;

    // ---- dark mode, a phone's width
    await page.click('#theme');
    check(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'dark mode');
    check(await page.getAttribute('#theme', 'aria-pressed') === 'true', 'the toggle says it is on');
    await audit(page, 'dark mode');
    await page.click(tile('web-1'));
    await chartReady();
    const tickColour = await page.evaluate(() => Chart.getChart(document.querySelector('#station-panel canvas')).options.scales.x.ticks.color);
    check(tickColour === '#e6edf3', 'the chart takes dark-mode colours: ' + tickColour);
    await audit(page, 'station panel, dark');
    await page.keyboard.press('Escape');
    await page.setViewportSize({ width: 390, height: 844 });
    check(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'nothing overflows at phone width');
    await audit(page, 'phone width, dark');
    await page.screenshot({ path: path.join(artifacts, 'flow-dark-phone.png'), fullPage: true });
    await page.reload();
    await page.waitForSelector(tile('web-1'));
    check(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'dark mode is remembered');

    // ---- the status page, signing out
    await page.click('nav a[data-page=status]');
    await page.waitForSelector('table[aria-label="Backends of this instance"]');
    check(true, 'the status page');
    await page.click('#logout');
    await page.waitForSelector('#login:not([hidden])');
    check(true, 'signed out');
    check(errors.length === 0, 'no errors in the page: ' + JSON.stringify(errors));
  } finally {
    await browser.close();
    rl.close();
  }
})().catch((e) => { console.error(e.message); process.exit(1); });
