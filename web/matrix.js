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
          x: { beginAtZero: true, stacked: !!o.stacked, ticks: { color: fg, callback: (v) => num(v) }, grid: { color: grid },
            title: { display: true, text: o.unit, color: fg } },
          y: { stacked: !!o.stacked, ticks: { color: fg, autoSkip: false }, grid: { display: false } },
        },
        plugins: {
          legend: { display: true, labels: { color: fg } },
          tooltip: { callbacks: {
            label: (it) => {
              const r = it.raw, f = (v) => (o.unit === 'US$' ? usd(v) : `${num(v)} ${o.unit}`);
              return Array.isArray(r) ? `${it.dataset.label}: ${f(r[0])}–${f(r[1])}` : `${it.dataset.label}: ${f(r)}`;
            },
          } },
        },
      };
    }
    return {
      canvas,
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
  // Workload optimizer: simulate, then recommend
  // ================================================================
  const PRECISIONS = ['FP32', 'FP16', 'BF16', 'FP8', 'INT8', 'INT4'];
  // measures a chart compares, per task: [key, label, unit, value(c), band(c)]
  const INFER_METRICS = [
    ['latency', 'End-to-end latency', 'ms', (c) => c.performance_metrics.latency_ms, (c) => c.uncertainty && c.uncertainty.latency_ms],
    ['ttft', 'Time to first token', 'ms', (c) => c.performance_metrics.time_to_first_token_ms, (c) => c.uncertainty && c.uncertainty.time_to_first_token_ms],
    ['throughput', 'Throughput', 'requests/s', (c) => c.performance_metrics.throughput_qps, (c) => c.uncertainty && c.uncertainty.throughput_qps],
    ['cost', 'Cost per 1,000 inferences', 'US$', (c) => c.cost_analysis.cost_per_1000_inferences, () => null],
    ['energy', 'Energy per 1,000 inferences', 'kWh', (c) => c.cost_analysis.energy_kwh_per_1000_inferences, () => null],
    ['carbon', 'Carbon per 1,000 inferences', 'g CO₂e', (c) => c.cost_analysis.carbon_g_per_1000_inferences, () => null],
  ];
  const TRAIN_METRICS = [
    ['latency', 'Training time', 'hours', (c) => c.performance_metrics.training_time_hours, (c) => c.uncertainty && c.uncertainty.training_time_hours],
    ['cost', 'Cost per run', 'US$', (c) => c.cost_analysis.cost_per_run, () => null],
    ['energy', 'Energy per run', 'kWh', (c) => c.cost_analysis.energy_kwh, () => null],
    ['carbon', 'Carbon per run', 'kg CO₂e', (c) => c.cost_analysis.carbon_kg, () => null],
    ['throughput', 'Tokens per second per GPU', 'tokens/s', (c) => c.performance_metrics.tokens_per_s_per_gpu, () => null],
  ];
  const LOWER_IS_BETTER = new Set(['latency', 'ttft', 'cost', 'energy', 'carbon']);
  const CHART_MAX = 20;
  const configName = (c) => `${c.hardware} × ${c.gpu_count}`;
  // recommend-hardware's exclusion codes in words (docs/matrix.md)
  const REASONS = { DOES_NOT_FIT: 'does not fit in memory', TOO_SLOW: 'too slow', TOO_LITTLE_THROUGHPUT: 'too little throughput',
    OVER_BUDGET: 'over budget', COST_UNKNOWN: 'no known price', NOT_SIMULABLE: 'cannot be simulated' };

  // The workload's fields, shared by the simulate and recommend forms:
  // kind 'simulate' adds hardware, GPU count and parallelism (which
  // recommend-hardware refuses), 'recommend' the measure to rank by.
  // Returns {form, submit, payload()}; an empty field is not sent, so the
  // server's documented default applies.
  function workloadForm(kind, cats) {
    const simulate = kind === 'simulate';
    const task = select('task_type', [['Inference', 'Inference'], ['Training', 'Training']]);
    const model = select('model_name', cats.models.map((m) => [m.model_name,
      `${m.model_name} (${num((m.total_parameters_millions || 0) / 1000)} B, ${m.architecture_type})`]));
    const precision = select('precision', [['', 'Default (FP16; BF16 for training)'], ...PRECISIONS]);
    const top = [field('Task', task), field('Model', model)];
    const hw = simulate && select('hardware', [['', 'Every catalogue GPU (1, 2, 4, 8)'], ...cats.gpus.map((h) =>
      [h.hardware_name, `${h.hardware_name} (${num(h.specifications.memory_gb)} GB, ${h.vendor})`])]);
    const count = simulate && number('gpu_count', { min: 1, max: 1024, step: 1, placeholder: 'smallest that fits' });
    if (simulate) top.push(field('Hardware', hw), field('GPUs', count, 'empty: the smallest of 1, 2, 4, 8 that fits'));
    top.push(field('Precision', precision));
    const rank = !simulate && select('rank_by', [['', 'Cost (default)'], ['latency', 'Latency (training time)'],
      ['throughput', 'Throughput'], ['energy', 'Energy'], ['carbon', 'Carbon']]);
    if (!simulate) top.push(field('Rank by', rank));
    const n = {
      batch_size: number('batch_size', { min: 0, step: 1, placeholder: '1' }),
      input_length: number('input_length', { min: 1, step: 1, placeholder: '512' }),
      output_length: number('output_length', { min: 0, step: 1, placeholder: '128' }),
      training_tokens: number('training_tokens', { min: 1, step: 1, placeholder: '20 × parameters' }),
      sequence_length: number('sequence_length', { min: 1, step: 1, placeholder: '2048' }),
      global_batch_size: number('global_batch_size', { min: 1, step: 1, placeholder: '1024' }),
      micro_batch_size: number('micro_batch_size', { min: 1, step: 1, placeholder: '1' }),
      zero_stage: select('zero_stage', [['', 'Default (3)'], '0', '1', '2', '3']),
      tensor_parallel: simulate && number('tensor_parallel', { min: 1, step: 1, placeholder: '1' }),
      pipeline_parallel: simulate && number('pipeline_parallel', { min: 1, step: 1, placeholder: '1' }),
      max_latency_ms: number('max_latency_ms', { min: 0, step: 'any' }),
      min_throughput_qps: number('min_throughput_qps', { min: 0, step: 'any' }),
      budget_limit: number('budget_limit', { min: 0, step: 'any' }),
    };
    const recompute = select('recompute', [['', 'Default (none)'], 'none', 'selective', 'full']);
    const inferSet = el('fieldset', {}, el('legend', {}, 'Inference'),
      field('Batch size', n.batch_size, '0: the largest batch memory holds'),
      field('Input length (tokens)', n.input_length), field('Output length (tokens)', n.output_length));
    const trainSet = el('fieldset', { hidden: true }, el('legend', {}, 'Training'),
      field('Training tokens', n.training_tokens), field('Sequence length (tokens)', n.sequence_length),
      field('Global batch (sequences per step)', n.global_batch_size), field('Micro-batch per GPU', n.micro_batch_size),
      field('ZeRO stage', n.zero_stage), field('Activation recomputation', recompute));
    const region = select('region', [['', simulate ? 'Cheapest catalogued instance' : 'Each GPU\'s cheapest catalogued instance'],
      ...cats.regions.map((r) => [`${r.provider}/${r.region}`, `${r.provider} ${r.region} (${r.location})`])]);
    const budgetHint = el('span', {}, 'US$ per month (730 h)');
    const reqSet = el('fieldset', {}, el('legend', {}, simulate ? 'Requirements (optional)' : 'Requirements'),
      field('Maximum latency (ms)', n.max_latency_ms), field('Minimum throughput (requests/s)', n.min_throughput_qps),
      field('Budget (US$)', n.budget_limit), el('small', { class: 'muted' }, 'Budget: ', budgetHint));
    const advanced = el('details', { class: 'advanced' }, el('summary', {}, simulate ? 'Advanced: parallelism and region' : 'Advanced: region'),
      el('div', { class: 'form-grid' }, simulate ? field('Tensor parallel (GPUs)', n.tensor_parallel) : null,
        simulate ? field('Pipeline parallel (stages)', n.pipeline_parallel) : null,
        field('Region', region, 'prices, electricity, carbon intensity and PUE')));
    const submit = el('button', { type: 'submit', class: 'primary' }, simulate ? 'Simulate' : 'Recommend hardware');
    const form = el('form', { id: 'mx-' + kind, class: 'mx-form', 'aria-label': simulate ? 'Simulate a workload' : 'Recommend hardware', novalidate: true },
      el('div', { class: 'form-grid' }, ...top), inferSet, trainSet, reqSet, advanced, el('div', { class: 'controls' }, submit));
    task.addEventListener('change', () => {
      const training = task.value === 'Training';
      inferSet.hidden = training;
      trainSet.hidden = !training;
      text(budgetHint, training ? 'US$ per training run' : 'US$ per month (730 h)');
      attr(n.max_latency_ms, 'disabled', training);
      attr(n.min_throughput_qps, 'disabled', training);
    });
    const INFER = ['batch_size', 'input_length', 'output_length'];
    const TRAIN = ['training_tokens', 'sequence_length', 'global_batch_size', 'micro_batch_size', 'zero_stage'];
    function payload() {
      const training = task.value === 'Training';
      const p = { task_type: task.value, model_name: model.value };
      const put = (k) => { if (n[k] && n[k].value !== '') p[k] = Number(n[k].value); };
      if (simulate && hw.value) p.hardware = hw.value;
      if (simulate && count.value !== '') p.gpu_count = Number(count.value);
      if (precision.value) p.precision = precision.value;
      if (rank && rank.value) p.rank_by = rank.value;
      (training ? TRAIN : INFER).forEach(put);
      if (training && recompute.value) p.recompute = recompute.value;
      put('tensor_parallel');
      put('pipeline_parallel');
      if (region.value) [p.provider, p.region] = region.value.split('/');
      const req = {};
      for (const k of training ? ['budget_limit'] : ['max_latency_ms', 'min_throughput_qps', 'budget_limit'])
        if (n[k].value !== '') req[k] = Number(n[k].value);
      if (Object.keys(req).length) p.performance_requirements = req;
      return p;
    }
    return { form, submit, payload };
  }

  // A form's submission: "…ing" while it runs (the button disabled, the
  // results aria-busy), the answer shown by show(body), or the error's
  // envelope. A newer submission wins over an older answer.
  function submitting(f, results, route, working, show, what) {
    let asked = 0;
    f.form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const mine = ++asked;
      f.submit.disabled = true;
      attr(results, 'aria-busy', 'true');
      results.replaceChildren(loading(working));
      try {
        const body = await grove.api(route, { method: 'POST', body: JSON.stringify(f.payload()), whole: true });
        if (mine === asked) show(body);
      } catch (err) {
        if (mine === asked && err.message !== 'signed out') results.replaceChildren(errorNode(err, what));
      } finally {
        if (mine === asked) { f.submit.disabled = false; attr(results, 'aria-busy', null); }
      }
    });
  }

  // A bar chart of configurations by a measure, in the order given (the
  // first CHART_MAX), under a "Compare by" picker; charts is the view's
  // list (recoloured with the theme, destroyed when it is left).
  function compareChart(list, metrics, charts, opts) {
    const by = select('compare', metrics.map((m) => [m[0], `${m[1]} (${m[2]})`]), opts.initial);
    const canvas = el('canvas', { role: 'img' });
    const box = el('div', { class: 'chart-box' }, canvas);
    const note = el('p', { class: 'muted' });
    let chart = null;
    async function draw() {
      const m = metrics.find((x) => x[0] === by.value);
      const rows = opts.order(list.filter((c) => m[3](c) != null), m).slice(0, CHART_MAX);
      text(note, opts.note(rows, m));
      box.hidden = !rows.length;
      if (!rows.length) return;
      try { await grove.chart.load(); } catch (err) {
        text(note, 'Charts are not available: this server has no Chart.js (libjs-chart.js). The table below has every figure.');
        box.hidden = true;
        return;
      }
      box.style.height = Math.max(160, 26 * rows.length + 80) + 'px'; // CSSOM: the CSP refuses style attributes
      const datasets = [{ label: m[1], data: rows.map((c) => m[3](c)), backgroundColor: COLORS[0], borderColor: COLORS[0] }];
      if (rows.some((c) => m[4](c)))
        datasets.push({ label: 'Likely range', data: rows.map((c) => m[4](c) || null), backgroundColor: COLORS[0] + '55', borderColor: COLORS[0] });
      if (!chart) { chart = barChart(canvas); charts.push(chart); }
      chart.set({ labels: rows.map(configName), datasets, unit: m[2] });
      attr(canvas, 'aria-label', `${m[1]} in ${m[2]} by configuration: ` +
        rows.slice(0, 5).map((c) => `${configName(c)} ${num(m[3](c))}`).join(', ') + (rows.length > 5 ? ', …' : ''));
    }
    by.addEventListener('change', draw);
    draw();
    return el('div', { class: 'compare' }, el('div', { class: 'controls' }, field('Compare by', by)), box, note);
  }

  // The figures of one configuration, with units and uncertainty bands.
  function figures(c, training, labelledby) {
    const pm = c.performance_metrics, mem = c.memory, cost = c.cost_analysis, u = c.uncertainty || {};
    const fits = el('div', { class: 'stat', 'data-figure': 'fits' }, el('dt', {}, 'Fits in memory'),
      el('dd', { class: mem.fits ? 'ok' : 'down' }, mem.fits ? 'yes' : 'no: needs more memory per GPU'));
    const memory = figure('Memory per GPU', mem.per_gpu_gb, `GB of ${num(mem.available_per_gpu_gb)}`, null, { key: 'memory' });
    const stats = el('dl', { class: 'stats', 'aria-labelledby': labelledby });
    if (!training) {
      stats.append(
        figure('Time to first token', pm.time_to_first_token_ms, 'ms', u.time_to_first_token_ms, { key: 'ttft' }),
        figure('Time per output token', pm.time_per_output_token_ms, 'ms', null, { key: 'tpot' }),
        figure('End-to-end latency', pm.latency_ms, 'ms', u.latency_ms, { key: 'latency' }),
        figure('Throughput', pm.throughput_tokens_per_s, 'tokens/s', null, { key: 'tokens' }),
        figure('Requests', pm.throughput_qps, 'per s', u.throughput_qps, { key: 'qps' }),
        memory, fits,
        figure('Cost per 1,000 inferences', cost.cost_per_1000_inferences, '', null, { key: 'cost', format: usd }),
        figure('Energy per 1,000 inferences', cost.energy_kwh_per_1000_inferences, 'kWh', null, { key: 'energy' }),
        figure('Carbon per 1,000 inferences', cost.carbon_g_per_1000_inferences, 'g CO₂e', null, { key: 'carbon' }));
      if (c.monthly)
        stats.append(figure('Cost per month', c.monthly.cost_usd, '', null, { key: 'monthly-cost', format: usd }),
          figure('Carbon per month', c.monthly.carbon_kg, 'kg CO₂e', null, { key: 'monthly-carbon' }));
    } else {
      stats.append(
        figure('Training time', pm.training_time_hours, 'hours', u.training_time_hours, { key: 'time' }),
        figure('Tokens per second per GPU', pm.tokens_per_s_per_gpu, 'tokens/s', null, { key: 'tokens' }),
        figure('Model FLOPS utilisation', pm.mfu, '', null, { key: 'mfu', format: pct }),
        figure('Steps', pm.steps, '', null, { key: 'steps' }),
        memory, fits,
        figure('Cost per run', cost.cost_per_run, '', null, { key: 'cost', format: usd }),
        figure('Energy per run', cost.energy_kwh, 'kWh', null, { key: 'energy' }),
        figure('Carbon per run', cost.carbon_kg, 'kg CO₂e', null, { key: 'carbon' }));
    }
    return stats;
  }
  const where = (cost) => `${cost.provider} ${cost.region} ${cost.instance || ''} at ${usd(cost.cost_per_hour)}/h (${cost.basis})`;
  function calibration(meta, u) {
    const sigma = u && u.sigma != null ? ` "Likely" is the band [x·e^−σ, x·e^σ], σ = ${num(u.sigma)}, from the calibration's held-out errors.` : '';
    return el('p', { class: 'muted' }, `Model ${meta.model_version || ''}` +
      (meta.loo_mape_percent != null ? `, leave-one-out error ${num(meta.loo_mape_percent)} %.` : '.') + sigma);
  }

  async function optimizer(root, ctx) {
    const status = loading('Loading the model and hardware catalogues…');
    root.append(el('h2', {}, 'Simulate a workload'),
      el('p', { class: 'muted' }, 'An analytical model of inference (prefill and decode) and training on catalogue hardware, ' +
        'with efficiency factors fitted on published measurements (docs/matrix.md). Leave a field empty for its default.'), status);
    let cats;
    try {
      const [models, hardware, regions] = await Promise.all([grove.api('/api/model/get-model-data'),
        grove.api('/api/hardware-specs'), grove.api('/api/cost-models/regions')]);
      cats = { models, gpus: hardware.filter((h) => h.kind === 'gpu'), regions };
    } catch (e) {
      status.replaceWith(errorNode(e, 'Cannot load the catalogues'));
      return;
    }
    if (!cats.models.length || !cats.gpus.length) {
      status.replaceWith(el('p', { class: 'empty' }, !cats.models.length
        ? 'The model catalogue is empty: an administrator adds models with PUT /api/v1/matrix/catalogue/models/{name}.'
        : 'The hardware catalogue has no GPU: an administrator adds one with PUT /api/v1/matrix/catalogue/hardware/{name}.'));
      return;
    }
    status.remove();
    const charts = [];
    ctx.onTheme = () => charts.forEach((c) => c.recolour());
    ctx.leave = () => charts.forEach((c) => c.destroy());
    // the charts of answers no longer shown (replaced by "…ing" or a newer answer)
    const forget = () => {
      for (let i = charts.length - 1; i >= 0; i--)
        if (!charts[i].canvas.isConnected) { charts[i].destroy(); charts.splice(i, 1); }
    };

    // ---- simulate
    const sim = workloadForm('simulate', cats);
    const simResults = el('section', { id: 'mx-simulate-results', class: 'results', 'aria-label': 'Simulation results', 'aria-live': 'polite' },
      el('p', { class: 'muted empty' }, 'Choose a model and press Simulate: the results and a chart comparing configurations appear here.'));
    root.append(sim.form, simResults);
    submitting(sim, simResults, '/api/model/simulate-performance', 'Simulating…', (body) => {
      forget();
      showSimulation(body.data, body.metadata || {});
      const n = body.data.configurations.length;
      grove.announce(`Simulated ${n} configuration${n === 1 ? '' : 's'}.`);
    }, 'Cannot simulate');

    function showSimulation(d, meta) {
      const training = d.task_type === 'Training';
      const configs = d.configurations || [];
      if (!configs.length) {
        simResults.replaceChildren(el('p', { class: 'empty' }, 'No configuration could be simulated.'), excludedList(d.excluded));
        return;
      }
      // the summary is the first recommendation's (cheapest that meets the
      // requirements), else the first configuration's: as the server chose
      const rec = (d.recommendations || [])[0];
      const best = (rec && configs.find((c) => c.hardware === rec.hardware && c.gpu_count === rec.gpu_count)) || configs[0];
      const metrics = training ? TRAIN_METRICS : INFER_METRICS;
      const fitting = configs.filter((c) => c.memory.fits).length;
      simResults.replaceChildren(
        el('h3', { id: 'mx-best' }, `${rec ? 'Cheapest that meets the requirements' : 'First configuration'}: ${configName(best)}`),
        el('p', { class: 'muted' }, `${d.model.model_name}, ${(d.workload && d.workload.precision) || ''}` +
          (training ? '' : `, batch ${best.batch_size}, ${d.workload.input_length} tokens in, ${d.workload.output_length} out`) +
          ` · ${where(best.cost_analysis)}`),
        figures(best, training, 'mx-best'), calibration(meta, best.uncertainty),
        el('h3', {}, 'Configurations compared'),
        compareChart(configs.filter((c) => c.memory.fits), metrics, charts, {
          order: (rows, m) => rows.sort((a, b) => (LOWER_IS_BETTER.has(m[0]) ? m[3](a) - m[3](b) : m[3](b) - m[3](a))),
          note: (rows, m) => (rows.length ? `${rows.length === fitting ? 'Every' : `The best ${rows.length} of ${fitting}`} configuration${fitting === 1 ? '' : 's'} that fit${fitting === 1 ? 's' : ''}, ` +
            `${LOWER_IS_BETTER.has(m[0]) ? 'lowest' : 'highest'} first.` : 'No configuration fits in memory: nothing to compare.'),
        }),
        el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Every configuration simulated' }, configTable(configs, training)),
        excludedList(d.excluded), assumptionsList(d.assumptions));
    }

    // ---- recommend
    const recForm = workloadForm('recommend', cats);
    const recResults = el('section', { id: 'mx-recommend-results', class: 'results', 'aria-label': 'Recommended hardware', 'aria-live': 'polite' },
      el('p', { class: 'muted empty' }, 'Give the requirements and press Recommend hardware: every catalogue configuration is ranked here, with why the others are excluded.'));
    root.append(el('h2', {}, 'Recommend hardware'),
      el('p', { class: 'muted' }, 'Every catalogue GPU at 1, 2, 4 and 8 GPUs (training: 8 to 512, data parallel), simulated, ' +
        'checked against the requirements and ranked.'), recForm.form, recResults);
    submitting(recForm, recResults, '/api/model/recommend-hardware', 'Ranking every configuration…', (body) => {
      forget();
      showRecommendations(body.data, body.metadata || {});
      grove.announce(`${body.data.recommended} of ${body.data.considered} configurations meet the requirements.`);
    }, 'Cannot recommend hardware');

    function showRecommendations(d, meta) {
      const training = d.task_type === 'Training';
      const recs = d.recommendations || [];
      const metrics = training ? TRAIN_METRICS : INFER_METRICS;
      const rankBy = d.rank_by || 'cost';
      const m = metrics.find((x) => x[0] === rankBy) || metrics[0];
      const req = d.performance_requirements || {};
      const asked = [req.max_latency_ms != null ? `latency at most ${num(req.max_latency_ms)} ms` : null,
        req.min_throughput_qps != null ? `at least ${num(req.min_throughput_qps)} requests/s` : null,
        req.budget_limit != null ? `at most ${usd(req.budget_limit)} per ${req.budget_period || (training ? 'run' : 'month')}` : null].filter(Boolean);
      const summary = el('p', { class: 'summary', 'data-recommended': d.recommended, 'data-considered': d.considered },
        `${num(d.recommended)} of ${num(d.considered)} configurations meet ${asked.length ? asked.join(', ') : 'the (no) requirements'}; ranked by ${m[1].toLowerCase()}.`);
      const parts = [summary];
      if (!recs.length) {
        parts.push(el('p', { class: 'empty' }, 'No configuration meets every requirement: see why each is excluded below, and loosen one.'));
      } else {
        const top = recs[0];
        parts.push(el('h3', { id: 'mx-top' }, `1. ${configName(top)}`),
          el('p', { class: 'muted' }, where(top.cost_analysis)), figures(top, training, 'mx-top'), calibration(meta, top.uncertainty),
          el('h3', {}, 'Ranked'),
          compareChart(recs, metrics, charts, { initial: m[0], order: (rows) => rows,
            note: (rows) => `${rows.length === recs.length ? 'Every' : `The first ${rows.length} of ${recs.length}`} recommended configuration${recs.length === 1 ? '' : 's'}, in rank order.` }),
          el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Recommended configurations, ranked' }, rankTable(recs, training)));
      }
      parts.push(reasonsTable(d.excluded || [], !recs.length), assumptionsList(d.assumptions));
      recResults.replaceChildren(...parts.filter(Boolean));
    }
  }

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

  function rankTable(recs, training) {
    const head = training
      ? ['Rank', 'Hardware', 'GPUs', 'Where', 'Training time (h)', 'Cost per run', 'Energy (kWh)', 'Carbon (kg CO₂e)']
      : ['Rank', 'Hardware', 'GPUs', 'Where', 'Latency (ms)', 'Requests/s', 'Cost per 1,000', 'Cost per month', 'Energy per 1,000 (kWh)', 'Carbon per 1,000 (g CO₂e)'];
    const tbody = el('tbody');
    for (const c of recs) {
      const pm = c.performance_metrics, ca = c.cost_analysis;
      const cells = training
        ? [num(pm.training_time_hours), usd(ca.cost_per_run), num(ca.energy_kwh), num(ca.carbon_kg)]
        : [num(pm.latency_ms), num(pm.throughput_qps), usd(ca.cost_per_1000_inferences), c.monthly ? usd(c.monthly.cost_usd) : '–',
          num(ca.energy_kwh_per_1000_inferences), num(ca.carbon_g_per_1000_inferences)];
      tbody.append(el('tr', { 'data-config': configName(c), 'data-rank': c.rank }, el('td', {}, num(c.rank)),
        el('th', { scope: 'row' }, c.hardware), el('td', {}, num(c.gpu_count)),
        el('td', {}, `${ca.provider} ${ca.region}${ca.instance ? ' ' + ca.instance : ''}`), ...cells.map((x) => el('td', {}, x))));
    }
    return el('table', { class: 'configs ranked' }, el('caption', { class: 'sr-only' }, 'Recommended configurations, best first'),
      el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { scope: 'col' }, h)))), tbody);
  }

  // recommend-hardware's excluded configurations: a count per reason, then
  // each with every reason the server gave
  function reasonsTable(excluded, open) {
    if (!excluded.length) return null;
    const counts = new Map();
    for (const x of excluded) for (const r of x.reasons || []) counts.set(r.code, (counts.get(r.code) || 0) + 1);
    const tbody = el('tbody');
    for (const x of excluded)
      tbody.append(el('tr', { 'data-config': configName(x) }, el('th', { scope: 'row' }, configName(x)),
        el('td', {}, el('ul', { class: 'reasons' }, ...(x.reasons || []).map((r) =>
          el('li', { 'data-code': r.code }, el('strong', {}, REASONS[r.code] || r.code), ': ', r.message))))));
    return el('details', { class: 'excluded', open },
      el('summary', {}, `Excluded: ${excluded.length} configuration${excluded.length === 1 ? '' : 's'} (` +
        [...counts].map(([k, v]) => `${v} ${REASONS[k] || k}`).join(', ') + ')'),
      el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Excluded configurations and why' },
        el('table', {}, el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Configuration'), el('th', { scope: 'col' }, 'Why'))), tbody)));
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
  // Monitoring: the admin dashboard and the process monitor, from the
  // agents' pushes (docs/matrix.md "Monitoring"), live through the topics
  // matrix/hosts/{id} and matrix/vms/{id}
  // ================================================================
  const RANGES = { '1h': [3600, '1m', 'last hour'], '6h': [6 * 3600, '5m', 'last 6 hours'],
    '24h': [86400, '15m', 'last 24 hours'], '7d': [7 * 86400, '1h', 'last 7 days'] };
  const STEP_MS = { '1m': 6e4, '5m': 3e5, '15m': 9e5, '1h': 36e5 };
  const MAX_TOPICS = 60; // a connection holds 64 (--live-max-topics)
  const MAX_CHART_SERIES = 6;
  const pctU = (v) => (v == null ? '–' : num(v) + ' %');
  const watts = (v) => (v == null ? '–' : num(v) + ' W');
  const mib = (v) => (v == null ? '–' : num(v) + ' MiB');
  const gb = (bytes) => (bytes == null ? '–' : num(bytes / 1e9) + ' GB');
  const msOf = (iso) => (iso == null ? null : Date.parse(iso));
  const rangePicker = () => select('range', Object.entries(RANGES).map(([k, v]) => [k, v[2].replace(/^./, (c) => c.toUpperCase())]), '1h');

  // a source (host or VM) as the routes name it
  const SOURCES = {
    host: { list: '/api/host-process-metrics/hosts', top: '/api/host-process-metrics/top', range: '/api/host-process-metrics/range',
      param: 'host', topic: 'matrix/hosts/', idOf: (h) => h.host_name },
    vm: { list: '/api/vm-process-metrics/vms', top: '/api/vm-process-metrics/top', range: '/api/vm-process-metrics/range',
      param: 'vm_name', topic: 'matrix/vms/', idOf: (h) => h.vm_name },
  };

  // One series over [from, to) in steps: the host's (or VM's) own figure,
  // or one process's (with process and pid).
  async function series(kind, id, metric, from, to, step, proc) {
    const s = SOURCES[kind];
    let q = `${s.range}?${s.param}=${encodeURIComponent(id)}&metric=${metric}&from=${from * 1e6}&to=${to * 1e6}&step=${step}&agg=mean`;
    if (proc) q += `&process=${encodeURIComponent(proc.process_name)}` + (proc.pid != null ? `&pid=${proc.pid}` : '');
    return (await grove.api(q)).points;
  }

  // A time chart (flow's: linear time axis, local time ticks, gaps) that
  // says when it is loading, empty or failed; registered in charts.
  function timeChart(charts, label) {
    const canvas = el('canvas', { role: 'img', 'aria-label': label });
    const box = el('div', { class: 'chart-box' }, canvas);
    const note = el('p', { class: 'muted' });
    let chart = null;
    const entry = { canvas, recolour: () => chart && chart.recolour(), destroy: () => { if (chart) chart.destroy(); chart = null; } };
    charts.push(entry);
    return {
      node: el('div', { class: 'time-chart' }, box, note),
      canvas,
      // load: async () => [{label, points [[ns, v]]}], drawn from..to (ms)
      async draw(o) {
        if (!chart) text(note, 'Loading…');
        let list;
        try {
          await grove.chart.load();
          list = await o.load();
        } catch (e) {
          text(note, e.message.startsWith('cannot load') ? 'Charts are not available: this server has no Chart.js (libjs-chart.js).' : 'Cannot load the series: ' + e.message);
          return;
        }
        if (!canvas.isConnected) return;
        const n = list.reduce((k, s) => k + s.points.length, 0);
        if (!chart) chart = grove.chart.chartOn(canvas);
        chart.set({ from: o.from, to: o.to, unit: o.unit, format: o.format,
          series: list.map((s, i) => ({ label: s.label, color: COLORS[i % COLORS.length], points: grove.chart.toXY(s.points, o.stepMs) })) });
        canvas.dataset.points = String(n);
        attr(canvas, 'aria-label', `${label}, ${o.words}: ` + (n ? list.map((s) => {
          const last = s.points.length ? s.points[s.points.length - 1][1] : null;
          return `${s.label} ${last == null ? 'no data' : 'latest ' + o.format(last)}`;
        }).join('; ') : 'no data'));
        text(note, n ? `${o.words}, one point per ${o.stepMs / 60000 >= 60 ? o.stepMs / 3600000 + ' h' : o.stepMs / 60000 + ' min'} (${o.per || 'mean'}). Breaks in a line are times without samples.`
          : `No samples in the ${o.words}.`);
      },
    };
  }

  // calls fn at most once per ms, the last call always honoured
  function throttle(fn, ms) {
    let timer = null, again = false;
    const run = () => { timer = null; if (again) { again = false; timer = setTimeout(run, ms); fn(); } };
    return () => { if (timer) { again = true; return; } fn(); timer = setTimeout(run, ms); };
  }

  const noAgents = () => el('p', { class: 'empty' }, 'No host or VM has reported yet: run grove-agent on them (docs/agent.md) ' +
    'or push samples to POST /api/monitoring/push-metrics.');

  // ---------------- the admin dashboard
  async function dashboard(root, ctx) {
    const status = loading('Loading hosts and VMs…');
    root.append(el('h2', {}, 'Fleet now'), status);
    let overview, hosts, vms;
    const loadAll = () => Promise.all([grove.api('/api/dashboard/overview'), grove.api(SOURCES.host.list), grove.api(SOURCES.vm.list)]);
    try { [overview, hosts, vms] = await loadAll(); } catch (e) {
      status.replaceWith(errorNode(e, 'Cannot load the fleet'));
      return;
    }
    if (!hosts.length && !vms.length) { status.replaceWith(noAgents()); return; }
    status.remove();
    const charts = [];
    let ticker = null;
    ctx.onTheme = () => charts.forEach((c) => c.recolour());
    ctx.leave = () => { charts.forEach((c) => c.destroy()); clearInterval(ticker); };

    // ---- tiles: the server's aggregates
    const tiles = el('dl', { class: 'stats', id: 'mx-overview', 'aria-label': 'Fleet now' });
    function renderOverview(o) {
      const t = [
        ['hosts', 'Hosts reporting', `${num(o.hosts.reporting)} of ${num(o.hosts.total)}`, o.hosts.reporting],
        ['vms', 'VMs reporting', `${num(o.vms.reporting)} of ${num(o.vms.total)}`, o.vms.reporting],
        ['processes', 'Live processes', num(o.processes.live), o.processes.live],
        ['gpus', 'GPUs', num(o.gpus.count), o.gpus.count],
        ['gpu-util', 'Mean GPU utilisation', pctU(o.gpus.mean_utilization_percent), o.gpus.mean_utilization_percent],
        ['gpu-power', 'GPU power', watts(o.gpus.power_watts), o.gpus.power_watts],
        ['power', 'Total power now', watts(o.power.total_watts_now), o.power.total_watts_now],
        ['cpu', 'Mean CPU', pctU(o.mean_cpu_usage_percent), o.mean_cpu_usage_percent],
      ];
      if (!tiles.children.length)
        for (const [k, label] of t) tiles.append(el('div', { class: 'stat', 'data-figure': k }, el('dt', {}, label), el('dd', {}, el('span', { class: 'figure' }))));
      for (const [k, , shown, v] of t) {
        const dd = tiles.querySelector(`[data-figure="${k}"] dd`);
        attr(dd, 'data-value', v ?? '');
        text(dd.firstChild, shown);
      }
    }
    renderOverview(overview);

    // ---- hosts and VMs: one row each, written in place by the live topics
    const rows = new Map();
    function sourceTable(kind, list, caption) {
      const tbody = el('tbody');
      const table = el('table', { class: 'configs', 'data-kind': kind }, el('caption', { class: 'sr-only' }, caption),
        el('thead', {}, el('tr', {}, ...[kind === 'host' ? 'Host' : 'VM', 'State', 'CPU', 'Memory', 'GPU', 'Power', 'Processes', 'GPUs', 'Instance']
          .map((h) => el('th', { scope: 'col' }, h)))), tbody);
      for (const h of list) {
        const id = SOURCES[kind].idOf(h);
        const r = { tr: el('tr', { 'data-id': id }), state: el('span'), seen: grove.timeAgo(null, 'sample '),
          cpu: el('td'), mem: el('td'), gpu: el('td'), power: el('td'), procs: el('td'), gpus: el('td'), inst: el('td') };
        r.tr.append(el('th', { scope: 'row' }, id + (kind === 'vm' && h.host_name ? ` (on ${h.host_name})` : '')),
          el('td', {}, r.state, ' ', r.seen), r.cpu, r.mem, r.gpu, r.power, r.procs, r.gpus, r.inst);
        tbody.append(r.tr);
        rows.set(kind + ':' + id, r);
        renderRow(kind, id, h);
      }
      return el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': caption }, table);
    }
    // the latest of each machine (the live messages carry GPU counts, not the GPUs)
    const latest = new Map();
    function renderRow(kind, id, h) {
      const was = latest.get(kind + ':' + id) || {};
      latest.set(kind + ':' + id, Object.assign({}, was, h, Array.isArray(h.gpus) ? {} : { gpus: was.gpus }));
      const r = rows.get(kind + ':' + id);
      if (!r) return;
      text(r.state, h.stale ? 'stale' : 'reporting');
      attr(r.state, 'class', h.stale ? 'down' : 'ok');
      grove.setAgo(r.seen, msOf(h.timestamp));
      const cell = (td, v, f, key) => { text(td, f(v)); attr(td, 'data-value', v ?? ''); attr(td, 'data-key', key); };
      cell(r.cpu, h.total_cpu_usage, pctU, 'cpu');
      cell(r.mem, h.total_memory_usage, pctU, 'memory');
      cell(r.gpu, h.total_gpu_usage, pctU, 'gpu');
      cell(r.power, h.total_power_consumption, watts, 'power');
      if (h.live_processes != null) cell(r.procs, h.live_processes, num, 'processes');
      if (h.gpus != null) cell(r.gpus, Array.isArray(h.gpus) ? h.gpus.length : h.gpus, num, 'gpus');
      if (h.instance_type !== undefined) text(r.inst, h.instance_type || '–');
    }
    const gpuBody = el('tbody');
    function renderGpus() {
      const all = [...hosts, ...vms].flatMap((h) => (h.gpus || []).map((g) => Object.assign({ owner: SOURCES[h.source_type === 'vm' ? 'vm' : 'host'].idOf(h) }, g)));
      gpuBody.replaceChildren(...(all.length ? all.map((g) => el('tr', { 'data-gpu': `${g.owner}:${g.index}` },
        el('th', { scope: 'row' }, `${g.owner} #${g.index}`), el('td', {}, g.name || '–'), el('td', {}, pctU(g.utilization_percent)),
        el('td', {}, `${gb(g.memory_used_bytes)} of ${gb(g.memory_total_bytes)}`), el('td', {}, watts(g.power_watts)),
        el('td', {}, g.temperature_celsius == null ? '–' : num(g.temperature_celsius) + ' °C')))
        : [el('tr', {}, el('td', { colspan: 6 }, 'No GPU has reported.'))]));
    }
    renderGpus();
    root.append(tiles,
      el('h3', {}, 'Hosts'), hosts.length ? sourceTable('host', hosts, 'Hosts now') : el('p', { class: 'muted' }, 'No host has reported.'),
      el('h3', {}, 'VMs'), vms.length ? sourceTable('vm', vms, 'VMs now') : el('p', { class: 'muted' }, 'No VM has reported.'),
      el('h3', {}, 'GPUs'), el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'GPUs now' },
        el('table', { class: 'configs gpus' }, el('caption', { class: 'sr-only' }, 'GPUs now'),
          el('thead', {}, el('tr', {}, ...['GPU', 'Model', 'Utilisation', 'Memory', 'Power', 'Temperature'].map((h) => el('th', { scope: 'col' }, h)))), gpuBody)));

    // ---- over time: power by host and VM, then one machine's utilisation
    const range = rangePicker();
    const machines = [...hosts.map((h) => ['host', h.host_name]), ...vms.map((v) => ['vm', v.vm_name])];
    const which = select('machine', machines.map(([k, id]) => [`${k}:${id}`, `${k === 'host' ? 'Host' : 'VM'} ${id}`]));
    const powerChart = timeChart(charts, 'Power by host and VM');
    const utilChart = timeChart(charts, 'Utilisation');
    root.append(el('h2', {}, 'Over time'), el('div', { class: 'controls' }, field('Range', range)),
      el('h3', {}, 'Power (W)'), powerChart.node,
      el('h3', {}, 'Utilisation (%)'), el('div', { class: 'controls' }, field('Machine', which)), utilChart.node);
    function window_() {
      const [secs, step, words] = RANGES[range.value];
      const to = Date.now();
      return { from: to - secs * 1000, to, step, stepMs: STEP_MS[step], words };
    }
    function drawPower() {
      const w = window_();
      const shown = machines.slice(0, MAX_CHART_SERIES);
      return powerChart.draw(Object.assign(w, { unit: 'Power, W', format: watts,
        load: () => Promise.all(shown.map(async ([k, id]) => ({ label: `${id}`, points: await series(k, id, 'total_power_consumption', w.from, w.to, w.step) }))) }));
    }
    function drawUtil() {
      const w = window_();
      const [k, id] = which.value.split(/:(.*)/s);
      return utilChart.draw(Object.assign(w, { unit: 'Utilisation, %', format: pctU,
        load: () => Promise.all([['CPU', 'total_cpu_usage'], ['Memory', 'total_memory_usage'], ['GPU', 'total_gpu_usage']]
          .map(async ([label, m]) => ({ label, points: await series(k, id, m, w.from, w.to, w.step) }))) }));
    }
    range.addEventListener('change', () => { drawPower(); drawUtil(); });
    which.addEventListener('change', drawUtil);
    await Promise.all([drawPower(), drawUtil()]);

    // ---- live: a topic's sample writes its row; the aggregates and the
    // charts follow (at most every 2 s and 5 s)
    const refreshOverview = throttle(() => grove.api('/api/dashboard/overview').then(renderOverview).catch(() => {}), 2000);
    const refreshGpus = throttle(() => Promise.all([grove.api(SOURCES.host.list), grove.api(SOURCES.vm.list)])
      .then(([h, v]) => { hosts = h; vms = v; renderGpus(); }).catch(() => {}), 5000);
    const refreshCharts = throttle(() => { drawPower(); drawUtil(); }, 5000);
    let topics = 0;
    for (const [k, id] of machines) {
      if (++topics > MAX_TOPICS) break;
      grove.live.subscribe(SOURCES[k].topic + id, (m) => {
        renderRow(k, id, Object.assign({ stale: false, timestamp: m.timestamp, live_processes: m.processes, gpus: m.gpus }, m.metrics));
        refreshOverview();
        refreshGpus();
        refreshCharts();
      });
    }
    // staleness is the server's word: the tables are read again every 30 s
    ticker = setInterval(() => Promise.all([grove.api(SOURCES.host.list), grove.api(SOURCES.vm.list)]).then(([h, v]) => {
      for (const x of h) renderRow('host', x.host_name, x);
      for (const x of v) renderRow('vm', x.vm_name, x);
    }).catch(() => {}), 30000);
    const onLive = (e) => { if (e.detail.online && e.detail.resumed) { refreshOverview(); refreshCharts(); } };
    document.addEventListener('grove-live', onLive);
    const leave = ctx.leave;
    ctx.leave = () => { leave(); document.removeEventListener('grove-live', onLive); };
    await adviceSection(root, hosts, vms, (k, id) => latest.get(k + ':' + id));
  }

  // ---- post-deployment advice (seed §4.1.3): a machine's live utilisation
  // into POST /api/deployment/post-deployment-optimization
  async function adviceSection(root, hosts, vms, now) {
    let models, gpus;
    try {
      [models, gpus] = await Promise.all([grove.api('/api/model/get-model-data'), grove.api('/api/hardware-specs')]);
    } catch (e) {
      root.append(el('h2', {}, 'Deployment advice'), errorNode(e, 'Cannot load the catalogues'));
      return;
    }
    gpus = gpus.filter((h) => h.kind === 'gpu');
    const machines = [...hosts.map((h) => ['host', h.host_name, h]), ...vms.map((v) => ['vm', v.vm_name, v])];
    const machine = select('machine', machines.map(([k, id]) => [`${k}:${id}`, `${k === 'host' ? 'Host' : 'VM'} ${id}`]));
    const model = select('model_name', models.map((m) => m.model_name));
    const hw = select('current_hardware_id', gpus.map((h) => h.hardware_name));
    const type = select('deployment_type', [['bare-metal', 'Bare metal'], ['vm', 'VMs']]);
    const n = { gpu_utilization: number('gpu_utilization', { min: 0, max: 100, step: 'any' }), gpu_memory_usage: number('gpu_memory_usage', { min: 0, max: 100, step: 'any' }),
      cpu_utilization: number('cpu_utilization', { min: 0, max: 100, step: 'any' }), cpu_memory_usage: number('cpu_memory_usage', { min: 0, max: 100, step: 'any' }),
      count: number('count', { min: 1, step: 1 }), latency_ms: number('latency_ms', { min: 0, step: 'any' }), cost_per_1000: number('cost_per_1000', { min: 0, step: 'any' }) };
    const countLabel = el('span', {}, 'GPUs');
    // the machine's latest sample fills the form: its GPU (matched to the
    // catalogue by name or alias), utilisation and memory
    function fill() {
      const [k, id, first] = machines.find(([kk, i]) => `${kk}:${i}` === machine.value);
      const h = now(k, id) || first;
      type.value = k === 'vm' ? 'vm' : 'bare-metal';
      text(countLabel, k === 'vm' ? 'VMs running it' : 'GPUs');
      const g = (h.gpus || [])[0];
      const name = g && g.name ? g.name.toLowerCase() : '';
      const match = gpus.find((x) => [x.hardware_name, ...(x.aliases || [])].some((a) => name.includes(a.toLowerCase())));
      if (match) hw.value = match.hardware_name;
      const used = (h.gpus || []).reduce((a, x) => a + (x.memory_used_bytes || 0), 0), total = (h.gpus || []).reduce((a, x) => a + (x.memory_total_bytes || 0), 0);
      const put = (inp, v) => { inp.value = v == null ? '' : String(Math.round(v * 10) / 10); };
      put(n.gpu_utilization, h.total_gpu_usage);
      put(n.gpu_memory_usage, total ? (100 * used) / total : null);
      put(n.cpu_utilization, h.total_cpu_usage);
      put(n.cpu_memory_usage, h.total_memory_usage);
      n.count.value = k === 'vm' ? '1' : String(Math.max(1, (h.gpus || []).length));
    }
    const submit = el('button', { type: 'submit', class: 'primary' }, 'Advise');
    const form = el('form', { id: 'mx-advice', class: 'mx-form', 'aria-label': 'Deployment advice', novalidate: true },
      el('div', { class: 'form-grid' }, field('Machine', machine, 'fills in its latest utilisation'), field('Model served', model), field('Current GPU', hw),
        field('Deployment', type), field(countLabel, n.count)),
      el('fieldset', {}, el('legend', {}, 'Utilisation now (%)'), field('GPU', n.gpu_utilization), field('GPU memory', n.gpu_memory_usage),
        field('CPU', n.cpu_utilization), field('Memory', n.cpu_memory_usage)),
      el('fieldset', {}, el('legend', {}, 'Current performance (optional)'), field('Latency (ms)', n.latency_ms), field('Cost per 1,000 (US$)', n.cost_per_1000)),
      el('div', { class: 'controls' }, submit));
    const results = el('section', { id: 'mx-advice-results', class: 'results', 'aria-label': 'Deployment advice', 'aria-live': 'polite' },
      el('p', { class: 'muted empty' }, 'Pick a machine and the model it serves: whether to keep, upgrade, downgrade or scale it appears here, with the reasons.'));
    root.append(el('h2', {}, 'Deployment advice'), el('p', { class: 'muted' },
      'Bare metal: upgrade, keep or downgrade the GPU; VMs: keep, scale in or scale out — from the measured utilisation against an 80 % target (docs/matrix.md).'), form, results);
    machine.addEventListener('change', fill);
    fill();
    submitting({ form, submit, payload: () => {
      const p = { model_name: model.value, current_hardware_id: hw.value, deployment_type: type.value };
      for (const k of ['gpu_utilization', 'gpu_memory_usage', 'cpu_utilization', 'cpu_memory_usage']) if (n[k].value !== '') p[k] = Number(n[k].value);
      if (n.count.value !== '') p[type.value === 'vm' ? 'instance_count' : 'gpu_count'] = Number(n.count.value);
      const perf = {};
      if (n.latency_ms.value !== '') perf.latency_ms = Number(n.latency_ms.value);
      if (n.cost_per_1000.value !== '') perf.cost_per_1000 = Number(n.cost_per_1000.value);
      if (Object.keys(perf).length) p.current_performance = perf;
      return p;
    } }, results, '/api/deployment/post-deployment-optimization', 'Weighing the deployment…', (b) => {
      const d = b.data, e = d.expected || {};
      const vm = d.deployment_type === 'vm';
      const parts = [el('p', { class: 'verdict', id: 'mx-verdict', 'data-label': d.recommendation }, el('strong', {}, d.recommendation),
        vm ? ` — from ${d.current_instances} to ${d.recommended_instances} VM${d.recommended_instances === 1 ? '' : 's'}` : d.target ? ` — ${d.current.hardware} → ${d.target.hardware}` : ''),
      el('ul', { class: 'reasons' }, ...(d.reasons || []).map((r) => el('li', {}, r)))];
      const stats = el('dl', { class: 'stats', 'aria-labelledby': 'mx-verdict' });
      if (vm) {
        const u = e.usage || {};
        stats.append(figure('GPU utilisation after', u.gpu_utilization, '%', null, { key: 'gpu' }), figure('CPU after', u.cpu_utilization, '%', null, { key: 'cpu' }),
          figure('Monthly cost change', e.monthly_cost_change_usd, '', null, { key: 'monthly', format: usd }));
      } else {
        stats.append(figure('GPU utilisation after', e.gpu_utilization, '%', null, { key: 'gpu' }), figure('GPU memory after', e.gpu_memory_usage, '%', null, { key: 'gpu-memory' }),
          figure('Latency after', e.latency_ms, 'ms', null, { key: 'latency' }), figure('Monthly saving', e.monthly_saving_usd, '', null, { key: 'monthly', format: usd }));
      }
      parts.push(stats);
      if (!vm && (d.alternatives || []).length) {
        const tbody = el('tbody');
        for (const a of d.alternatives)
          tbody.append(el('tr', { 'data-hardware': a.hardware }, el('th', { scope: 'row' }, a.hardware), el('td', {}, num(a.speed_ratio)),
            el('td', { class: a.model_fits ? '' : 'down' }, a.model_fits ? 'yes' : 'no'), el('td', {}, pctU(a.projected_gpu_utilization)),
            el('td', {}, pctU(a.projected_gpu_memory_usage)), el('td', {}, a.cost_per_gpu_hour == null ? '–' : usd(a.cost_per_gpu_hour)),
            el('td', { class: a.within_target ? 'ok' : '' }, a.within_target ? 'yes' : 'no')));
        parts.push(el('details', { class: 'excluded' }, el('summary', {}, `Every catalogue GPU for this load (${d.alternatives.length})`),
          el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Every catalogue GPU for this load' },
            el('table', { class: 'configs alternatives' }, el('thead', {}, el('tr', {}, ...['GPU', 'Speed vs now', 'Model fits', 'Utilisation', 'Memory', 'Per GPU-hour', 'Within target']
              .map((h) => el('th', { scope: 'col' }, h)))), tbody))));
      }
      parts.push(assumptionsList(d.assumptions));
      results.replaceChildren(...parts.filter(Boolean));
    }, 'Cannot advise');
  }

  // ---------------- the process monitor
  const BY = [['cpu', 'CPU', 'cpu_usage_percent', pctU, 'CPU, % of one core'], ['memory', 'Memory', 'memory_usage_mb', mib, 'Memory, MiB'],
    ['gpu', 'GPU', 'gpu_utilization_percent', pctU, 'GPU utilisation, %'], ['power', 'Power', 'power_consumption_watts', watts, 'Power, W']];
  async function processes(root, ctx) {
    const status = loading('Loading hosts and VMs…');
    root.append(el('h2', {}, 'Top processes'), status);
    let hosts, vms;
    try { [hosts, vms] = await Promise.all([grove.api(SOURCES.host.list), grove.api(SOURCES.vm.list)]); } catch (e) {
      status.replaceWith(errorNode(e, 'Cannot load hosts and VMs'));
      return;
    }
    if (!hosts.length && !vms.length) { status.replaceWith(noAgents()); return; }
    status.remove();
    const charts = [];
    ctx.onTheme = () => charts.forEach((c) => c.recolour());
    ctx.leave = () => charts.forEach((c) => c.destroy());

    const kind = select('kind', [...(hosts.length ? [['host', 'Host processes']] : []), ...(vms.length ? [['vm', 'VM processes']] : [])]);
    const machine = select('machine', []);
    const by = select('by', BY.map((b) => [b[0], b[1]]));
    const limit = select('limit', ['10', '20', '50']);
    const range = rangePicker();
    function machines() {
      const list = kind.value === 'vm' ? vms.map((v) => v.vm_name) : hosts.map((h) => h.host_name);
      machine.replaceChildren(el('option', { value: '' }, kind.value === 'vm' ? 'Every VM' : 'Every host'), ...list.map((id) => el('option', { value: id }, id)));
    }
    machines();
    const tableBox = el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Top processes' });
    const chart = timeChart(charts, 'Top processes over time');
    const detail = el('section', { id: 'mx-process', class: 'results', 'aria-label': 'Process detail', hidden: true });
    root.append(el('div', { class: 'controls' }, field('Processes of', kind), field('On', machine), field('Top by', by), field('How many', limit), field('Range', range)),
      tableBox, el('h3', {}, 'The top five over time'), chart.node, detail);

    let top = [];
    const col = () => BY.find((b) => b[0] === by.value);
    async function loadTop() {
      const s = SOURCES[kind.value];
      const q = `${s.top}?by=${by.value}&limit=${limit.value}` + (machine.value ? `&${s.param}=${encodeURIComponent(machine.value)}` : '');
      try { top = await grove.api(q); } catch (e) {
        tableBox.replaceChildren(errorNode(e, 'Cannot load the top processes'));
        return false;
      }
      renderTop();
      return true;
    }
    function renderTop() {
      const idOf = (p) => p.host_name || p.vm_name;
      if (!top.length) { tableBox.replaceChildren(el('p', { class: 'empty' }, 'No live process.')); return; }
      const tbody = el('tbody');
      for (const p of top) {
        const open = el('button', { type: 'button', class: 'link', 'aria-label': `${p.process_name} (pid ${p.pid ?? '–'}) on ${idOf(p)}: details` }, p.process_name);
        open.addEventListener('click', () => showProcess(p, open));
        const cells = [['cpu', p.cpu_usage_percent, pctU], ['memory', p.memory_usage_mb, mib], ['gpu', p.gpu_utilization_percent, pctU], ['power', p.power_consumption_watts, watts]]
          .map(([k, v, f]) => el('td', { 'data-key': k, 'data-value': v ?? '', class: k === by.value ? 'sorted' : null }, f(v)));
        tbody.append(el('tr', { 'data-process': `${idOf(p)}:${p.process_name}:${p.pid}` }, el('th', { scope: 'row' }, open),
          el('td', {}, p.pid ?? '–'), el('td', {}, idOf(p)), el('td', {}, p.user || '–'), ...cells, el('td', {}, grove.timeAgo(msOf(p.timestamp)))));
      }
      const head = ['Process', 'PID', kind.value === 'vm' ? 'VM' : 'Host', 'User', 'CPU', 'Memory', 'GPU', 'Power', 'Sample'];
      tableBox.replaceChildren(el('table', { class: 'configs top' }, el('caption', { class: 'sr-only' }, `Top processes by ${col()[1].toLowerCase()}`),
        el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { scope: 'col', 'aria-sort': h === col()[1] ? 'descending' : null }, h)))), tbody));
    }
    function window_() {
      const [secs, step, words] = RANGES[range.value];
      const to = Date.now();
      return { from: to - secs * 1000, to, step, stepMs: STEP_MS[step], words };
    }
    function drawTop() {
      const w = window_(), c = col();
      const five = top.slice(0, 5);
      return chart.draw(Object.assign(w, { unit: c[4], format: c[3],
        load: () => Promise.all(five.map(async (p) => ({ label: `${p.process_name} (${p.pid ?? '–'}, ${p.host_name || p.vm_name})`,
          points: await series(kind.value, p.host_name || p.vm_name, c[2], w.from, w.to, w.step, p) }))) }));
    }

    // ---- one process: what it is and its figures over time
    let shown = null, opener = null;
    const detailCharts = {};
    async function showProcess(p, from) {
      shown = p;
      opener = from;
      const id = p.host_name || p.vm_name;
      const facts = [['PID', p.pid], ['Parent PID', p.ppid], [kind.value === 'vm' ? 'VM' : 'Host', id], ['User', p.user], ['Command', p.command],
        ['Container', p.container_id], ['Control group', p.cgroup], ['Threads', p.threads], ['Resident memory', p.rss_bytes == null ? null : gb(p.rss_bytes)],
        ['GPU memory', p.gpu_memory_bytes == null ? null : gb(p.gpu_memory_bytes)], ['Cost per hour', p.cost_per_hour == null ? null : usd(p.cost_per_hour)]]
        .filter(([, v]) => v != null && v !== '');
      const close = el('button', { type: 'button' }, 'Close');
      close.addEventListener('click', () => { detail.hidden = true; charts.filter((x) => detail.contains(x.canvas)).forEach((x) => x.destroy()); shown = null; if (opener) opener.focus(); });
      for (const k of Object.keys(detailCharts)) delete detailCharts[k];
      detailCharts.use = timeChart(charts, `${p.process_name}: CPU and GPU`);
      detailCharts.power = timeChart(charts, `${p.process_name}: power`);
      detailCharts.memory = timeChart(charts, `${p.process_name}: memory`);
      detail.replaceChildren(el('div', { class: 'panel-head' }, el('h3', { id: 'mx-process-title', tabindex: '-1' }, `${p.process_name} on ${id}`), close),
        el('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))])),
        el('dl', { class: 'stats' }, figure('CPU', p.cpu_usage_percent, '% of one core', null, { key: 'cpu' }),
          figure('Memory', p.memory_usage_mb, 'MiB', null, { key: 'memory' }), figure('GPU', p.gpu_utilization_percent, '%', null, { key: 'gpu' }),
          figure('Power', p.power_consumption_watts, 'W', null, { key: 'power' })),
        el('h4', {}, 'CPU and GPU (%)'), detailCharts.use.node, el('h4', {}, 'Power (W)'), detailCharts.power.node,
        el('h4', {}, 'Memory (MiB)'), detailCharts.memory.node);
      detail.hidden = false;
      detail.querySelector('h3').focus();
      await drawDetail();
    }
    function drawDetail() {
      if (!shown) return null;
      const p = shown, id = p.host_name || p.vm_name, w = window_();
      const one = (m) => series(kind.value, id, m, w.from, w.to, w.step, p);
      return Promise.all([
        detailCharts.use.draw(Object.assign({}, w, { unit: 'Utilisation, %', format: pctU,
          load: async () => [{ label: 'CPU (% of one core)', points: await one('cpu_usage_percent') }, { label: 'GPU', points: await one('gpu_utilization_percent') }] })),
        detailCharts.power.draw(Object.assign({}, w, { unit: 'Power, W', format: watts, load: async () => [{ label: 'Power', points: await one('power_consumption_watts') }] })),
        detailCharts.memory.draw(Object.assign({}, w, { unit: 'Memory, MiB', format: mib, load: async () => [{ label: 'Memory', points: await one('memory_usage_mb') }] })),
      ]);
    }

    async function reload() { if (await loadTop()) await drawTop(); }
    kind.addEventListener('change', () => { machines(); subscribe(); reload(); });
    for (const c of [machine, by, limit]) c.addEventListener('change', reload);
    range.addEventListener('change', () => { drawTop(); drawDetail(); });
    // live: a sample from a machine in view refreshes the table and charts
    const refresh = throttle(() => { reload(); drawDetail(); }, 3000);
    function subscribe() {
      grove.live.unsubscribeAll();
      const s = SOURCES[kind.value];
      const ids = kind.value === 'vm' ? vms.map((v) => v.vm_name) : hosts.map((h) => h.host_name);
      for (const id of ids.slice(0, MAX_TOPICS))
        grove.live.subscribe(s.topic + id, () => { if (!machine.value || machine.value === id) refresh(); });
    }
    subscribe();
    await reload();
  }

  // ---------------- cost management (docs/matrix.md "Cost, energy and carbon")
  const PERIODS = { '1h': [3600, 6, 'last hour'], '24h': [86400, 12, 'last 24 hours'], '7d': [7 * 86400, 7, 'last 7 days'],
    '30d': [30 * 86400, 10, 'last 30 days'] };
  async function costs(root, ctx) {
    const status = loading('Loading hosts, VMs and the cost catalogue…');
    root.append(status);
    let cats;
    try {
      const [hosts, vms, regions, instances, hardware] = await Promise.all([grove.api(SOURCES.host.list), grove.api(SOURCES.vm.list),
        grove.api('/api/cost-models/regions'), grove.api('/api/cost-models'), grove.api('/api/hardware-specs')]);
      cats = { hosts, vms, gpus: hardware.filter((h) => h.kind === 'gpu'),
        regionOptions: regions.map((r) => [`${r.provider}/${r.region}`, `${r.provider} ${r.region} (${r.location})`]),
        instanceOptions: [...new Set(instances.map((i) => i.instance))].sort().map((i) => [i, i]) };
    } catch (e) {
      status.replaceWith(errorNode(e, 'Cannot load hosts, VMs and the cost catalogue'));
      return;
    }
    status.remove();
    const charts = [];
    ctx.onTheme = () => charts.forEach((c) => c.recolour());
    ctx.leave = () => charts.forEach((c) => c.destroy());
    // the charts of answers no longer shown
    const forget = () => { for (let i = charts.length - 1; i >= 0; i--) if (!charts[i].canvas.isConnected) { charts[i].destroy(); charts.splice(i, 1); } };
    costsByProcess(root, cats, charts, forget);
    costsByRegion(root, cats, charts, forget);
  }

  // by process and period: POST /api/costs/process-summary
  function costsByProcess(root, cats, charts, forget) {
    const { hosts, vms, regionOptions, instanceOptions } = cats;
    root.append(el('h2', {}, 'Cost by process and period'));
    const machines = [...hosts.map((h) => ['host', h.host_name, h.instance_type]), ...vms.map((v) => ['vm', v.vm_name, v.instance_type])];
    const procResults = el('section', { id: 'mx-costs-results', class: 'results', 'aria-label': 'Cost by process', 'aria-live': 'polite' });
    if (!machines.length) {
      root.append(noAgents());
    } else {
      const machine = select('machine', machines.map(([k, id]) => [`${k}:${id}`, `${k === 'host' ? 'Host' : 'VM'} ${id}`]));
      const period = select('period', Object.entries(PERIODS).map(([k, v]) => [k, v[2].replace(/^./, (c) => c.toUpperCase())]), '24h');
      const instance = select('instance_type', [['', 'None: priced by region'], ...instanceOptions]);
      const region = select('region', [['', 'The instance\'s region'], ...regionOptions]);
      const perHour = number('cost_per_hour', { min: 0, step: 'any', placeholder: 'the instance\'s price' });
      const prefill = () => { const m = machines.find(([k, id]) => `${k}:${id}` === machine.value); instance.value = (m && m[2] && instanceOptions.some((o) => o[0] === m[2])) ? m[2] : ''; };
      prefill();
      machine.addEventListener('change', prefill);
      const submit = el('button', { type: 'submit', class: 'primary' }, 'Show costs');
      const form = el('form', { id: 'mx-costs', class: 'mx-form', 'aria-label': 'Cost by process', novalidate: true },
        el('div', { class: 'form-grid' }, field('Host or VM', machine), field('Period', period),
          field('Instance type', instance, 'prefilled from what the agent reports'), field('Region', region, 'needed without an instance type'),
          field('Price per hour (US$)', perHour, 'optional: a negotiated price or owned hardware amortised')),
        el('div', { class: 'controls' }, submit));
      procResults.append(el('p', { class: 'muted empty' }, 'Choose a host or VM and a period: each process\'s cost, energy and carbon appear here, with the idle remainder.'));
      root.append(form, procResults);
      const body = (from, to) => {
        const [k, id] = machine.value.split(/:(.*)/s);
        const b = { from: new Date(from).toISOString(), to: new Date(to).toISOString(), [k === 'vm' ? 'vm' : 'host']: id };
        if (instance.value) b.instance_type = instance.value;
        if (region.value) [b.provider, b.region] = region.value.split('/');
        if (perHour.value !== '') b.cost_per_hour = Number(perHour.value);
        return b;
      };
      // the period also comes back in equal steps (timeline): cost over time
      submitting({ form, submit, payload: () => {
        const [secs, parts] = PERIODS[period.value];
        const to = Date.now();
        return Object.assign(body(to - secs * 1000, to), { step_s: secs / parts });
      } }, procResults, '/api/costs/process-summary', 'Pricing every process…', (b) => {
        forget();
        showProcessCosts(b.data);
        drawTimeline(b.data);
      }, 'Cannot price the processes');

      const periodChart = timeChart(charts, 'Cost over the period');
      function drawTimeline(d) {
        const steps = d.timeline || [];
        if (!steps.length) return;
        const [, parts, words] = PERIODS[period.value];
        const from = Date.parse(d.period.from), to = Date.parse(d.period.to);
        procResults.append(el('div', {}, el('h3', {}, 'Over the period'), periodChart.node));
        // a step without a sample of the host is a gap, not a zero
        const at = (x, v) => [Date.parse(x.to) * 1e6, x.host_hours ? v : null];
        periodChart.draw({ from, to, unit: 'Cost, US$', format: usd, stepMs: (to - from) / parts, words: `${words} in ${parts} steps`, per: 'its cost',
          load: async () => [{ label: 'Allocated to processes', points: steps.map((x) => at(x, x.allocated_cost)) },
            { label: 'Idle', points: steps.map((x) => at(x, x.idle_cost)) }] });
      }
    }

    function showProcessCosts(d) {
      const t = d.totals, pr = d.pricing;
      const idle = d.idle || {};
      const stats = el('dl', { class: 'stats', 'aria-label': 'Totals over the period' },
        figure('Cost', t.cost && t.cost.total, '', null, { key: 'cost', format: usd }),
        figure('Allocated to processes', t.allocated_cost, '', null, { key: 'allocated', format: usd }),
        figure('Idle', t.idle_cost, t.idle_percent == null ? '' : `(${num(t.idle_percent)} %)`, null, { key: 'idle', format: usd }),
        figure('Energy', t.energy_kwh, 'kWh', null, { key: 'energy' }),
        figure('Carbon', t.carbon_gco2e, 'g CO₂e', null, { key: 'carbon' }),
        figure('Host hours', t.host_hours, '', null, { key: 'hours' }));
      const where = el('p', { class: 'muted' }, `${d.scope.host || d.scope.vm}, ${num(d.period.hours)} h · ` +
        `${pr.instance_type || 'no instance'} ${pr.provider || ''} ${pr.region || ''} at ${usd(pr.cost_per_hour)}/h (${pr.cost_per_hour_source || '–'})` +
        ` · electricity ${usd(pr.electricity_usd_per_kwh)}/kWh${pr.electricity_billed ? '' : ' (in the price)'}, PUE ${num(pr.pue)}, ${num(pr.carbon_g_per_kwh)} g CO₂e/kWh · host power ${t.host_power}`);
      const procs = d.processes || [];
      const parts = [el('h3', {}, 'Totals'), stats, where];
      if (!procs.length) parts.push(el('p', { class: 'empty' }, 'No process ran on it in the period: all of its cost is idle.'));
      else {
        // a stacked bar per process (CPU, GPU, memory, electricity) and the idle remainder
        const rows = procs.slice(0, CHART_MAX);
        const canvas = el('canvas', { role: 'img', 'aria-label': 'Cost by process: ' + rows.slice(0, 5).map((p) => `${p.process_name} ${usd(p.cost.total)}`).join(', ') +
          (idle.cost ? `; idle ${usd(idle.cost.total)}` : '') });
        const box = el('div', { class: 'chart-box' }, canvas);
        box.style.height = Math.max(160, 26 * (rows.length + 1) + 90) + 'px';
        parts.push(el('h3', {}, 'By process'), box);
        grove.chart.load().then(() => {
          if (!canvas.isConnected) return;
          // the idle remainder is priced in the same parts (what no process used)
          const labels = [...rows.map((p) => `${p.process_name} (${p.pid ?? '–'})`), 'Idle (unallocated)'];
          const part = (k) => [...rows.map((p) => p.cost[k]), idle.cost ? idle.cost[k] : null];
          const c = barChart(canvas);
          c.set({ labels, unit: 'US$', stacked: true, datasets: [['cpu', 'CPU'], ['gpu', 'GPU'], ['ram', 'Memory'], ['electricity', 'Electricity']]
            .map(([k, l], i) => ({ label: l, data: part(k), backgroundColor: COLORS[i], borderColor: COLORS[i] })) });
          charts.push(c);
        }).catch(() => box.replaceWith(el('p', { class: 'muted' }, 'Charts are not available: this server has no Chart.js (libjs-chart.js).')));
        const tbody = el('tbody');
        for (const p of procs)
          tbody.append(el('tr', { 'data-process': `${p.process_name}:${p.pid}` }, el('th', { scope: 'row' }, p.process_name), el('td', {}, p.pid ?? '–'),
            el('td', {}, num(p.hours)), el('td', {}, num(p.cpu_core_hours)), el('td', {}, num(p.gpu_hours)), el('td', {}, num(p.memory_gib_hours)),
            el('td', {}, num(p.energy_kwh) + (p.estimated ? ' (modelled)' : '')), el('td', {}, num(p.carbon_gco2e)),
            ...['cpu', 'gpu', 'ram', 'electricity'].map((k) => el('td', {}, usd(p.cost[k]))),
            el('td', { 'data-key': 'total', 'data-value': p.cost.total ?? '' }, usd(p.cost.total)), el('td', {}, p.cost_share_percent == null ? '–' : num(p.cost_share_percent) + ' %')));
        tbody.append(el('tr', { 'data-process': 'idle', class: 'idle' }, el('th', { scope: 'row' }, 'Idle (not used by any process)'), el('td', {}, '–'),
          el('td', {}, '–'), el('td', {}, '–'), el('td', {}, '–'), el('td', {}, '–'), el('td', {}, num(idle.energy_kwh)), el('td', {}, num(idle.carbon_gco2e)),
          ...['cpu', 'gpu', 'ram', 'electricity'].map((k) => el('td', {}, usd(idle.cost && idle.cost[k]))),
          el('td', { 'data-key': 'total', 'data-value': idle.cost ? idle.cost.total : '' }, usd(idle.cost && idle.cost.total)), el('td', {}, t.idle_percent == null ? '–' : num(t.idle_percent) + ' %')));
        parts.push(el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Cost by process' },
          el('table', { class: 'configs costs' }, el('caption', { class: 'sr-only' }, 'Cost, energy and carbon by process, most costly first'),
            el('thead', {}, el('tr', {}, ...['Process', 'PID', 'Hours', 'CPU core-hours', 'GPU hours', 'Memory GiB-hours', 'Energy (kWh)', 'Carbon (g CO₂e)',
              'CPU', 'GPU', 'Memory', 'Electricity', 'Total', 'Share'].map((h) => el('th', { scope: 'col' }, h)))), tbody)));
      }
      parts.push(assumptionsList(d.assumptions));
      procResults.replaceChildren(...parts.filter(Boolean));
    }

  }

  // by region: GET /api/recommendations/cross-region, the same workload elsewhere
  function costsByRegion(root, cats, charts, forget) {
    const { gpus, regionOptions, instanceOptions } = cats;
    const hw = select('hardware', [['', 'From the instance type'], ...gpus.map((h) => [h.hardware_name, h.hardware_name])]);
    const count = number('gpu_count', { min: 1, step: 1, placeholder: '1' });
    const inst = select('instance_type', [['', 'None'], ...instanceOptions]);
    const hours = number('hours', { min: 0, step: 'any', placeholder: '730 (a month)' });
    const util = number('utilization', { min: 0, max: 1, step: 'any', placeholder: '1' });
    const current = select('region', [['', 'The instance\'s region'], ...regionOptions]);
    const submit = el('button', { type: 'submit', class: 'primary' }, 'Compare regions');
    const form = el('form', { id: 'mx-regions', class: 'mx-form', 'aria-label': 'Cost by region', novalidate: true },
      el('div', { class: 'form-grid' }, field('GPU', hw), field('GPUs', count), field('Or instance type', inst),
        field('Hours', hours), field('GPU utilisation (0–1)', util), field('Current region', current)), el('div', { class: 'controls' }, submit));
    const regResults = el('section', { id: 'mx-regions-results', class: 'results', 'aria-label': 'Cost by region', 'aria-live': 'polite' },
      el('p', { class: 'muted empty' }, 'Name a GPU (and how many) or an instance type: its cost and carbon in every catalogue region appear here, ranked.'));
    root.append(el('h2', {}, 'Cost by region'), form, regResults);
    let asked = 0;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const mine = ++asked;
      const q = new URLSearchParams();
      if (hw.value) q.set('hardware', hw.value);
      if (count.value !== '') q.set('gpu_count', count.value);
      if (inst.value) q.set('instance_type', inst.value);
      if (hours.value !== '') q.set('hours', hours.value);
      if (util.value !== '') q.set('utilization', util.value);
      if (current.value) { const [p, r] = current.value.split('/'); q.set('provider', p); q.set('region', r); }
      submit.disabled = true;
      attr(regResults, 'aria-busy', 'true');
      regResults.replaceChildren(loading('Comparing every region…'));
      try {
        const d = await grove.api('/api/recommendations/cross-region?' + q);
        if (mine === asked) { forget(); showRegions(d); }
      } catch (err) {
        if (mine === asked && err.message !== 'signed out') regResults.replaceChildren(errorNode(err, 'Cannot compare regions'));
      } finally {
        if (mine === asked) { submit.disabled = false; attr(regResults, 'aria-busy', null); }
      }
    });

    function showRegions(d) {
      const w = d.workload, cur = d.current;
      const byCost = d.ranked_by_cost || [], byCarbon = d.ranked_by_carbon || [];
      const detail = new Map((d.regions || []).map((r) => [`${r.provider}/${r.region}`, r]));
      const name = (r) => `${r.provider} ${r.region}`;
      const parts = [el('p', { class: 'summary' }, `${w.hardware || w.instance_type || 'The workload'}${w.gpu_count ? ' × ' + w.gpu_count : ''}, ${num(w.hours)} h at ` +
        `${num((w.utilization ?? 1) * 100)} % utilisation (${num(w.it_power_w)} W IT power), priced by ${w.basis}` +
        (cur ? ` · now in ${cur.provider} ${cur.region}: ${usd(cur.cost)}, ${num(cur.carbon_gco2e / 1000)} kg CO₂e` : ''))];
      if (!byCost.length && !byCarbon.length) parts.push(el('p', { class: 'empty' }, 'No region could be ranked.'));
      const chartOf = (list, value, unit, label) => {
        const canvas = el('canvas', { role: 'img', 'aria-label': `${label} by region: ` + list.slice(0, 5).map((r) => `${name(r)} ${num(value(r))}`).join(', ') });
        const box = el('div', { class: 'chart-box' }, canvas);
        box.style.height = Math.max(160, 26 * list.length + 80) + 'px';
        grove.chart.load().then(() => {
          if (!canvas.isConnected) return;
          const c = barChart(canvas);
          c.set({ labels: list.map((r) => name(r) + (r.current ? ' (current)' : '')), unit, datasets: [{ label, data: list.map(value),
            backgroundColor: list.map((r) => (r.current ? COLORS[3] : COLORS[0])), borderColor: COLORS[0] }] });
          charts.push(c);
        }).catch(() => box.replaceWith(el('p', { class: 'muted' }, 'Charts are not available: this server has no Chart.js (libjs-chart.js).')));
        return box;
      };
      const saving = (s, f) => (s == null || s.absolute == null ? '–' : `${f(s.absolute)} (${num(s.percent)} %)`);
      if (byCost.length) {
        const tbody = el('tbody');
        for (const r of byCost) {
          const x = detail.get(`${r.provider}/${r.region}`) || {};
          tbody.append(el('tr', { 'data-region': `${r.provider}/${r.region}`, class: r.current ? 'current' : null }, el('td', {}, num(r.rank)),
            el('th', { scope: 'row' }, name(r) + (r.current ? ' (current)' : '')), el('td', {}, x.location || '–'), el('td', {}, x.instance ? `${x.instances} × ${x.instance}` : '–'),
            el('td', { 'data-key': 'cost', 'data-value': r.cost }, usd(r.cost)), el('td', {}, saving(r.saving, usd)),
            el('td', {}, num(x.energy_kwh)), el('td', {}, x.carbon_gco2e == null ? '–' : num(x.carbon_gco2e / 1000))));
        }
        parts.push(el('h3', {}, 'Cheapest first'), chartOf(byCost, (r) => r.cost, 'US$', 'Cost'),
          el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Regions by cost' },
            el('table', { class: 'configs by-cost' }, el('caption', { class: 'sr-only' }, 'Regions by cost, cheapest first'),
              el('thead', {}, el('tr', {}, ...['Rank', 'Region', 'Location', 'Instances', 'Cost', 'Saving', 'Energy (kWh)', 'Carbon (kg CO₂e)'].map((h) => el('th', { scope: 'col' }, h)))), tbody)));
      }
      if (byCarbon.length) {
        const tbody = el('tbody');
        for (const r of byCarbon)
          tbody.append(el('tr', { 'data-region': `${r.provider}/${r.region}`, class: r.current ? 'current' : null }, el('td', {}, num(r.rank)),
            el('th', { scope: 'row' }, name(r) + (r.current ? ' (current)' : '')), el('td', { 'data-key': 'carbon', 'data-value': r.carbon_gco2e }, num(r.carbon_gco2e / 1000)),
            el('td', {}, saving(r.saving && { absolute: r.saving.absolute == null ? null : r.saving.absolute / 1000, percent: r.saving.percent }, num))));
        parts.push(el('h3', {}, 'Least carbon first'), chartOf(byCarbon, (r) => r.carbon_gco2e / 1000, 'kg CO₂e', 'Carbon'),
          el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Regions by carbon' },
            el('table', { class: 'configs by-carbon' }, el('caption', { class: 'sr-only' }, 'Regions by carbon, least first'),
              el('thead', {}, el('tr', {}, ...['Rank', 'Region', 'Carbon (kg CO₂e)', 'Saving (kg CO₂e)'].map((h) => el('th', { scope: 'col' }, h)))), tbody)));
      }
      if ((d.not_ranked_by_cost || []).length)
        parts.push(el('details', { class: 'excluded' }, el('summary', {}, `Not ranked by cost: ${d.not_ranked_by_cost.length} region${d.not_ranked_by_cost.length === 1 ? '' : 's'}, and why`),
          el('ul', {}, ...d.not_ranked_by_cost.map((r) => el('li', {}, el('strong', {}, name(r)), ': ', r.reason)))));
      regResults.replaceChildren(...parts);
    }
  }

  // ================================================================
  // The page: a tab per view, the view at #/matrix/<view>
  // ================================================================
  const VIEWS = [
    { id: 'optimizer', title: 'Workload optimizer', show: optimizer },
    { id: 'dashboard', title: 'Admin dashboard', show: dashboard },
    { id: 'processes', title: 'Process monitor', show: processes },
    { id: 'costs', title: 'Cost management', show: costs },
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
