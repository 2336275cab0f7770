// matrix.test.js — the AI-workloads page (web/matrix.js) in Debian's
// Chromium, driven by playwright-core, audited by axe-core. Every figure
// checked is read from the server's own answer to the request the page
// made (never a number written here): the workload optimizer's pickers
// against the catalogues, the form's payload, each result figure and its
// uncertainty band, the chart comparing configurations (order, axis unit,
// tooltip), the table and the excluded configurations; recommendations
// (the ranked table, the best's figures, the chart in rank order, the
// excluded with their reasons, nothing meeting the requirements); the
// loading, empty and error states (the error envelope's message),
// training, the tabs and the address, the keyboard, dark mode and a 375 px
// phone. Then, with hosts, a VM and processes pushed as an agent would:
// the admin dashboard (aggregates, hosts, VMs, GPUs, power and utilisation
// over time, a sample arriving live, deployment advice from a machine's
// utilisation), the process monitor (top by CPU and power, the top five
// over time, a process's detail, a new process reaching the top live, VMs)
// and cost management (by process and period with the idle remainder, the
// period in parts; by region, the rankings by cost and carbon).
// Run by tests/e2e/test_console_matrix.py, which starts grove and passes:
//   GROVE_URL GROVE_EMAIL GROVE_PASSWORD GROVE_WRITE_KEY ARTIFACTS CHROMIUM
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

// ---- monitoring: samples pushed as an agent would (a write key), then
// read back by the test from the same routes the page reads
async function push(samples) {
  const r = await fetch(url + '/api/monitoring/push-metrics', { method: 'POST',
    headers: { 'X-API-Key': process.env.GROVE_WRITE_KEY, 'Content-Type': 'application/json' }, body: JSON.stringify(samples) });
  if (r.status !== 200) throw new Error('push refused: ' + (await r.text()));
}
const FLEET = [['gpu-a', 40], ['gpu-b', 70]];
function sample(host, t, base, i, extra = {}) {
  return Object.assign({ timestamp: t, source_type: 'host', hostname: host, instance_type: 'p4d.24xlarge',
    metrics: { cpu_usage: base + i, memory_usage: 50 + i, gpu_utilization: 30 + 2 * i, power_consumption: 300 + 5 * i + base,
      gpus: host === 'gpu-a' ? [{ index: 0, name: 'NVIDIA A100-SXM4-40GB', utilization_percent: 30 + 2 * i, power_watts: 200 + i,
        memory_used_bytes: 1e10, memory_total_bytes: 4e10, temperature_celsius: 61 }] : [],
      processes: ['python', 'trainer', 'nginx'].map((name, j) => ({ pid: 100 + j, process_name: name, user: 'svc-' + name,
        command: `/usr/bin/${name} --serve`, cpu_usage_percent: 10 * j + i + base / 10, memory_usage_mb: 1000 * (j + 1) + i,
        gpu_utilization_percent: 20 * j, power_consumption_watts: 50 + 10 * j + i })) } }, extra);
}
async function seedFleet() {
  const now = Math.floor(Date.now() / 1000), out = [];
  for (let i = 0; i < 10; i++) {
    const t = now - 540 + 60 * i;
    for (const [h, base] of FLEET) out.push(sample(h, t, base, i));
    out.push({ timestamp: t, source_type: 'vm', hostname: 'gpu-a', vm_name: 'vm-1',
      metrics: { cpu_usage: 20 + i, memory_usage: 30, power_consumption: 80 + i,
        processes: [{ pid: 7, process_name: 'postgres', user: 'postgres', cpu_usage_percent: 5 + i, memory_usage_mb: 500 }] } });
  }
  await push(out);
}
// a chart's points (non-null) as [ms, value] and the server's as the same
const chartPoints = (page, sel, i) => page.evaluate(([s, k]) => Chart.getChart(document.querySelector(s)).data.datasets[k].data
  .filter((p) => p.y != null).map((p) => [p.x, p.y]), [sel, i]);
