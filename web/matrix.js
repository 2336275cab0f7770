// matrix.js — the AI-workloads page (GreenMatrix, docs/matrix.md): views
// as tabs, each at its own address (#/matrix/<view>). The workload
// optimizer simulates a catalogue model on catalogue hardware
// (POST /api/model/simulate-performance) and compares the configurations
// on a chart (Chart.js, from Debian's libjs-chart.js, loaded through
// grove.chart as flow's charts are). Every view has a loading, an empty
// and an error state; errors show the server's envelope `message`.
'use strict';

(function () {
  const el = grove.el, text = grove.text, attr = grove.attr;
  const css = (n) => getComputedStyle(document.documentElement).getPropertyValue(n).trim();
  const COLORS = ['#0969da', '#bf3989', '#1b7c83', '#953800', '#8250df', '#57606a'];

  // ---- numbers as people read them: whole numbers from 100 up, one
  // decimal from 10, two from 1, three significant digits below 1
  // (tests/browser/matrix.test.js formats the server's figures the same way)
  function num(v) {
    if (v == null || !Number.isFinite(Number(v))) return '–';
    v = Number(v);
    const a = Math.abs(v);
    const o = a >= 100 ? { maximumFractionDigits: 0 } : a >= 10 ? { maximumFractionDigits: 1 }
      : a >= 1 ? { maximumFractionDigits: 2 } : { maximumSignificantDigits: 3 };
    return v.toLocaleString(undefined, o);
  }
  const usd = (v) => (v == null ? '–' : 'US$' + num(v));
  const pct = (v) => (v == null ? '–' : num(v * 100) + ' %');

  // A figure with its unit and, where the answer gives one, its
  // uncertainty band; data-value holds the server's number as it came.
  function figure(label, value, unit, band, opts = {}) {
    const shown = opts.format ? opts.format(value) : num(value);
    const dd = el('dd', { 'data-value': value ?? '' }, el('span', { class: 'figure' }, shown),
      unit ? ' ' + unit : '');
    if (band) dd.append(el('span', { class: 'band', 'data-low': band[0], 'data-high': band[1] },
      `likely ${opts.format ? opts.format(band[0]) : num(band[0])}–${opts.format ? opts.format(band[1]) : num(band[1])}`));
    return el('div', { class: 'stat', 'data-figure': opts.key || '' }, el('dt', {}, label), dd);
  }

  // The error envelope's message (and what it details) for a person.
  function errorNode(e, what) {
    const p = el('div', { class: 'error', role: 'alert' }, el('p', {}, `${what}: ${e.message}`));
    const d = e.details || {};
    if (Array.isArray(d.missing_fields) && d.missing_fields.length)
      p.append(el('p', {}, 'Missing: ' + d.missing_fields.join(', ') + '.'));
    if (Array.isArray(d.excluded) && d.excluded.length)
      p.append(el('ul', {}, ...d.excluded.map((x) => el('li', {}, `${x.hardware} × ${x.gpu_count}: ${x.reason}`))));
    return p;
  }

  function loading(what) {
    return el('p', { class: 'muted loading', role: 'status' }, what);
  }

  // A labelled control: <label>Text <input…></label>, with a hint tied to
  // it by aria-describedby.
  let ids = 0;
  function field(label, control, hint) {
    const l = el('label', {}, label, control);
    if (hint) {
      const id = 'mx-hint-' + (++ids);
      control.setAttribute('aria-describedby', id);
      l.append(el('small', { id, class: 'muted' }, hint));
    }
    return l;
  }
  function select(name, options, value) {
    const s = el('select', { name });
    for (const o of options) {
      const [v, t] = Array.isArray(o) ? o : [o, o];
      s.append(el('option', { value: v }, t));
    }
    if (value != null) s.value = value;
    return s;
  }
  const number = (name, attrs = {}) => el('input', Object.assign({ name, type: 'number', inputmode: 'decimal' }, attrs));

  // ---- the chart: one Chart.js chart per canvas, redrawn in place and
  // recoloured with the theme
  function barChart(canvas) {
    let chart = null, last = null;
    function options(o) {
      const fg = css('--fg'), grid = css('--line');
      return {
        indexAxis: 'y', animation: false, responsive: true, maintainAspectRatio: false,
        scales: {
          x: { beginAtZero: true, ticks: { color: fg, callback: (v) => num(v) }, grid: { color: grid },
            title: { display: true, text: o.unit, color: fg } },
          y: { ticks: { color: fg, autoSkip: false }, grid: { display: false } },
        },
        plugins: {
          legend: { display: true, labels: { color: fg } },
          tooltip: { callbacks: {
            label: (it) => {
              const r = it.raw;
              return Array.isArray(r) ? `${it.dataset.label}: ${num(r[0])}–${num(r[1])} ${o.unit}`
                : `${it.dataset.label}: ${num(r)} ${o.unit}`;
            },
          } },
        },
      };
    }
    return {
      set(o) {
        last = o;
        const data = { labels: o.labels, datasets: o.datasets };
        if (!chart) chart = new Chart(canvas, { type: 'bar', data, options: options(o) });
        else { chart.data = data; chart.options = options(o); chart.update('none'); }
      },
      recolour() { if (chart && last) this.set(last); },
      destroy() { if (chart) chart.destroy(); chart = null; },
    };
  }

  // ================================================================
  // Workload optimizer: simulate
  // ================================================================
  const PRECISIONS = ['FP32', 'FP16', 'BF16', 'FP8', 'INT8', 'INT4'];
  // what the chart can compare, per task: [key, label, unit, value(c), band(c)]
  const INFER_METRICS = [
    ['latency', 'End-to-end latency', 'ms', (c) => c.performance_metrics.latency_ms, (c) => c.uncertainty && c.uncertainty.latency_ms],
    ['ttft', 'Time to first token', 'ms', (c) => c.performance_metrics.time_to_first_token_ms, (c) => c.uncertainty && c.uncertainty.time_to_first_token_ms],
    ['qps', 'Throughput', 'requests/s', (c) => c.performance_metrics.throughput_qps, (c) => c.uncertainty && c.uncertainty.throughput_qps],
    ['cost', 'Cost per 1,000 inferences', 'US$', (c) => c.cost_analysis.cost_per_1000_inferences, () => null],
    ['energy', 'Energy per 1,000 inferences', 'kWh', (c) => c.cost_analysis.energy_kwh_per_1000_inferences, () => null],
  ];
  const TRAIN_METRICS = [
    ['time', 'Training time', 'hours', (c) => c.performance_metrics.training_time_hours, (c) => c.uncertainty && c.uncertainty.training_time_hours],
    ['cost', 'Cost per run', 'US$', (c) => c.cost_analysis.cost_per_run, () => null],
    ['energy', 'Energy per run', 'kWh', (c) => c.cost_analysis.energy_kwh, () => null],
    ['tokens', 'Tokens per second per GPU', 'tokens/s', (c) => c.performance_metrics.tokens_per_s_per_gpu, () => null],
  ];
  const LOWER_IS_BETTER = new Set(['latency', 'ttft', 'cost', 'energy', 'time']);
  const CHART_MAX = 20;
  const configName = (c) => `${c.hardware} × ${c.gpu_count}`;

  async function optimizer(root, ctx) {
    root.append(el('h2', {}, 'Simulate a workload'),
      el('p', { class: 'muted' }, 'An analytical model of inference (prefill and decode) and training on catalogue hardware, ' +
        'with efficiency factors fitted on published measurements (docs/matrix.md). Leave a field empty for its default.'));
    const status = loading('Loading the model and hardware catalogues…');
    root.append(status);
    let models, hardware, regions;
    try {
      [models, hardware, regions] = await Promise.all([grove.api('/api/model/get-model-data'),
        grove.api('/api/hardware-specs'), grove.api('/api/cost-models/regions')]);
    } catch (e) {
      status.replaceWith(errorNode(e, 'Cannot load the catalogues'));
      return;
    }
    const gpus = hardware.filter((h) => h.kind === 'gpu');
    if (!models.length || !gpus.length) {
      status.replaceWith(el('p', { class: 'empty' }, !models.length
        ? 'The model catalogue is empty: an administrator adds models with PUT /api/v1/matrix/catalogue/models/{name}.'
        : 'The hardware catalogue has no GPU: an administrator adds one with PUT /api/v1/matrix/catalogue/hardware/{name}.'));
      return;
    }
    status.remove();

    // ---- the form
    const task = select('task_type', [['Inference', 'Inference'], ['Training', 'Training']]);
    const model = select('model_name', models.map((m) => [m.model_name,
      `${m.model_name} (${num((m.total_parameters_millions || 0) / 1000)} B, ${m.architecture_type})`]));
    const hw = select('hardware', [['', 'Every catalogue GPU (1, 2, 4, 8)'], ...gpus.map((h) =>
      [h.hardware_name, `${h.hardware_name} (${num(h.specifications.memory_gb)} GB, ${h.vendor})`])]);
    const count = number('gpu_count', { min: 1, max: 1024, step: 1, placeholder: 'smallest that fits' });
    const precision = select('precision', [['', 'Default (FP16; BF16 for training)'], ...PRECISIONS]);
    const batch = number('batch_size', { min: 0, step: 1, placeholder: '1' });
    const input = number('input_length', { min: 1, step: 1, placeholder: '512' });
    const output = number('output_length', { min: 0, step: 1, placeholder: '128' });
    const inferSet = el('fieldset', {}, el('legend', {}, 'Inference'),
      field('Batch size', batch, '0: the largest batch memory holds'),
      field('Input length (tokens)', input), field('Output length (tokens)', output));
    const tokens = number('training_tokens', { min: 1, step: 1, placeholder: '20 × parameters' });
    const seq = number('sequence_length', { min: 1, step: 1, placeholder: '2048' });
    const gbatch = number('global_batch_size', { min: 1, step: 1, placeholder: '1024' });
    const mbatch = number('micro_batch_size', { min: 1, step: 1, placeholder: '1' });
    const zero = select('zero_stage', [['', 'Default (3)'], '0', '1', '2', '3']);
    const recompute = select('recompute', [['', 'Default (none)'], 'none', 'selective', 'full']);
    const trainSet = el('fieldset', { hidden: true }, el('legend', {}, 'Training'),
      field('Training tokens', tokens), field('Sequence length (tokens)', seq),
      field('Global batch (sequences per step)', gbatch), field('Micro-batch per GPU', mbatch),
      field('ZeRO stage', zero), field('Activation recomputation', recompute));
    const tp = number('tensor_parallel', { min: 1, step: 1, placeholder: '1' });
    const pp = number('pipeline_parallel', { min: 1, step: 1, placeholder: '1' });
    const region = select('region', [['', 'Cheapest catalogued instance'], ...regions.map((r) =>
      [`${r.provider}/${r.region}`, `${r.provider} ${r.region} (${r.location})`])]);
    const advanced = el('details', { class: 'advanced' }, el('summary', {}, 'Advanced: parallelism and region'),
      el('div', { class: 'form-grid' }, field('Tensor parallel (GPUs)', tp), field('Pipeline parallel (stages)', pp),
        field('Region', region, 'prices, electricity, carbon intensity and PUE')));
    const maxLatency = number('max_latency_ms', { min: 0, step: 'any' });
    const minQps = number('min_throughput_qps', { min: 0, step: 'any' });
    const budget = number('budget_limit', { min: 0, step: 'any' });
    const budgetHint = el('span', {}, 'US$ per month (730 h)');
    const reqSet = el('fieldset', {}, el('legend', {}, 'Requirements (optional)'),
      field('Maximum latency (ms)', maxLatency), field('Minimum throughput (requests/s)', minQps),
      field('Budget (US$)', budget), el('small', { class: 'muted' }, 'Budget: ', budgetHint));
    const submit = el('button', { type: 'submit', class: 'primary' }, 'Simulate');
    const form = el('form', { class: 'mx-form', 'aria-label': 'Simulate a workload', novalidate: true },
      el('div', { class: 'form-grid' }, field('Task', task), field('Model', model), field('Hardware', hw),
        field('GPUs', count, 'empty: the smallest of 1, 2, 4, 8 that fits'), field('Precision', precision)),
      inferSet, trainSet, reqSet, advanced, el('div', { class: 'controls' }, submit));
    const results = el('section', { class: 'results', 'aria-label': 'Simulation results', 'aria-live': 'polite' },
      el('p', { class: 'muted empty' }, 'Choose a model and press Simulate: the results and a chart comparing configurations appear here.'));
    root.append(form, results);

    task.addEventListener('change', () => {
      const training = task.value === 'Training';
      inferSet.hidden = training;
      trainSet.hidden = !training;
      text(budgetHint, training ? 'US$ per training run' : 'US$ per month (730 h)');
      attr(maxLatency, 'disabled', training);
      attr(minQps, 'disabled', training);
    });

    function payload() {
      const p = { task_type: task.value, model_name: model.value };
      const put = (k, input) => { if (input.value !== '') p[k] = Number(input.value); };
      if (hw.value) p.hardware = hw.value;
      put('gpu_count', count);
      if (precision.value) p.precision = precision.value;
      if (task.value === 'Inference') { put('batch_size', batch); put('input_length', input); put('output_length', output); } else {
        put('training_tokens', tokens); put('sequence_length', seq); put('global_batch_size', gbatch); put('micro_batch_size', mbatch);
        put('zero_stage', zero);
        if (recompute.value) p.recompute = recompute.value;
      }
      put('tensor_parallel', tp);
      put('pipeline_parallel', pp);
      if (region.value) [p.provider, p.region] = region.value.split('/');
      const req = {};
      if (task.value === 'Inference') {
        if (maxLatency.value !== '') req.max_latency_ms = Number(maxLatency.value);
        if (minQps.value !== '') req.min_throughput_qps = Number(minQps.value);
      }
      if (budget.value !== '') req.budget_limit = Number(budget.value);
      if (Object.keys(req).length) p.performance_requirements = req;
      return p;
    }

    let asked = 0;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const mine = ++asked;
      submit.disabled = true;
      attr(results, 'aria-busy', 'true');
      results.replaceChildren(loading('Simulating…'));
      try {
        const body = await grove.api('/api/model/simulate-performance', { method: 'POST', body: JSON.stringify(payload()), whole: true });
        if (mine !== asked) return;
        showResults(body.data, body.metadata || {});
        grove.announce(`Simulated ${body.data.configurations.length} configuration${body.data.configurations.length === 1 ? '' : 's'}.`);
      } catch (err) {
        if (mine === asked && err.message !== 'signed out') results.replaceChildren(errorNode(err, 'Cannot simulate'));
      } finally {
        if (mine === asked) { submit.disabled = false; attr(results, 'aria-busy', null); }
      }
    });

    // ---- the answer
    let chart = null;
    function showResults(d, meta) {
      if (chart) { chart.destroy(); chart = null; }
      const training = d.task_type === 'Training';
      const configs = d.configurations || [];
      if (!configs.length) {
        results.replaceChildren(el('p', { class: 'empty' }, 'No configuration could be simulated.'), excludedList(d.excluded));
        return;
      }
      // the summary is the first recommendation's (cheapest that meets the
      // requirements), else the first configuration's: as the server chose
      const rec = (d.recommendations || [])[0];
      const best = (rec && configs.find((c) => c.hardware === rec.hardware && c.gpu_count === rec.gpu_count)) || configs[0];
      const pm = best.performance_metrics, mem = best.memory, cost = best.cost_analysis, u = best.uncertainty || {};
      const heading = el('h3', { id: 'mx-best' }, `${rec ? 'Cheapest that meets the requirements' : 'First configuration'}: ${configName(best)}`);
      const sub = el('p', { class: 'muted' }, `${d.model.model_name}, ${(d.workload && d.workload.precision) || ''}` +
        (training ? '' : `, batch ${best.batch_size}, ${d.workload.input_length} tokens in, ${d.workload.output_length} out`) +
        ` · ${cost.provider} ${cost.region} ${cost.instance || ''} at ${usd(cost.cost_per_hour)}/h (${cost.basis})`);
      const fits = el('div', { class: 'stat', 'data-figure': 'fits' }, el('dt', {}, 'Fits in memory'),
        el('dd', { class: mem.fits ? 'ok' : 'down' }, mem.fits ? 'yes' : 'no: needs more memory per GPU'));
      const stats = el('dl', { class: 'stats', 'aria-labelledby': 'mx-best' });
      if (!training) {
        stats.append(
          figure('Time to first token', pm.time_to_first_token_ms, 'ms', u.time_to_first_token_ms, { key: 'ttft' }),
          figure('Time per output token', pm.time_per_output_token_ms, 'ms', null, { key: 'tpot' }),
          figure('End-to-end latency', pm.latency_ms, 'ms', u.latency_ms, { key: 'latency' }),
          figure('Throughput', pm.throughput_tokens_per_s, 'tokens/s', null, { key: 'tokens' }),
          figure('Requests', pm.throughput_qps, 'per s', u.throughput_qps, { key: 'qps' }),
          figure('Memory per GPU', mem.per_gpu_gb, `GB of ${num(mem.available_per_gpu_gb)}`, null, { key: 'memory' }), fits,
          figure('Cost per 1,000 inferences', cost.cost_per_1000_inferences, '', null, { key: 'cost', format: usd }),
          figure('Energy per 1,000 inferences', cost.energy_kwh_per_1000_inferences, 'kWh', null, { key: 'energy' }),
          figure('Carbon per 1,000 inferences', cost.carbon_g_per_1000_inferences, 'g CO₂e', null, { key: 'carbon' }));
      } else {
        stats.append(
          figure('Training time', pm.training_time_hours, 'hours', u.training_time_hours, { key: 'time' }),
          figure('Tokens per second per GPU', pm.tokens_per_s_per_gpu, 'tokens/s', null, { key: 'tokens' }),
          figure('Model FLOPS utilisation', pm.mfu, '', null, { key: 'mfu', format: pct }),
          figure('Steps', pm.steps, '', null, { key: 'steps' }),
          figure('Memory per GPU', mem.per_gpu_gb, `GB of ${num(mem.available_per_gpu_gb)}`, null, { key: 'memory' }), fits,
          figure('Cost per run', cost.cost_per_run, '', null, { key: 'cost', format: usd }),
          figure('Energy per run', cost.energy_kwh, 'kWh', null, { key: 'energy' }),
          figure('Carbon per run', cost.carbon_kg, 'kg CO₂e', null, { key: 'carbon' }));
      }
      const sigma = u.sigma != null ? ` "Likely" is the band [x·e^−σ, x·e^σ], σ = ${num(u.sigma)}, from the calibration's held-out errors.` : '';
      const conf = el('p', { class: 'muted' }, `Model ${meta.model_version || ''}` +
        (meta.loo_mape_percent != null ? `, leave-one-out error ${num(meta.loo_mape_percent)} %.` : '.') + sigma);

      // the chart and the table compare every configuration
      const metrics = training ? TRAIN_METRICS : INFER_METRICS;
      const by = select('compare', metrics.map((m) => [m[0], `${m[1]} (${m[2]})`]));
      const canvas = el('canvas', { role: 'img' });
      const box = el('div', { class: 'chart-box' }, canvas);
      const chartNote = el('p', { class: 'muted' });
      const table = configTable(configs, training);
      results.replaceChildren(heading, sub, stats, conf,
        el('h3', {}, 'Configurations compared'),
        el('div', { class: 'controls' }, field('Compare by', by)), box, chartNote,
        el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Every configuration simulated' }, table),
        excludedList(d.excluded), assumptionsList(d.assumptions));
      async function draw() {
        const m = metrics.find((x) => x[0] === by.value);
        const rows = configs.filter((c) => c.memory.fits && m[3](c) != null)
          .sort((a, b) => (LOWER_IS_BETTER.has(m[0]) ? m[3](a) - m[3](b) : m[3](b) - m[3](a))).slice(0, CHART_MAX);
        const fitting = configs.filter((c) => c.memory.fits).length;
        text(chartNote, rows.length ? `${rows.length === fitting ? 'Every' : `The best ${rows.length} of ${fitting}`} configuration${fitting === 1 ? '' : 's'} that fit${fitting === 1 ? 's' : ''}, ` +
          `${LOWER_IS_BETTER.has(m[0]) ? 'lowest' : 'highest'} first.` : 'No configuration fits in memory: nothing to compare.');
        box.hidden = !rows.length;
        if (!rows.length) return;
        try { await grove.chart.load(); } catch (err) {
          text(chartNote, 'Charts are not available: this server has no Chart.js (libjs-chart.js). The table below has every figure.');
          box.hidden = true;
          return;
        }
        box.style.height = Math.max(160, 26 * rows.length + 80) + 'px'; // CSSOM: the CSP refuses style attributes
        const datasets = [{ label: m[1], data: rows.map((c) => m[3](c)), backgroundColor: COLORS[0], borderColor: COLORS[0] }];
        if (rows.some((c) => m[4](c)))
          datasets.push({ label: 'Likely range', data: rows.map((c) => m[4](c) || null), backgroundColor: COLORS[0] + '55', borderColor: COLORS[0] });
        if (!chart) chart = barChart(canvas);
        chart.set({ labels: rows.map(configName), datasets, unit: m[2] });
        canvas.dataset.labels = JSON.stringify(rows.map(configName));
        attr(canvas, 'aria-label', `${m[1]} in ${m[2]} by configuration: ` +
          rows.slice(0, 5).map((c) => `${configName(c)} ${num(m[3](c))}`).join(', ') + (rows.length > 5 ? ', …' : ''));
      }
      by.addEventListener('change', draw);
      draw();
    }
    ctx.onTheme = () => { if (chart) chart.recolour(); };
    ctx.leave = () => { if (chart) chart.destroy(); };

    function configTable(configs, training) {
      const head = training
        ? ['Hardware', 'GPUs', 'TP × PP × DP', 'Training time (h)', 'Tokens/s per GPU', 'MFU', 'Memory per GPU (GB)', 'Cost per run', 'Energy (kWh)', 'Requirements']
        : ['Hardware', 'GPUs', 'TP × PP', 'Batch', 'TTFT (ms)', 'TPOT (ms)', 'Latency (ms)', 'Requests/s', 'Memory per GPU (GB)', 'Cost per 1,000', 'Energy per 1,000 (kWh)', 'Requirements'];
      const tbody = el('tbody');
      for (const c of configs) {
        const pm = c.performance_metrics, ca = c.cost_analysis, m = c.memory;
        const memCell = el('td', { class: m.fits ? '' : 'down' }, `${num(m.per_gpu_gb)} of ${num(m.available_per_gpu_gb)}${m.fits ? '' : ' (does not fit)'}`);
        const req = el('td', { class: c.meets_requirements ? 'ok' : 'down' }, c.meets_requirements ? 'met' : (c.unmet || []).join('; ') || 'not met');
        const cells = training
          ? [`${c.tensor_parallel} × ${c.pipeline_parallel} × ${c.data_parallel}`, num(pm.training_time_hours), num(pm.tokens_per_s_per_gpu), pct(pm.mfu), memCell, usd(ca.cost_per_run), num(ca.energy_kwh), req]
          : [`${c.tensor_parallel} × ${c.pipeline_parallel}`, num(c.batch_size), num(pm.time_to_first_token_ms), num(pm.time_per_output_token_ms),
            num(pm.latency_ms), num(pm.throughput_qps), memCell, usd(ca.cost_per_1000_inferences), num(ca.energy_kwh_per_1000_inferences), req];
        tbody.append(el('tr', { 'data-config': configName(c) }, el('th', { scope: 'row' }, c.hardware), el('td', {}, num(c.gpu_count)),
          ...cells.map((x) => (x.nodeType ? x : el('td', {}, x)))));
      }
      return el('table', { class: 'configs' }, el('caption', { class: 'sr-only' }, 'Every configuration simulated'),
        el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { scope: 'col' }, h)))), tbody);
    }
  }

  function excludedList(excluded) {
    if (!excluded || !excluded.length) return null;
    return el('details', { class: 'excluded' }, el('summary', {}, `Excluded: ${excluded.length} configuration${excluded.length === 1 ? '' : 's'}, and why`),
      el('ul', {}, ...excluded.map((x) => el('li', {}, el('strong', {}, `${x.hardware} × ${x.gpu_count}`), ': ', x.reason))));
  }
  function assumptionsList(list) {
    if (!list || !list.length) return null;
    return el('details', { class: 'assumptions' }, el('summary', {}, 'Defaults this answer assumed'),
      el('ul', {}, ...list.map((a) => el('li', {}, a))));
  }

  // ================================================================
  // The page: a tab per view, the view at #/matrix/<view>
  // ================================================================
  const VIEWS = [
    { id: 'optimizer', title: 'Workload optimizer', show: optimizer },
  ];

  grove.pages.matrix = async function (root) {
    root.append(el('h1', { tabindex: '-1' }, 'AI workloads'));
    const tabs = el('div', { role: 'tablist', class: 'tabs', 'aria-label': 'Views' });
    root.append(tabs);
    const want = (location.hash.match(/^#\/matrix\/(\w+)/) || [])[1];
    let current = null;
    const buttons = VIEWS.map((v) => el('button', { type: 'button', role: 'tab', id: 'mx-tab-' + v.id,
      'aria-controls': 'mx-view', 'data-view': v.id, 'aria-selected': 'false', tabindex: '-1' }, v.title));
    tabs.append(...buttons);
    const panel = el('section', { role: 'tabpanel', id: 'mx-view', class: 'view' });
    root.append(panel);

    async function open(id, focus) {
      const v = VIEWS.find((x) => x.id === id) || VIEWS[0];
      if (current && current.leave) current.leave();
      grove.live.unsubscribeAll();
      for (const b of buttons) {
        const on = b.dataset.view === v.id;
        attr(b, 'aria-selected', String(on));
        attr(b, 'tabindex', on ? '0' : '-1');
        if (on && focus) b.focus();
      }
      attr(panel, 'aria-labelledby', 'mx-tab-' + v.id);
      panel.replaceChildren();
      // the address names the view (a reload comes back to it) without a
      // hashchange, which would rebuild the page
      const hash = '#/matrix/' + v.id;
      if (location.hash !== hash) history.replaceState(null, '', hash);
      current = { view: v.id };
      try { await v.show(panel, current); } catch (e) {
        if (e.message !== 'signed out') panel.append(errorNode(e, 'Cannot show ' + v.title.toLowerCase()));
      }
    }
    tabs.addEventListener('click', (e) => {
      const b = e.target.closest('[role=tab]');
      if (b) open(b.dataset.view, false);
    });
    // arrow keys move between tabs (WAI-ARIA tabs pattern, automatic activation)
    tabs.addEventListener('keydown', (e) => {
      const i = buttons.indexOf(document.activeElement);
      if (i < 0) return;
      const j = e.key === 'ArrowRight' ? (i + 1) % buttons.length : e.key === 'ArrowLeft' ? (i - 1 + buttons.length) % buttons.length
        : e.key === 'Home' ? 0 : e.key === 'End' ? buttons.length - 1 : -1;
      if (j < 0) return;
      e.preventDefault();
      open(buttons[j].dataset.view, true);
    });
    const onTheme = () => { if (current && current.onTheme) current.onTheme(); };
    document.addEventListener('grove-theme', onTheme);
    await open(want, false);
    return {
      leave() {
        document.removeEventListener('grove-theme', onTheme);
        if (current && current.leave) current.leave();
      },
    };
  };

  // for the views and the tests: the same formatting as the page
  grove.matrix = { num, usd };
})();
