// matrix.test.js — the AI-workloads page (web/matrix.js) in Debian's
// Chromium, driven by playwright-core, audited by axe-core. Every figure
// checked is read from the server's own answer to the request the page
// made (never a number written here): the workload optimizer's pickers
// against the catalogues, the form's payload, each result figure and its
// uncertainty band, the chart comparing configurations (order, axis unit,
// tooltip), the table and the excluded configurations, the loading, empty
// and error states (the error envelope's message), training, the tabs and
// the address, the keyboard, dark mode and a 375 px phone; cost
// management by region (the rankings by cost and carbon, their charts).
// Run by tests/e2e/test_console_matrix.py, which starts grove and passes:
//   GROVE_URL GROVE_EMAIL GROVE_PASSWORD ARTIFACTS CHROMIUM
'use strict';

const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const url = process.env.GROVE_URL;
const artifacts = process.env.ARTIFACTS || '.';
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

function check(cond, what) {
  if (!cond) throw new Error('failed: ' + what);
  console.log('ok   ' + what);
}

// web/matrix.js's num(), in the browser's locale (en-US here)
function num(v) {
  if (v == null || !Number.isFinite(Number(v))) return '–';
  v = Number(v);
  const a = Math.abs(v);
  const o = a >= 100 ? { maximumFractionDigits: 0 } : a >= 10 ? { maximumFractionDigits: 1 }
    : a >= 1 ? { maximumFractionDigits: 2 } : { maximumSignificantDigits: 3 };
  return v.toLocaleString('en-US', o);
}
const usd = (v) => 'US$' + num(v);

async function audit(page, what) {
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(AXE);
  const res = await page.evaluate(() => axe.run(document, { resultTypes: ['violations'] }));
  const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `axe-core: no serious or critical violation (${what})` +
    (bad.length ? ': ' + JSON.stringify(bad.map((v) => [v.id, v.help, v.nodes.slice(0, 3).map((n) => n.target.join(' '))])) : ''));
}

// Submits the form #<form> and returns [the payload the page sent, the
// server's whole answer, its status].
async function submitForm(page, form, route) {
  const [req] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith(route) && r.method() === 'POST'),
    page.click(`#${form} button[type=submit]`),
  ]);
  const res = await req.response();
  const body = await res.json();
  await page.waitForFunction((id) => !document.querySelector(id).hasAttribute('aria-busy'), `#${form}-results`);
  return [JSON.parse(req.postData()), body, res.status()];
}
const simulate = (page) => submitForm(page, 'mx-simulate', '/api/model/simulate-performance');

// The figure tile `key` in scope: its data-value, its shown number and its band.
function figure(page, key, scope) {
  return page.$eval(`${scope} .stat[data-figure="${key}"]`, (s) => {
    const band = s.querySelector('.band');
    return { value: s.querySelector('dd').dataset.value, shown: s.querySelector('.figure').textContent,
      low: band && band.dataset.low, high: band && band.dataset.high, band: band && band.textContent };
  });
}
async function checkFigure(page, key, value, fmt, band, what, scope = '#mx-simulate-results') {
  const f = await figure(page, key, scope);
  check(Number(f.value) === value && f.shown === (fmt || num)(value),
    `${what}: ${f.shown} is the server's ${value}`);
  if (band) {
    check(Number(f.low) === band[0] && Number(f.high) === band[1] && f.band === `likely ${num(band[0])}–${num(band[1])}`,
      `${what}: its uncertainty band ${f.band} is the server's [${band}]`);
  }
}

let expectErrors = false; // while a test provokes refusals, the browser's log of them is expected