const serverPoints = (pts) => pts.filter((p) => p[1] != null).map((p) => [p[0] / 1e6, p[1]]);

async function dashboardView(page, api) {
  await seedFleet();
  await page.click('[role=tab][data-view=dashboard]');
  await page.waitForSelector('#mx-overview .stat');
  check(await page.evaluate(() => location.hash) === '#/matrix/dashboard', 'the dashboard has its address');
  const o = await api('/api/dashboard/overview');
  const tile = (k) => page.$eval(`#mx-overview [data-figure="${k}"] dd`, (d) => [d.dataset.value, d.textContent]);
  check(JSON.stringify(await tile('hosts')) === JSON.stringify([String(o.hosts.reporting), `${num(o.hosts.reporting)} of ${num(o.hosts.total)}`]) &&
    JSON.stringify(await tile('power')) === JSON.stringify([String(o.power.total_watts_now), `${num(o.power.total_watts_now)} W`]) &&
    JSON.stringify(await tile('gpus')) === JSON.stringify([String(o.gpus.count), num(o.gpus.count)]) &&
    JSON.stringify(await tile('processes')) === JSON.stringify([String(o.processes.live), num(o.processes.live)]) &&
    (await tile('cpu'))[1] === `${num(o.mean_cpu_usage_percent)} %`,
  `the tiles are the server's aggregates: ${o.hosts.reporting} hosts, ${o.power.total_watts_now} W, ${o.gpus.count} GPUs, ${o.processes.live} processes`);
  const hosts = await api('/api/host-process-metrics/hosts');
  const rows = await page.$$eval('table[data-kind=host] tbody tr', (trs) => trs.map((tr) => [tr.dataset.id,
    tr.querySelector('[data-key=cpu]').dataset.value, tr.querySelector('[data-key=cpu]').textContent, tr.querySelector('[data-key=power]').textContent]));
  check(JSON.stringify(rows) === JSON.stringify(hosts.map((h) => [h.host_name, String(h.total_cpu_usage), `${num(h.total_cpu_usage)} %`, `${num(h.total_power_consumption)} W`])),
    'the hosts table is the server\'s hosts with their CPU and power: ' + rows.map((r) => r.join(' ')).join('; '));
  const vms = await api('/api/v1/metrics/vm-snapshot');
  check(JSON.stringify(await page.$$eval('table[data-kind=vm] tbody tr', (trs) => trs.map((tr) => tr.dataset.id))) === JSON.stringify(vms.map((v) => v.vm_name)),
    'the VMs table is the server\'s snapshot');
  const gpus = [...hosts, ...vms].reduce((n, h) => n + (h.gpus || []).length, 0);
  check((await page.$$('table.gpus tbody tr[data-gpu]')).length === gpus, `the GPUs table has the ${gpus} GPUs reported`);
  // power over time: one line per machine, the server's points
  const power = '#mx-view .time-chart canvas';
  await page.waitForFunction((s) => { const c = document.querySelector(s); return c && c.dataset.points; }, power);
  const labels = await page.evaluate((s) => Chart.getChart(document.querySelector(s)).data.datasets.filter((d) => !d.dots).map((d) => d.label), power);
  const to = Date.now() * 1e6, from = to - 3600e9;
  const pa = await api(`/api/host-process-metrics/range?host=gpu-a&metric=total_power_consumption&from=${from}&to=${to}&step=1m&agg=mean`);
  check(JSON.stringify(await chartPoints(page, power, labels.indexOf('gpu-a'))) === JSON.stringify(serverPoints(pa.points)) && pa.points.length >= 5,
    `the power chart draws the server's ${pa.points.length} one-minute means for gpu-a`);
  const axes = await page.evaluate((s) => { const c = Chart.getChart(document.querySelector(s)); return [c.options.scales.x.title.text, c.options.scales.y.title.text, c.options.plugins.legend.display]; }, power);
  check(axes[0].startsWith('Time (') && axes[1] === 'Power, W' && axes[2] === true, 'its axes say time (with the zone) and W, with a legend: ' + axes.join(' | '));
  await page.$eval(power, (c) => c.scrollIntoView({ block: 'center' }));
  const pt = await page.evaluate((s) => { const cv = document.querySelector(s), r = cv.getBoundingClientRect(), c = Chart.getChart(cv);
    const d = c.getDatasetMeta(0).data.filter((e) => !e.skip); const e = d[d.length - 1]; return { x: r.left + e.x, y: r.top + e.y }; }, power);
  await page.mouse.move(pt.x, pt.y);
  await page.waitForFunction((s) => Chart.getChart(document.querySelector(s)).tooltip.getActiveElements().length > 0, power);
  const tip = await page.evaluate((s) => Chart.getChart(document.querySelector(s)).tooltip.body.map((b) => b.lines.join(' ')).join(' | '), power);
  check(/ W\b/.test(tip), 'hovering tells the value in W: ' + tip);
  await audit(page, 'dashboard');
  await page.screenshot({ path: path.join(artifacts, 'matrix-dashboard.png'), fullPage: true });
  // live: a new sample from gpu-a reaches its row, then the aggregates
  await page.waitForSelector('#connection[data-state=online]');
  await push([sample('gpu-a', Math.floor(Date.now() / 1000), 40, 0, { metrics: { cpu_usage: 77.7, memory_usage: 51, power_consumption: 1234.5, processes: [] } })]);
  await page.waitForFunction(() => document.querySelector('table[data-kind=host] tr[data-id="gpu-a"] [data-key=cpu]').dataset.value === '77.7');
  check((await page.textContent('table[data-kind=host] tr[data-id="gpu-a"] [data-key=power]')) === `${num(1234.5)} W`, 'a pushed sample reaches its host\'s row live (77.7 %, 1,234.5 W)');
  const o2 = await api('/api/dashboard/overview');
  await page.waitForFunction((v) => document.querySelector('#mx-overview [data-figure=power] dd').dataset.value === v, String(o2.power.total_watts_now));
  check(true, `the total power follows live: ${o2.power.total_watts_now} W`);
  // deployment advice from the machine's latest utilisation
  await page.selectOption('#mx-advice select[name=machine]', 'host:gpu-b');
  await page.selectOption('#mx-advice select[name=machine]', 'host:gpu-a');
  const a = (await api('/api/host-process-metrics/hosts?host=gpu-a'))[0];
  const round = (v) => String(Math.round(v * 10) / 10);
  check(await page.inputValue('#mx-advice input[name=gpu_utilization]') === round(a.total_gpu_usage) &&
    await page.inputValue('#mx-advice input[name=cpu_utilization]') === round(a.total_cpu_usage) &&
    await page.inputValue('#mx-advice select[name=current_hardware_id]') === 'A100-SXM4-40GB',
  `the advice form takes gpu-a's latest utilisation (GPU ${a.total_gpu_usage} %, CPU ${a.total_cpu_usage} %) and its GPU (A100-SXM4-40GB)`);
  const [sentA, adv] = await submitForm(page, 'mx-advice', '/api/deployment/post-deployment-optimization');
  check(sentA.deployment_type === 'bare-metal' && sentA.gpu_count === 1 && sentA.current_hardware_id === 'A100-SXM4-40GB', 'it asks about bare metal with one GPU');
  check(await page.getAttribute('#mx-verdict', 'data-label') === adv.data.recommendation &&
    (await page.textContent('#mx-advice-results .reasons')).includes(adv.data.reasons[0]),
  `the advice is the server's: ${adv.data.recommendation}, because ${adv.data.reasons[0]}`);
  if (adv.data.expected.monthly_saving_usd != null)
    await checkFigure(page, 'monthly', adv.data.expected.monthly_saving_usd, usd, null, 'the monthly saving', '#mx-advice-results');
  await page.selectOption('#mx-advice select[name=machine]', 'vm:vm-1');
  const [sentV, advV] = await submitForm(page, 'mx-advice', '/api/deployment/post-deployment-optimization');
  check(sentV.deployment_type === 'vm' && sentV.instance_count === 1 && ['MAINTAIN', 'SCALE_IN', 'SCALE_OUT'].includes(advV.data.recommendation) &&
    await page.getAttribute('#mx-verdict', 'data-label') === advV.data.recommendation, `a VM gets the VM labels: ${advV.data.recommendation}`);
  await audit(page, 'deployment advice');
  // 375 px
  await page.setViewportSize({ width: 375, height: 812 });
  // charts follow the width on their next frame (Chart.js's ResizeObserver)
  check(await page.waitForFunction(() => document.documentElement.scrollWidth <= 375, null, { timeout: 5000 }).then(() => true, () => false), 'the dashboard fits 375 px');
  await page.setViewportSize({ width: 1280, height: 900 });
  // empty and failing (forged answers)
  await page.route('**/api/host-process-metrics/hosts', (r) => r.fulfill({ json: { status: 'success', data: [] } }));
  await page.route('**/api/vm-process-metrics/vms', (r) => r.fulfill({ json: { status: 'success', data: [] } }));
  await page.click('[role=tab][data-view=optimizer]');
  await page.click('[role=tab][data-view=dashboard]');
  await page.waitForSelector('#mx-view .empty');
  check(/No host or VM has reported yet/.test(await page.textContent('#mx-view .empty')), 'with no agent, the dashboard says how to add one');
  await page.unroute('**/api/host-process-metrics/hosts');
  await page.unroute('**/api/vm-process-metrics/vms');
  await page.route('**/api/dashboard/overview', (r) => r.fulfill({ status: 503, json: { status: 'error', error_code: 'STORE_UNAVAILABLE', message: 'the store is not answering' } }));
  await page.click('[role=tab][data-view=optimizer]');
  await page.click('[role=tab][data-view=dashboard]');
  await page.waitForSelector('#mx-view [role=alert]');
  check((await page.textContent('#mx-view [role=alert]')).includes('the store is not answering'), 'a failing read shows the envelope\'s message');
  await page.unroute('**/api/dashboard/overview');
}

