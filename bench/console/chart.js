// chart.js — draws the same 10,000 points with the console's chart
// (web/flow.js: Chart.js from Debian's libjs-chart.js, served by grove at
// /javascript/chart.js/) and with uPlot (npm) in one Chromium, 30 times
// each, and prints the median milliseconds of each: "grove_ms uplot_ms".
// GROVE_URL is a running grove serving the console.
'use strict';
const { chromium } = require('playwright-core');

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  // uPlot is injected inline: this page (a bench, not the console) lifts grove's CSP for it
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
  await page.goto(process.env.GROVE_URL + '/');
  await page.waitForFunction(() => typeof grove !== 'undefined' && grove.chart);
  await page.evaluate(() => {
    document.body.innerHTML = '<div style="width:1000px;height:240px;position:relative"><canvas id="a"></canvas></div><div id="b"></div>';
    return grove.chart.load();
  });
  await page.addScriptTag({ path: require.resolve('uplot/dist/uPlot.iife.min.js') });
  await page.addStyleTag({ path: require.resolve('uplot/dist/uPlot.min.css') });
  const [ours, theirs] = await page.evaluate(async () => {
    const n = 10000, t0 = 1.8e18, step = 1e10;
    const pts = [], xs = new Float64Array(n), ys = new Float64Array(n);
    let v = 20;
    for (let i = 0; i < n; i++) {
      v = Math.max(0, v + Math.sin(i / 50) + (Math.random() - 0.5) * 3);
      pts.push([t0 + i * step, v]);
      xs[i] = (t0 + i * step) / 1e9;
      ys[i] = v;
    }
    const median = (a) => a.sort((x, y) => x - y)[a.length >> 1];
    const canvas = document.getElementById('a');
    const a = [];
    for (let r = 0; r < 30; r++) {
      const s = performance.now();
      await grove.chart.draw(canvas, pts, t0, t0 + n * step); // a new data set each time, as a range change gives
      canvas.getContext('2d').getImageData(0, 0, 1, 1); // wait for the drawing itself
      a.push(performance.now() - s);
    }
    const b = [];
    const plot = new uPlot({ width: 1000, height: 240, series: [{}, { stroke: 'blue' }], legend: { show: false } },
      [xs, ys], document.getElementById('b'));
    for (let r = 0; r < 30; r++) {
      const s = performance.now();
      plot.setData([xs, ys]);
      await new Promise((r) => queueMicrotask(r)); // uPlot draws in a microtask queued first
      plot.ctx.getImageData(0, 0, 1, 1);
      b.push(performance.now() - s);
    }
    return [median(a), median(b)];
  });
  console.log(ours.toFixed(2) + ' ' + theirs.toFixed(2));
  await browser.close();
})().catch((e) => { console.error(e); process.exit(1); });