async function costByRegionView(page, api) {
  await page.click('[role=tab][data-view=costs]');
  await page.waitForSelector('#mx-regions');
  check(/Name a GPU/.test(await page.textContent('#mx-regions-results')), 'before a comparison the region results say what to do (empty state)');
  const gpu = (await api('/api/hardware-specs')).find((h) => /H100-SXM/.test(h.hardware_name));
  await page.selectOption('#mx-regions select[name=hardware]', gpu.hardware_name);
  await page.fill('#mx-regions input[name=gpu_count]', '8');
  await page.selectOption('#mx-regions select[name=region]', 'aws/us-east-1');
  const [req] = await Promise.all([page.waitForRequest((r) => r.url().includes('/api/recommendations/cross-region')), page.click('#mx-regions button[type=submit]')]);
  const cr = await (await req.response()).json();
  await page.waitForFunction(() => !document.querySelector('#mx-regions-results').hasAttribute('aria-busy'));
  const q = new URL(req.url()).searchParams;
  check(q.get('hardware') === gpu.hardware_name && q.get('gpu_count') === '8' && q.get('provider') === 'aws' && q.get('region') === 'us-east-1', 'the region form asks for ' + q);
  const byCost = await page.$$eval('#mx-regions-results table.by-cost tbody tr', (trs) => trs.map((tr) => [tr.dataset.region, tr.querySelector('[data-key=cost]').dataset.value]));
  check(JSON.stringify(byCost) === JSON.stringify(cr.data.ranked_by_cost.map((r) => [`${r.provider}/${r.region}`, String(r.cost)])), `regions by cost are the server's ranking (${byCost.length})`);
  const byCarbon = await page.$$eval('#mx-regions-results table.by-carbon tbody tr', (trs) => trs.map((tr) => tr.dataset.region));
  check(JSON.stringify(byCarbon) === JSON.stringify(cr.data.ranked_by_carbon.map((r) => `${r.provider}/${r.region}`)), `regions by carbon are the server's ranking, ${byCarbon[0]} first`);
  check((await page.textContent('#mx-regions-results .summary')).includes(`now in aws us-east-1: ${usd(cr.data.current.cost)}`), 'the current region\'s cost is said');
  const carbonChart = await page.evaluate(() => { const cs = document.querySelectorAll('#mx-regions-results canvas'); const c = Chart.getChart(cs[cs.length - 1]);
    return c && [c.data.labels[0], c.data.datasets[0].data[0], c.options.scales.x.title.text]; });
  const c0 = cr.data.ranked_by_carbon[0];
  check(carbonChart && carbonChart[0].startsWith(`${c0.provider} ${c0.region}`) && carbonChart[1] === c0.carbon_gco2e / 1000 && carbonChart[2] === 'kg CO₂e',
    `the carbon chart starts with the cleanest region, in kg CO₂e: ${carbonChart && carbonChart.join(' ')}`);
  await audit(page, 'cost by region');
  await page.screenshot({ path: path.join(artifacts, 'matrix-costs.png'), fullPage: true });
  await page.setViewportSize({ width: 375, height: 812 });
  check(await page.waitForFunction(() => document.documentElement.scrollWidth <= 375, null, { timeout: 5000 }).then(() => true, () => false), 'cost management fits 375 px');
  await page.setViewportSize({ width: 1280, height: 900 });
}