async function processView(page, api) {
  await page.click('[role=tab][data-view=processes]');
  await page.waitForSelector('table.top tbody tr');
  const key = (p) => `${p.host_name || p.vm_name}:${p.process_name}:${p.pid}`;
  const rowsOf = () => page.$$eval('table.top tbody tr', (trs) => trs.map((tr) => tr.dataset.process));
  let top = await api('/api/host-process-metrics/top?by=cpu&limit=10');
  check(JSON.stringify(await rowsOf()) === JSON.stringify(top.map(key)), `the top processes by CPU are the server's: ${top.slice(0, 3).map(key).join(', ')}…`);
  const cpu = await page.$eval('table.top tbody tr:first-child [data-key=cpu]', (td) => [td.dataset.value, td.textContent]);
  check(cpu[0] === String(top[0].cpu_usage_percent) && cpu[1] === `${num(top[0].cpu_usage_percent)} %`, `its CPU is the server's: ${cpu[1]}`);
  await Promise.all([page.waitForResponse((r) => r.url().includes('/top?by=power')), page.selectOption('select[name=by]', 'power')]);
  top = await api('/api/host-process-metrics/top?by=power&limit=10');
  await page.waitForFunction((k) => document.querySelector('table.top tbody tr').dataset.process === k, key(top[0]));
  check(JSON.stringify(await rowsOf()) === JSON.stringify(top.map(key)), 'by power: the server\'s order');
  // the five over time
  const tc = '#mx-view > .time-chart canvas';
  await page.waitForFunction((s) => { const c = document.querySelector(s); return c && Chart.getChart(c) && Chart.getChart(c).data.datasets.length; }, tc);
  const to = Date.now() * 1e6, from = to - 3600e9, p0 = top[0];
  const r0 = await api(`/api/host-process-metrics/range?host=${p0.host_name}&process=${p0.process_name}&pid=${p0.pid}&metric=power_consumption_watts&from=${from}&to=${to}&step=1m&agg=mean`);
  await page.waitForFunction(([s, label]) => Chart.getChart(document.querySelector(s)).data.datasets[0].label === label, [tc, `${p0.process_name} (${p0.pid}, ${p0.host_name})`]);
  check(JSON.stringify(await chartPoints(page, tc, 0)) === JSON.stringify(serverPoints(r0.points)) &&
    (await page.evaluate((s) => Chart.getChart(document.querySelector(s)).options.scales.y.title.text, tc)) === 'Power, W',
  `the chart draws the first process's power, the server's ${r0.points.length} means, in W`);
  // one process
  await page.click('table.top tbody tr:first-child th button');
  await page.waitForSelector('#mx-process:not([hidden]) .stats');
  check(await page.evaluate(() => document.activeElement.id === 'mx-process-title'), 'the detail takes focus');
  const facts = await page.textContent('#mx-process .facts');
  check((p0.command == null || facts.includes(p0.command)) && facts.includes(p0.user) && facts.includes(String(p0.pid)),
    `the detail says its pid, command and user: ${p0.pid}, ${p0.command}, ${p0.user}`);
  const pw = await page.$eval('#mx-process [data-figure=power] dd', (d) => d.dataset.value);
  check(pw === String(p0.power_consumption_watts), 'its power is the server\'s');
  const dc = '#mx-process .time-chart canvas';
  await page.waitForFunction((s) => { const c = document.querySelector(s); return c && c.dataset.points; }, dc);
  const cpuS = await api(`/api/host-process-metrics/range?host=${p0.host_name}&process=${p0.process_name}&pid=${p0.pid}&metric=cpu_usage_percent&from=${from}&to=${to}&step=1m&agg=mean`);
  check(JSON.stringify(await chartPoints(page, dc, 0)) === JSON.stringify(serverPoints(cpuS.points)), 'its CPU chart is the server\'s series');
  await audit(page, 'process monitor');
  await page.screenshot({ path: path.join(artifacts, 'matrix-processes.png'), fullPage: true });
  // live: a process that now draws the most power goes to the top
  const hot = sample('gpu-b', Math.floor(Date.now() / 1000), 70, 9);
  hot.metrics.processes.push({ pid: 999, process_name: 'hot-job', user: 'ml', cpu_usage_percent: 5, memory_usage_mb: 10, power_consumption_watts: 999 });
  await push([hot]);
  await page.waitForFunction(() => document.querySelector('table.top tbody tr').dataset.process === 'gpu-b:hot-job:999');
  check(true, 'a process pushed with the most power reaches the top live');
  // VMs
  await Promise.all([page.waitForResponse((r) => r.url().includes('/api/vm-process-metrics/top')), page.selectOption('select[name=kind]', 'vm')]);
  const vtop = await api('/api/vm-process-metrics/top?by=power&limit=10');
  await page.waitForFunction((k) => { const tr = document.querySelector('table.top tbody tr'); return tr && tr.dataset.process === k; }, key(vtop[0]));
  check(JSON.stringify(await rowsOf()) === JSON.stringify(vtop.map(key)), 'VM processes: the server\'s');
  await page.setViewportSize({ width: 375, height: 812 });
  // charts follow the width on their next frame (Chart.js's ResizeObserver)
  check(await page.waitForFunction(() => document.documentElement.scrollWidth <= 375, null, { timeout: 5000 }).then(() => true, () => false), 'the process monitor fits 375 px');
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.route('**/api/vm-process-metrics/top**', (r) => r.fulfill({ status: 503, json: { status: 'error', error_code: 'BUSY', message: 'too busy, retry' } }));
  await page.selectOption('select[name=limit]', '20');
  await page.waitForSelector('#mx-view [role=alert]');
  check((await page.textContent('#mx-view [role=alert]')).includes('too busy, retry'), 'a failing read shows the envelope\'s message');
  await page.unroute('**/api/vm-process-metrics/top**');
}