(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    page.setDefaultTimeout(30000);
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      // a refused simulation is logged by the browser as a failed resource
      if (m.type() === 'error' && !(expectErrors && /Failed to load resource/.test(m.text()))) errors.push(m.text());
    });

    // ---- sign in, go to the page
    await page.goto(url + '/#/matrix');
    await page.waitForSelector('#login:not([hidden])');
    await page.fill('input[name=email]', process.env.GROVE_EMAIL);
    await page.fill('input[name=password]', process.env.GROVE_PASSWORD);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#mx-simulate');
    const token = await page.evaluate(() => grove.token);
    const api = async (p) => (await (await fetch(url + p, { headers: { Authorization: 'Bearer ' + token } })).json()).data;
    check(await page.getAttribute('nav a[data-page=matrix]', 'aria-current') === 'page', 'the navigation has the AI-workloads page, from the app table');
    check(await page.evaluate(() => location.hash) === '#/matrix/optimizer', 'the address names the view: #/matrix/optimizer');
    check(await page.getAttribute('[role=tab][data-view=optimizer]', 'aria-selected') === 'true', 'the workload optimizer is the selected tab');
    check(/Choose a model/.test(await page.textContent('#mx-simulate-results')), 'before a simulation the results say what to do (empty state)');

    // ---- the pickers are the catalogues
    const models = await api('/api/model/get-model-data');
    const hardware = await api('/api/hardware-specs');
    const gpus = hardware.filter((h) => h.kind === 'gpu');
    const modelOptions = await page.$$eval('#mx-simulate select[name=model_name] option', (os) => os.map((o) => o.value));
    check(JSON.stringify(modelOptions) === JSON.stringify(models.map((m) => m.model_name)),
      `the model picker lists the ${models.length} catalogue models`);
    const hwOptions = await page.$$eval('#mx-simulate select[name=hardware] option', (os) => os.map((o) => o.value));
    check(JSON.stringify(hwOptions) === JSON.stringify(['', ...gpus.map((h) => h.hardware_name)]),
      `the hardware picker lists the ${gpus.length} catalogue GPUs and "every GPU"`);
    await audit(page, 'optimizer form');

    // ---- one configuration: the form's fields become the payload, the
    // figures are the answer's
    const model = models.find((m) => m.architecture_type === 'decoder') || models[0];
    const gpu = gpus.find((h) => /H100/.test(h.hardware_name)) || gpus[0];
    await page.selectOption('#mx-simulate select[name=model_name]', model.model_name);
    await page.selectOption('#mx-simulate select[name=hardware]', gpu.hardware_name);
    await page.fill('#mx-simulate input[name=gpu_count]', '2');
    await page.fill('#mx-simulate input[name=batch_size]', '8');
    await page.fill('#mx-simulate input[name=input_length]', '1024');
    await page.fill('#mx-simulate input[name=output_length]', '256');
    await page.selectOption('#mx-simulate select[name=precision]', 'FP16');
    await page.click('#mx-simulate .advanced summary');
    await page.fill('#mx-simulate input[name=tensor_parallel]', '2');
    await page.fill('#mx-simulate input[name=max_latency_ms]', '60000');
    // the loading state: the answer is held until the page has shown it
    let release;
    const held = new Promise((r) => { release = r; });
    await page.route('**/api/model/simulate-performance', async (route) => { await held; await route.continue(); });
    const pending = simulate(page);
    await page.waitForSelector('#mx-simulate-results .loading');
    check(await page.isDisabled('#mx-simulate button[type=submit]') && await page.getAttribute('#mx-simulate-results', 'aria-busy') === 'true',
      'while simulating: "Simulating…", the button disabled, the results busy');
    release();
    const [sent, answer] = await pending;
    await page.unroute('**/api/model/simulate-performance');
    check(sent.model_name === model.model_name && sent.hardware === gpu.hardware_name && sent.gpu_count === 2 &&
      sent.batch_size === 8 && sent.input_length === 1024 && sent.output_length === 256 && sent.precision === 'FP16' &&
      sent.tensor_parallel === 2 && sent.task_type === 'Inference' && sent.performance_requirements.max_latency_ms === 60000,
    'the form sends what it says: ' + JSON.stringify(sent));
    check(answer.status === 'success' && answer.data.configurations.length === 1, 'the server simulated one configuration');
    const c = answer.data.configurations[0], pm = c.performance_metrics, u = c.uncertainty;
    await page.waitForSelector('#mx-simulate-results .stats');
    check((await page.textContent('#mx-best')).includes(`${c.hardware} × ${c.gpu_count}`), 'the results name the configuration');
    await checkFigure(page, 'ttft', pm.time_to_first_token_ms, num, u.time_to_first_token_ms, 'time to first token');
    await checkFigure(page, 'tpot', pm.time_per_output_token_ms, num, null, 'time per output token');
    await checkFigure(page, 'latency', pm.latency_ms, num, u.latency_ms, 'end-to-end latency');
    await checkFigure(page, 'tokens', pm.throughput_tokens_per_s, num, null, 'throughput (tokens/s)');
    await checkFigure(page, 'qps', pm.throughput_qps, num, u.throughput_qps, 'throughput (requests/s)');
    await checkFigure(page, 'memory', c.memory.per_gpu_gb, num, null, 'memory per GPU');
    check((await page.textContent('#mx-simulate-results .stat[data-figure=memory] dd')).includes(`GB of ${num(c.memory.available_per_gpu_gb)}`), 'memory is out of the GPU\'s own');
    check((await page.textContent('#mx-simulate-results .stat[data-figure=fits] dd')) === (c.memory.fits ? 'yes' : 'no: needs more memory per GPU'), 'whether it fits is the server\'s');
    await checkFigure(page, 'cost', c.cost_analysis.cost_per_1000_inferences, usd, null, 'cost per 1,000 inferences');
    await checkFigure(page, 'energy', c.cost_analysis.energy_kwh_per_1000_inferences, num, null, 'energy per 1,000 inferences');
    await checkFigure(page, 'carbon', c.cost_analysis.carbon_g_per_1000_inferences, num, null, 'carbon per 1,000 inferences');
    check((await page.textContent('#mx-simulate-results')).includes(`leave-one-out error ${num(answer.metadata.loo_mape_percent)} %`),
      'the calibration\'s held-out error is shown');
    await page.waitForFunction(() => { const cv = document.querySelector('#mx-simulate-results canvas'); return cv && window.Chart && Chart.getChart(cv); });
    check(true, 'a chart compares the configurations (Chart.js)');

    // ---- every catalogue GPU: the chart orders them, the table has each
    await page.selectOption('#mx-simulate select[name=hardware]', '');
    await page.fill('#mx-simulate input[name=gpu_count]', '');
    await page.fill('#mx-simulate input[name=tensor_parallel]', '');
    await page.fill('#mx-simulate input[name=max_latency_ms]', '');
    await page.selectOption('#mx-simulate select[name=precision]', '');
    const [sent2, all] = await simulate(page);
    check(sent2.hardware === undefined && sent2.gpu_count === undefined && sent2.precision === undefined, 'empty fields are left to the server\'s defaults');
    const configs = all.data.configurations;
    check(configs.length > 1, `the server simulated ${configs.length} configurations`);
    const rows = await page.$$eval('#mx-simulate-results table.configs tbody tr', (trs) => trs.map((tr) => tr.dataset.config));
    check(JSON.stringify(rows) === JSON.stringify(configs.map((x) => `${x.hardware} × ${x.gpu_count}`)), 'the table has one row per configuration, in the server\'s order');
    const firstRow = await page.$$eval('#mx-simulate-results table.configs tbody tr:first-child td', (tds) => tds.map((t) => t.textContent));
    check(firstRow[5] === num(configs[0].performance_metrics.latency_ms) && firstRow[8] === usd(configs[0].cost_analysis.cost_per_1000_inferences),
      `a row's latency and cost are the server's: ${firstRow[5]} ms, ${firstRow[8]}`);
    const excluded = all.data.excluded || [];
    if (excluded.length) {
      await page.click('#mx-simulate-results .excluded summary');
      const items = await page.$$eval('#mx-simulate-results .excluded li', (ls) => ls.map((l) => l.textContent));
      check(items.length === excluded.length && items[0] === `${excluded[0].hardware} × ${excluded[0].gpu_count}: ${excluded[0].reason}`,
        `the excluded configurations with the server's reasons: ${items[0]}`);
    }
    const fitting = configs.filter((x) => x.memory.fits);
    const byLatency = fitting.slice().sort((a, b) => a.performance_metrics.latency_ms - b.performance_metrics.latency_ms).slice(0, 20);
    const chartOf = () => page.evaluate(() => {
      const ch = Chart.getChart(document.querySelector('#mx-simulate-results canvas'));
      return { labels: ch.data.labels, values: ch.data.datasets[0].data, unit: ch.options.scales.x.title.text,
        legend: ch.options.plugins.legend.display, sets: ch.data.datasets.map((d) => d.label), n: ch.data.datasets.length };
    });
    let ch = await chartOf();
    check(JSON.stringify(ch.labels) === JSON.stringify(byLatency.map((x) => `${x.hardware} × ${x.gpu_count}`)) &&
      ch.values[0] === byLatency[0].performance_metrics.latency_ms && ch.unit === 'ms',
    `the chart ranks the fitting configurations by latency, fastest first (${ch.labels[0]}), on a ms axis`);
    check(ch.legend && ch.sets.includes('Likely range'), 'the chart has a legend and the uncertainty band: ' + ch.sets);
    // hover: the tooltip says the configuration, the value and the unit
    await page.$eval('#mx-simulate-results canvas', (cv) => cv.scrollIntoView({ block: 'center' }));
    const bar = await page.evaluate(() => {
      const cv = document.querySelector('#mx-simulate-results canvas'), r = cv.getBoundingClientRect();
      const e = Chart.getChart(cv).getDatasetMeta(0).data[0];
      return { x: r.left + (e.x + e.base) / 2, y: r.top + e.y };
    });
    await page.mouse.move(bar.x, bar.y);
    await page.waitForFunction(() => Chart.getChart(document.querySelector('#mx-simulate-results canvas')).tooltip.getActiveElements().length > 0);
    const tip = await page.evaluate(() => {
      const t = Chart.getChart(document.querySelector('#mx-simulate-results canvas')).tooltip;
      return { title: t.title.join(' '), body: t.body.map((b) => b.lines.join(' ')).join(' | ') };
    });
    check(tip.title === ch.labels[0] && tip.body.includes(`${num(byLatency[0].performance_metrics.latency_ms)} ms`),
      `hovering a bar tells its value with the unit: ${tip.title}: ${tip.body}`);
    await page.selectOption('#mx-simulate-results select[name=compare]', 'cost');
    const byCost = fitting.slice().sort((a, b) => a.cost_analysis.cost_per_1000_inferences - b.cost_analysis.cost_per_1000_inferences).slice(0, 20);
    ch = await chartOf();
    check(ch.labels[0] === `${byCost[0].hardware} × ${byCost[0].gpu_count}` && ch.values[0] === byCost[0].cost_analysis.cost_per_1000_inferences &&
      ch.unit === 'US$' && ch.n === 1, `compared by cost, the cheapest first (${ch.labels[0]}), on a US$ axis`);
    const label = await page.getAttribute('#mx-simulate-results canvas', 'aria-label');
    check(label.startsWith('Cost per 1,000 inferences in US$ by configuration: ' + ch.labels[0]), 'the chart has a text equivalent for screen readers');
    await audit(page, 'optimizer results');
    await page.screenshot({ path: path.join(artifacts, 'matrix-optimizer.png'), fullPage: true });

    // ---- an error: the envelope's message, and what it details
    expectErrors = true;
    const noFp8 = gpus.find((h) => h.performance_metrics.fp8_tflops == null);
    if (noFp8) {
      await page.selectOption('#mx-simulate select[name=hardware]', noFp8.hardware_name);
      await page.selectOption('#mx-simulate select[name=precision]', 'FP8');
      const [, refused, status] = await simulate(page);
      check(status >= 400 && refused.status === 'error', `the server refuses FP8 on ${noFp8.hardware_name}: ${status} ${refused.error_code}`);
      const shown = await page.textContent('#mx-simulate-results [role=alert]');
      check(shown.includes(refused.message), 'the error shows the envelope\'s message: ' + shown);
      await page.selectOption('#mx-simulate select[name=precision]', '');
    }

    // ---- training
    await page.selectOption('#mx-simulate select[name=task_type]', 'Training');
    check(await page.isHidden('#mx-simulate input[name=batch_size]') && await page.isVisible('#mx-simulate input[name=sequence_length]'), 'training asks for training fields');
    await page.selectOption('#mx-simulate select[name=hardware]', gpu.hardware_name);
    await page.fill('#mx-simulate input[name=training_tokens]', '1000000000');
    const [sentT, train] = await simulate(page);
    check(sentT.task_type === 'Training' && sentT.training_tokens === 1e9 && sentT.batch_size === undefined, 'the training payload');
    const t = train.data.configurations[0];
    await checkFigure(page, 'time', t.performance_metrics.training_time_hours, num, t.uncertainty.training_time_hours, 'training time');
    await checkFigure(page, 'cost', t.cost_analysis.cost_per_run, usd, null, 'cost per run');
    await checkFigure(page, 'energy', t.cost_analysis.energy_kwh, num, null, 'energy per run');
    expectErrors = false;


    // ---- keyboard, dark mode, phone width
    await page.focus('[role=tab][aria-selected=true]');
    await page.keyboard.press('End');
    await page.waitForFunction(() => /#\/matrix\/\w+$/.test(location.hash) && document.activeElement.getAttribute('aria-selected') === 'true');
    const last = await page.evaluate(() => [document.activeElement.dataset.view, location.hash]);
    await page.keyboard.press('Home');
    await page.waitForFunction(() => location.hash === '#/matrix/optimizer' && document.activeElement.dataset.view === 'optimizer');
    check(last[1] === '#/matrix/' + last[0], `tabs move with the keyboard (End: ${last[0]}, Home: optimizer), each at its address`);
    await page.waitForSelector('#mx-simulate');
    await page.click('#theme');
    await audit(page, 'dark mode');
    await page.setViewportSize({ width: 375, height: 812 });
    await page.reload();
    await page.waitForSelector('#mx-simulate');
    await page.selectOption('#mx-simulate select[name=model_name]', model.model_name);
    await simulate(page);
    await page.waitForSelector('#mx-simulate-results .stats');
    check(await page.evaluate(() => document.documentElement.scrollWidth <= 375), 'nothing overflows at 375 px (the table scrolls in its own box)');
    await audit(page, '375 px, dark');
    await page.screenshot({ path: path.join(artifacts, 'matrix-optimizer-phone.png'), fullPage: true });
    await page.click('#theme');
    await page.setViewportSize({ width: 1280, height: 900 });

    // ---- cost management
    expectErrors = true; /* its error states are provoked */
    await costByRegionView(page, api);
    expectErrors = false;
    await page.click('[role=tab][data-view=optimizer]');

    // ---- the catalogues failing or empty (answers forged in the browser:
    // a real server that refuses its catalogue cannot be asked for)
    await page.route('**/api/model/get-model-data', (r) => r.fulfill({ status: 503, contentType: 'application/json',
      body: JSON.stringify({ status: 'error', error_code: 'CATALOGUE_UNAVAILABLE', message: 'catalogue is being reloaded' }) }));
    expectErrors = true;
    await page.reload();
    await page.waitForSelector('#mx-view [role=alert]');
    check((await page.textContent('#mx-view [role=alert]')).includes('catalogue is being reloaded'), 'a catalogue that cannot be read: the envelope\'s message');
    await page.route('**/api/model/get-model-data', (r) => r.fulfill({ status: 200, contentType: 'application/json',
      body: JSON.stringify({ status: 'success', data: [], metadata: { count: 0 } }) }));
    await page.reload();
    await page.waitForSelector('#mx-view .empty');
    check(/model catalogue is empty/.test(await page.textContent('#mx-view .empty')), 'an empty model catalogue says how to fill it');
    await page.unroute('**/api/model/get-model-data');
    expectErrors = false;
    check(errors.length === 0, 'no errors in the page: ' + JSON.stringify(errors));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.message); process.exit(1); });