async function recommendView(page, model, configs) {
  // ---- recommend: requirements in, a ranked table and the excluded
  // configurations with the server's reasons out. The latency asked for
  // is the median of the simulation above, so some configurations meet
  // it and some do not.
  const R = '#mx-recommend-results';
  check(/Give the requirements/.test(await page.textContent(R)), 'before a recommendation its results say what to do (empty state)');
  const latencies = configs.map((x) => x.performance_metrics.latency_ms).sort((a, b) => a - b);
  const median = Math.round(latencies[Math.floor(latencies.length / 2)]);
  await page.selectOption('#mx-recommend select[name=model_name]', model.model_name);
  await page.fill('#mx-recommend input[name=max_latency_ms]', String(median));
  const [sentR, rec] = await submitForm(page, 'mx-recommend', '/api/model/recommend-hardware');
  check(sentR.model_name === model.model_name && sentR.performance_requirements.max_latency_ms === median && sentR.hardware === undefined &&
    sentR.gpu_count === undefined && sentR.rank_by === undefined, 'the recommend form sends the requirements, no hardware: ' + JSON.stringify(sentR));
  const recs = rec.data.recommendations, excl = rec.data.excluded;
  check(rec.status === 'success' && recs.length > 0 && excl.length > 0, `the server recommends ${recs.length} and excludes ${excl.length}`);
  const summary = await page.textContent(R + ' .summary');
  check(summary.startsWith(`${num(rec.data.recommended)} of ${num(rec.data.considered)} configurations meet latency at most ${num(median)} ms`) &&
    summary.includes('ranked by cost'), 'the summary is the server\'s count and the requirement: ' + summary);
  const ranked = await page.$$eval(R + ' table.ranked tbody tr', (trs) => trs.map((tr) => [tr.dataset.config, tr.dataset.rank]));
  check(JSON.stringify(ranked) === JSON.stringify(recs.map((x) => [`${x.hardware} × ${x.gpu_count}`, String(x.rank)])),
    `the ranked table is the server's ranking, best first (${ranked[0][0]})`);
  const top = recs[0];
  const topRow = await page.$$eval(R + ' table.ranked tbody tr:first-child td', (tds) => tds.map((t) => t.textContent));
  check(topRow[3] === num(top.performance_metrics.latency_ms) && topRow[5] === usd(top.cost_analysis.cost_per_1000_inferences) &&
    topRow[6] === usd(top.monthly.cost_usd), `the best's latency, cost per 1,000 and per month are the server's: ${topRow[3]} ms, ${topRow[5]}, ${topRow[6]}`);
  check((await page.textContent('#mx-top')) === `1. ${top.hardware} × ${top.gpu_count}`, 'the best is named');
  await checkFigure(page, 'latency', top.performance_metrics.latency_ms, num, top.uncertainty.latency_ms, 'the best\'s latency', R);
  await checkFigure(page, 'cost', top.cost_analysis.cost_per_1000_inferences, usd, null, 'the best\'s cost per 1,000', R);
  await checkFigure(page, 'monthly-cost', top.monthly.cost_usd, usd, null, 'the best\'s cost per month', R);
  await checkFigure(page, 'carbon', top.cost_analysis.carbon_g_per_1000_inferences, num, null, 'the best\'s carbon per 1,000', R);
  const recChart = () => page.evaluate((r) => {
    const ch = Chart.getChart(document.querySelector(r + ' canvas'));
    return { labels: ch.data.labels, values: ch.data.datasets[0].data, unit: ch.options.scales.x.title.text };
  }, R);
  await page.waitForFunction((r) => { const cv = document.querySelector(r + ' canvas'); return cv && Chart.getChart(cv); }, R);
  let rc = await recChart();
  check(JSON.stringify(rc.labels) === JSON.stringify(recs.slice(0, 20).map((x) => `${x.hardware} × ${x.gpu_count}`)) &&
    rc.values[0] === top.cost_analysis.cost_per_1000_inferences && rc.unit === 'US$', 'the chart shows the ranking by cost, in US$');
  const counts = {};
  for (const x of excl) for (const r of x.reasons) counts[r.code] = (counts[r.code] || 0) + 1;
  const exSummary = await page.textContent(R + ' .excluded summary');
  check(exSummary.startsWith(`Excluded: ${excl.length} configurations`) && (!counts.TOO_SLOW || exSummary.includes(`${counts.TOO_SLOW} too slow`)),
    'the excluded are counted by reason: ' + exSummary);
  await page.click(R + ' .excluded summary');
  const exRows = await page.$$eval(R + ' .excluded tbody tr', (trs) => trs.map((tr) => [tr.dataset.config, tr.querySelector('td').textContent]));
  check(exRows.length === excl.length && exRows[0][0] === `${excl[0].hardware} × ${excl[0].gpu_count}` &&
    excl[0].reasons.every((r) => exRows[0][1].includes(r.message)), `each excluded configuration with the server's reasons: ${exRows[0].join(': ')}`);
  await audit(page, 'recommendations');
  await page.screenshot({ path: path.join(artifacts, 'matrix-recommend.png'), fullPage: true });
  // ranked by latency: the chart follows
  await page.selectOption('#mx-recommend select[name=rank_by]', 'latency');
  const [sentL, byLat] = await submitForm(page, 'mx-recommend', '/api/model/recommend-hardware');
  rc = await recChart();
  check(sentL.rank_by === 'latency' && rc.unit === 'ms' && rc.labels[0] === `${byLat.data.recommendations[0].hardware} × ${byLat.data.recommendations[0].gpu_count}` &&
    rc.values[0] === byLat.data.recommendations[0].performance_metrics.latency_ms, `ranked by latency, the chart's first is the server's (${rc.labels[0]}), in ms`);
  // a requirement nothing meets
  await page.fill('#mx-recommend input[name=max_latency_ms]', '0.001');
  const [, none] = await submitForm(page, 'mx-recommend', '/api/model/recommend-hardware');
  check(none.data.recommendations.length === 0 && /No configuration meets every requirement/.test(await page.textContent(R + ' .empty')) &&
    await page.getAttribute(R + ' .excluded', 'open') !== null, 'nothing meets the requirement: it says so, the reasons open');
  // an input the server refuses: its envelope's message
  expectErrors = true;
  await page.fill('#mx-recommend input[name=batch_size]', '-1');
  const [, bad, badStatus] = await submitForm(page, 'mx-recommend', '/api/model/recommend-hardware');
  check(badStatus === 400 && (await page.textContent(R + ' [role=alert]')).includes(bad.message), 'a refused request shows the envelope\'s message: ' + bad.message);
  expectErrors = false;
}

async function costByProcessView(page, api, post) {
  await page.click('[role=tab][data-view=costs]');
  await page.waitForSelector('#mx-costs');
  check(/Choose a host or VM/.test(await page.textContent('#mx-costs-results')), 'before a query the cost results say what to do (empty state)');
  const machines = await page.$$eval('#mx-costs select[name=machine] option', (os) => os.map((o) => o.value));
  const hosts = await api('/api/host-process-metrics/hosts');
  check(hosts.every((h) => machines.includes('host:' + h.host_name)), 'the host picker lists the reporting hosts');
  await page.selectOption('#mx-costs select[name=machine]', 'host:gpu-a');
  check(await page.inputValue('#mx-costs select[name=instance_type]') === 'p4d.24xlarge', 'the instance type is prefilled from what the agent reported');
  await page.selectOption('#mx-costs select[name=period]', '1h');
  const [sent, answer] = await submitForm(page, 'mx-costs', '/api/costs/process-summary');
  check(sent.host === 'gpu-a' && sent.instance_type === 'p4d.24xlarge' && Date.parse(sent.to) - Date.parse(sent.from) === 3600e3,
    'the form asks for gpu-a over the last hour on its instance: ' + JSON.stringify(sent));
  const d = answer.data, t = d.totals;
  await checkFigure(page, 'cost', t.cost.total, usd, null, 'the period\'s cost', '#mx-costs-results');
  await checkFigure(page, 'allocated', t.allocated_cost, usd, null, 'allocated to processes', '#mx-costs-results');
  await checkFigure(page, 'idle', t.idle_cost, usd, null, 'idle', '#mx-costs-results');
  await checkFigure(page, 'energy', t.energy_kwh, num, null, 'energy', '#mx-costs-results');
  await checkFigure(page, 'carbon', t.carbon_gco2e, num, null, 'carbon', '#mx-costs-results');
  const rows = await page.$$eval('#mx-costs-results table.costs tbody tr', (trs) => trs.map((tr) => [tr.dataset.process, tr.querySelector('[data-key=total]').dataset.value]));
  check(JSON.stringify(rows) === JSON.stringify([...d.processes.map((p) => [`${p.process_name}:${p.pid}`, String(p.cost.total)]), ['idle', String(d.idle.cost.total)]]),
    `each process's cost is the server's, most costly first, then idle: ${rows.map((r) => r[0]).join(', ')}`);
  const bars = '#mx-costs-results .chart-box canvas';
  await page.waitForFunction((s) => { const c = document.querySelector(s); return c && Chart.getChart(c); }, bars);
  const ch = await page.evaluate((s) => { const c = Chart.getChart(document.querySelector(s)); return { labels: c.data.labels, sets: c.data.datasets.map((x) => [x.label, x.data[0]]), stacked: c.options.scales.x.stacked }; }, bars);
  check(ch.stacked && ch.labels[0] === `${d.processes[0].process_name} (${d.processes[0].pid})` && ch.labels[ch.labels.length - 1] === 'Idle (unallocated)' &&
    ch.sets.find((x) => x[0] === 'GPU')[1] === d.processes[0].cost.gpu, 'the chart stacks each process\'s CPU, GPU, memory and electricity cost, idle last');
  // over the period: the answer's timeline, one step per ten minutes
  await page.selectOption('#mx-costs select[name=period]', '1h');
  const [sentT, withSteps] = await submitForm(page, 'mx-costs', '/api/costs/process-summary');
  const tc = '#mx-costs-results .time-chart canvas';
  await page.waitForFunction((s) => { const c = document.querySelector(s); return c && c.dataset.points; }, tc);
  const steps = new Map(withSteps.data.timeline.filter((x) => x.host_hours).map((x) => [Date.parse(x.to), x.allocated_cost]));
  const pts = await chartPoints(page, tc, 0);
  check(sentT.step_s === 600 && pts.length === steps.size && pts.length >= 1 && pts.every(([x, y]) => steps.get(Math.round(x)) === y),
    `the period's chart draws the allocated cost of each ten-minute step with samples, as the server priced it: ${pts.map(([x, y]) => `${new Date(x).toISOString().slice(11, 16)} ${usd(y)}`).join(', ')}`);
  await audit(page, 'cost by process');
  // an error: a VM priced nowhere (no instance, no region)
  await page.selectOption('#mx-costs select[name=instance_type]', '');
  const [, refused, st] = await submitForm(page, 'mx-costs', '/api/costs/process-summary');
  check(st >= 400 && (await page.textContent('#mx-costs-results [role=alert]')).includes(refused.message), `priced nowhere: the envelope's message (${refused.message})`);

}

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
    const post = async (p, b) => (await fetch(url + p, { method: 'POST', headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
      body: JSON.stringify(b) })).json();
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


    // ---- recommend
    await recommendView(page, model, configs);

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

    // ---- the monitoring views
    expectErrors = true; /* their error states are provoked */
    await dashboardView(page, api);
    await processView(page, api);
    await costByProcessView(page, api, post);
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
