// flow.js — the air-quality page: stations as tiles (worst first) or on a
// map, coloured by AQI category and saying how old their data is; the
// regions' 10-minute AQI beside their worst station; alerts that can be
// filtered and opened; a station's panel with its latest readings, its
// alerts, its place on the map and its chart (Chart.js, from Debian's
// libjs-chart.js, served by grove at /javascript/chart.js/). Kept current by
// the live topics (flow/regions/*, flow/stations/*, flow/alerts).
'use strict';

(function () {
  const el = grove.el, text = grove.text, attr = grove.attr;

  // Pollutants as people read them, with the units readings are in
  // (docs/flow.md; src/apps/flow/ask.c names them the same).
  const POLLUTANTS = {
    pm25: { short: 'PM2.5', name: 'Fine particles (PM2.5)', unit: 'µg/m³', digits: 1 },
    pm10: { short: 'PM10', name: 'Coarse particles (PM10)', unit: 'µg/m³', digits: 0 },
    o3: { short: 'Ozone', name: 'Ozone (O₃)', unit: 'ppm', digits: 3 },
    no2: { short: 'NO₂', name: 'Nitrogen dioxide (NO₂)', unit: 'ppb', digits: 0 },
    co: { short: 'CO', name: 'Carbon monoxide (CO)', unit: 'ppm', digits: 1 },
    so2: { short: 'SO₂', name: 'Sulphur dioxide (SO₂)', unit: 'ppb', digits: 0 },
  };
  const pollutantOf = (k) => POLLUTANTS[k] || POLLUTANTS[String(k).replace(/_.*$/, '')] || { short: k, name: k, unit: '' };

  // The US EPA categories: AQI ranges, colours and the EPA's cautionary
  // statements (the same texts as src/apps/flow/ask.c gives in answers).
  const CATEGORIES = [
    { name: 'Good', lo: 0, hi: 50, color: '#00E400', icon: '●',
      advice: 'Air quality is satisfactory; it is a good time to be active outside.' },
    { name: 'Moderate', lo: 51, hi: 100, color: '#FFFF00', icon: '◆',
      advice: 'Unusually sensitive people should consider reducing prolonged or heavy exertion outdoors.' },
    { name: 'Unhealthy for Sensitive Groups', lo: 101, hi: 150, color: '#FF7E00', icon: '▲',
      advice: 'People with heart or lung disease, older adults, children and teenagers, and people who are active outdoors should reduce prolonged or heavy exertion.' },
    { name: 'Unhealthy', lo: 151, hi: 200, color: '#FF0000', icon: '■',
      advice: 'Everyone should reduce prolonged or heavy exertion outdoors; sensitive groups should avoid it.' },
    { name: 'Very Unhealthy', lo: 201, hi: 300, color: '#8F3F97', icon: '✖',
      advice: 'Everyone should avoid prolonged or heavy exertion outdoors; sensitive groups should avoid all physical activity outside.' },
    { name: 'Hazardous', lo: 301, hi: 500, color: '#7E0023', icon: '☠',
      advice: 'Everyone should avoid all physical activity outdoors and stay inside with windows closed.' },
  ];
  const levelOfName = (n) => CATEGORIES.findIndex((c) => c.name === n);
  const levelOfAqi = (i) => (i == null ? -1 : i <= 50 ? 0 : i <= 100 ? 1 : i <= 150 ? 2 : i <= 200 ? 3 : i <= 300 ? 4 : 5);

  // EPA breakpoints (concentration low, high per category), as
  // src/apps/flow/aqi.c has them: 2024 PM2.5, 8-hour ozone then 1-hour.
  const BREAKS = {
    pm25: [[0, 9], [9.1, 35.4], [35.5, 55.4], [55.5, 125.4], [125.5, 225.4], [225.5, 325.4]],
    pm10: [[0, 54], [55, 154], [155, 254], [255, 354], [355, 424], [425, 604]],
    o3: [[0, 0.054], [0.055, 0.070], [0.071, 0.085], [0.086, 0.105], [0.106, 0.200], [0.405, 0.604]],
    co: [[0, 4.4], [4.5, 9.4], [9.5, 12.4], [12.5, 15.4], [15.5, 30.4], [30.5, 50.4]],
    so2: [[0, 35], [36, 75], [76, 185], [186, 304], [305, 604], [605, 1004]],
    no2: [[0, 53], [54, 100], [101, 360], [361, 649], [650, 1249], [1250, 2049]],
  };
  const PLACES = { pm25: 1, pm10: 0, o3: 3, co: 1, so2: 0, no2: 0 };
  // the index of a concentration: truncation, then linear within its
  // segment (EPA Technical Assistance Document, equation 1)
  function aqiOf(p, c) {
    if (c == null || !(c >= 0)) return null;
    const scale = 10 ** PLACES[p], t = Math.floor(c * scale + 1e-9) / scale, b = BREAKS[p];
    for (let i = 0; i < b.length; i++) {
      const [lo, hi] = b[i], cat = CATEGORIES[i];
      if (t <= hi + 1e-9) return Math.max(cat.lo, Math.round((cat.hi - cat.lo) / (hi - lo) * (t - lo) + cat.lo));
    }
    return 500;
  }

  const RANGES = { '1h': [3600, '10s', 'last hour'], '6h': [6 * 3600, '1m', 'last 6 hours'],
    '24h': [86400, '5m', 'last 24 hours'], '3d': [3 * 86400, '15m', 'last 3 days'], '7d': [7 * 86400, '1h', 'last 7 days'] };
  const STEP_MS = { '10s': 1e4, '1m': 6e4, '5m': 3e5, '15m': 9e5, '1h': 36e5 };
  const MAX_LIVE_TOPICS = 60; // a connection may hold 64 (--live-max-topics); the rest refresh every 30 s
  const SERIES_COLORS = ['#0969da', '#8250df', '#bf3989', '#1b7c83', '#953800', '#57606a'];

  const ms = (ns) => (ns == null ? null : Math.round(ns / 1e6));
  const fmt = (v, digits) => (v == null ? '–' : Number(v).toFixed(digits ?? 1));
  const byName = (a, b) => String(a.name).localeCompare(String(b.name));

  // ---- the chart: Chart.js, loaded when a chart is first wanted
  const CHART_JS = '/javascript/chart.js/chart.min.js';
  const css = (n) => getComputedStyle(document.documentElement).getPropertyValue(n).trim();

  // The EPA category bands behind the lines: in AQI units, or in the
  // pollutant's own breakpoints when concentrations are shown.
  const bandsPlugin = {
    id: 'bands',
    beforeDatasetsDraw(chart, args, opts) {
      const bands = opts && opts.bands;
      if (!bands) return;
      const { ctx, chartArea: a, scales: { y } } = chart;
      ctx.save();
      const alpha = document.documentElement.dataset.theme === 'dark' ? '38' : '2e';
      for (const b of bands) {
        if (b.lo > y.max || b.hi < y.min) continue;
        const top = y.getPixelForValue(Math.min(b.hi, y.max)), bottom = y.getPixelForValue(Math.max(b.lo, y.min));
        ctx.fillStyle = b.color + alpha;
        ctx.fillRect(a.left, top, a.right - a.left, bottom - top);
      }
      ctx.restore();
    },
  };

  // The points with a gap (or the end) on both sides: a line cannot show
  // them, so they are drawn as dots.
  function isolated(d) {
    const out = [];
    for (let i = 0; i < d.length; i++)
      if (d[i].y != null && (i === 0 || d[i - 1].y == null) && (i === d.length - 1 || d[i + 1].y == null)) out.push(d[i]);
    return out;
  }

  // Ticks at round local times (every 1, 2, 5, 10, 15 or 30 minutes, 1,
  // 2, 3, 6 or 12 hours, or days), about six across the axis.
  const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440].map((m) => m * 60000);
  function timeTicks(scale) {
    const min = scale.min, max = scale.max;
    const step = TICK_STEPS.find((s) => (max - min) / s <= 7) || 1440 * 60000;
    const midnight = new Date(min);
    midnight.setHours(0, 0, 0, 0);
    const base = midnight.getTime();
    const ticks = [];
    for (let t = base + Math.ceil((min - base) / step) * step; t <= max && ticks.length < 50; t += step) ticks.push({ value: t });
    scale.ticks = ticks;
  }

  function tickFormat(span) {
    const o = span <= 36 * 3600e3 ? { hour: '2-digit', minute: '2-digit' }
      : { weekday: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };
    return (v) => new Date(v).toLocaleString([], o);
  }

  // Points [[ns, value|null]…] to Chart.js's {x: ms, y}, with a null
  // where readings are missing for longer than 1.5 steps so the line
  // breaks there instead of bridging the gap.
  function toXY(points, stepMs, map) {
    const out = [];
    let prev = null;
    for (const [t, v] of points) {
      const x = t / 1e6;
      if (prev != null && x - prev > 1.5 * stepMs) out.push({ x: prev + stepMs, y: null });
      out.push({ x, y: v == null ? null : map ? map(v) : v });
      prev = x;
    }
    return out;
  }

  // A chart on a canvas: series [{label, points:[{x,y}], color}], from/to
  // in ms, unit (the value axis's title), bands. Returns an object whose
  // set() redraws with new series or options without a new chart.
  function chartOn(canvas) {
    let chart = null;
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local';
    function colours() {
      return { fg: css('--fg'), muted: css('--muted'), grid: css('--line') };
    }
    function options(o) {
      const c = colours();
      return {
        animation: false, parsing: false, normalized: true, responsive: true, maintainAspectRatio: false,
        spanGaps: false,
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        // no per-point options (they would cost a call a point): points
        // alone between gaps are drawn by a companion dataset of dots
        elements: { point: { radius: 0, hitRadius: 6, hoverRadius: 4 }, line: { borderWidth: 2, tension: 0 } },
        scales: {
          x: { type: 'linear', min: o.from, max: o.to, afterBuildTicks: timeTicks,
            ticks: { callback: tickFormat(o.to - o.from), maxRotation: 0, autoSkipPadding: 18, color: c.fg },
            grid: { color: c.grid }, title: { display: true, text: `Time (${tz})`, color: c.fg } },
          y: { beginAtZero: true, ticks: { color: c.fg }, grid: { color: c.grid },
            title: { display: true, text: o.unit, color: c.fg } },
        },
        plugins: {
          legend: { display: o.series.length > 1, labels: { color: c.fg, filter: (item, data) => !data.datasets[item.datasetIndex].dots } },
          decimation: { enabled: true, algorithm: 'min-max' },
          tooltip: { callbacks: {
            title: (items) => (items.length ? grove.when(items[0].parsed.x) : ''),
            label: (it) => `${it.dataset.label}: ${o.format ? o.format(it.parsed.y) : it.parsed.y}`,
          } },
          bands: { bands: o.bands },
        },
      };
    }
    return {
      set(o) {
        const datasets = o.series.map((s) => ({ label: s.label, data: s.points, borderColor: s.color,
          backgroundColor: s.color, indexAxis: 'x' }));
        o.series.forEach((s) => {
          const alone = isolated(s.points);
          if (alone.length) datasets.push({ label: s.label, data: alone, dots: true, showLine: false, pointRadius: 3,
            borderColor: s.color, backgroundColor: s.color, indexAxis: 'x' });
        });
        if (!chart) {
          chart = new Chart(canvas, { type: 'line', data: { datasets }, options: options(o), plugins: [bandsPlugin] });
        } else {
          chart.data.datasets = datasets;
          chart.options = options(o);
          chart.update('none');
        }
        this.last = o;
      },
      recolour() { if (chart && this.last) this.set(this.last); },
      chart: () => chart,
      destroy() { if (chart) chart.destroy(); chart = null; },
    };
  }

  // For bench/console: draws points [[ns, v]…] from..to (ns) on a canvas.
  async function draw(canvas, points, from, to) {
    await grove.script(CHART_JS);
    if (!canvas.grovechart) canvas.grovechart = chartOn(canvas);
    canvas.grovechart.set({ from: from / 1e6, to: to / 1e6, unit: 'µg/m³',
      series: [{ label: 'bench', color: SERIES_COLORS[0], points: toXY(points, 1e4) }], bands: bandsFor('pm25', false) });
  }
  grove.chart = { draw, load: () => grove.script(CHART_JS), chartOn, toXY };

  function bandsFor(p, asAqi) {
    return CATEGORIES.map((c, i) => ({ color: c.color,
      lo: asAqi ? (i ? CATEGORIES[i - 1].hi : 0) : (i ? BREAKS[p][i - 1][1] : 0),
      hi: asAqi ? c.hi : BREAKS[p][i][1] }));
  }

  // ---- a map of the stations: positions on a plain SVG of their extent
  // (no tile server is reachable), coloured by category
  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs = {}, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) if (v != null) e.setAttribute(k, v);
    for (const c of children) if (c != null) e.append(c.nodeType ? c : String(c));
    return e;
  }
  function drawMap(host, list, opts) {
    const placed = list.filter((s) => typeof s.lat === 'number' && typeof s.lon === 'number');
    const W = 800, H = opts.small ? 300 : 480, pad = 30;
    if (!placed.length) {
      host.replaceChildren(el('p', { class: 'muted' }, 'No station has coordinates yet: register them with lat and lon.'));
      return;
    }
    let x0 = Math.min(...placed.map((s) => s.lon)), x1 = Math.max(...placed.map((s) => s.lon));
    let y0 = Math.min(...placed.map((s) => s.lat)), y1 = Math.max(...placed.map((s) => s.lat));
    if (x1 - x0 < 1e-6) { x0 -= 0.01; x1 += 0.01; }
    if (y1 - y0 < 1e-6) { y0 -= 0.01; y1 += 0.01; }
    const k = Math.cos(((y0 + y1) / 2) * Math.PI / 180); // degrees of longitude are shorter away from the equator
    const sx = (W - 2 * pad) / ((x1 - x0) * k), sy = (H - 2 * pad) / (y1 - y0), scale = Math.min(sx, sy);
    const ox = (W - (x1 - x0) * k * scale) / 2, oy = (H - (y1 - y0) * scale) / 2;
    const px = (s) => ox + (s.lon - x0) * k * scale, py = (s) => H - oy - (s.lat - y0) * scale;
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'map', role: opts.small ? 'img' : 'group',
      'aria-label': opts.label });
    root.append(svg('rect', { x: 0, y: 0, width: W, height: H, class: 'map-bg' }));
    const order = placed.slice().sort((a, b) => (a.id === opts.highlight) - (b.id === opts.highlight));
    for (const s of order) {
      const lvl = s.level ?? levelOfName(s.category), hl = s.id === opts.highlight;
      const fill = s.stale || lvl < 0 ? '#9aa1a9' : CATEGORIES[lvl].color;
      const g = svg('g', { class: 'dot' + (s.stale ? ' stale' : '') + (hl ? ' here' : ''), 'data-station': s.id });
      g.append(svg('circle', { cx: px(s), cy: py(s), r: hl ? 13 : opts.small ? 7 : 10, fill }));
      if (!opts.small || hl)
        g.append(svg('text', { x: px(s) + 14, y: py(s) + 4 }, s.name));
      if (!opts.small) {
        g.setAttribute('tabindex', '0');
        g.setAttribute('role', 'button');
        g.setAttribute('aria-label', opts.describe(s));
        g.addEventListener('click', () => opts.open(s.id, g));
        g.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); opts.open(s.id, g); } });
      }
      root.append(g);
    }
    const missing = list.length - placed.length;
    host.replaceChildren(root, missing ? el('p', { class: 'muted' }, `${missing} station${missing > 1 ? 's have' : ' has'} no coordinates and ${missing > 1 ? 'are' : 'is'} not on the map.`) : '');
  }

  grove.pages.flow = async function (root) {
    const stations = new Map(), regions = new Map(), alerts = [], tiles = new Map(), rows = new Map();
    let refresh = null, opener = null, panelStation = null, chart = null, chartTimer = null;
    const compare = [];
    const alertIds = new Set();

    // ---- the page's parts
    const summaryText = el('span');
    const updated = grove.timeAgo(null, 'updated ');
    const summary = el('p', { class: 'summary' }, summaryText, updated);
    const legend = el('details', { class: 'legend' }, el('summary', {}, 'What the colours and numbers mean'),
      el('p', {}, 'The Air Quality Index (AQI, US EPA) turns each pollutant\'s concentration into one scale from 0 to 500; ' +
        'a station shows the highest of its pollutants, averaged over the last 10 minutes.'),
      el('table', { class: 'cats' }, el('caption', { class: 'sr-only' }, 'AQI categories and health advice'),
        el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Category'), el('th', { scope: 'col' }, 'AQI'),
          el('th', { scope: 'col' }, 'What to do'))),
        el('tbody', {}, ...CATEGORIES.map((c, i) => el('tr', { 'data-level': i },
          el('th', { scope: 'row' }, el('span', { class: 'badge', 'data-level': i },
            el('span', { 'aria-hidden': 'true' }, c.icon + ' '), c.name)),
          el('td', {}, `${c.lo}–${c.hi}`), el('td', {}, c.advice))))),
      el('p', {}, 'Pollutants: ', ...Object.values(POLLUTANTS).flatMap((p, i) => [i ? '; ' : '', `${p.name} in ${p.unit}`]), '. ' +
        'µg/m³ is micrograms per cubic metre; ppm and ppb are parts per million and per billion. ' +
        'A station is stale when it has sent nothing for a while: its last values are greyed and not current.'));

    const search = el('input', { type: 'search', id: 'station-search', placeholder: 'name, id or region', autocomplete: 'off' });
    const sort = el('select', { id: 'station-sort' },
      el('option', { value: 'worst' }, 'Worst first'), el('option', { value: 'best' }, 'Best first'),
      el('option', { value: 'name' }, 'Name'), el('option', { value: 'region' }, 'Region'),
      el('option', { value: 'seen' }, 'Last reading'));
    const viewTiles = el('button', { type: 'button', 'aria-pressed': 'true', 'data-view': 'tiles' }, 'Tiles');
    const viewMap = el('button', { type: 'button', 'aria-pressed': 'false', 'data-view': 'map' }, 'Map');
    const grid = el('ul', { class: 'grid', 'aria-label': 'Stations' });
    const mapHost = el('div', { class: 'map-host', hidden: true });
    const shown = el('p', { class: 'muted', id: 'shown' });
    const regionBody = el('tbody');
    const alertRegion = el('select', { id: 'alert-region' }, el('option', { value: '' }, 'All regions'));
    const alertLevel = el('select', { id: 'alert-level' }, el('option', { value: '-1' }, 'Any severity'),
      ...CATEGORIES.slice(1).map((c, i) => el('option', { value: String(i + 1) }, `${c.name} or worse`)));
    const alertList = el('ul', { id: 'alerts', tabindex: '0', 'aria-label': 'Alerts, newest first' });
    const alertNone = el('p', { class: 'muted', hidden: true }, 'No alerts match.');

    root.append(el('h1', { tabindex: '-1' }, 'Air quality'), summary, legend,
      el('div', { class: 'cols' },
        el('section', { 'aria-labelledby': 'stations-title' },
          el('h2', { id: 'stations-title' }, 'Stations'),
          el('div', { class: 'controls' },
            el('label', {}, 'Find ', search), el('label', {}, 'Sort ', sort),
            el('span', { role: 'group', 'aria-label': 'View', class: 'seg' }, viewTiles, viewMap)),
          shown, grid, mapHost),
        el('div', {},
          el('section', { 'aria-labelledby': 'regions-title' },
            el('h2', { id: 'regions-title' }, 'Regions'),
            el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Regions table' },
              el('table', {}, el('caption', { class: 'sr-only' }, 'Regions: 10-minute AQI and their worst station'),
                el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Region'), el('th', { scope: 'col' }, 'AQI (mean)'),
                  el('th', { scope: 'col' }, 'Worst station'), el('th', { scope: 'col' }, 'Main pollutant'),
                  el('th', { scope: 'col' }, 'Stations'))), regionBody))),
          el('section', { 'aria-labelledby': 'alerts-title' },
            el('h2', { id: 'alerts-title' }, 'Alerts'),
            el('div', { class: 'controls' }, el('label', {}, 'Region ', alertRegion), el('label', {}, 'Severity ', alertLevel)),
            alertList, alertNone))));

    // ---- the station panel: a dialog that takes focus, closes with its
    // button or Escape, and gives focus back to what opened it
    const panelTitle = el('h2', { id: 'panel-title' });
    const panelSub = el('p', { class: 'muted' });
    const readingsBody = el('tbody');
    const pollutant = el('select', { id: 'chart-pollutant' }, ...Object.entries(POLLUTANTS).map(([k, v]) => el('option', { value: k }, v.name)));
    const range = el('select', { id: 'chart-range' }, ...Object.entries(RANGES).map(([k, v]) => el('option', { value: k }, v[2])));
    const measure = el('select', { id: 'chart-measure' }, el('option', { value: 'aqi' }, 'AQI'), el('option', { value: 'conc' }, 'Concentration'));
    const compareWith = el('select', { id: 'compare-with' });
    const compareAdd = el('button', { type: 'button', id: 'compare-add' }, 'Compare');
    const compareList = el('ul', { class: 'chips', 'aria-label': 'Compared stations' });
    const canvas = el('canvas', { role: 'img', 'aria-label': 'Chart' });
    const chartNote = el('p', { class: 'muted', id: 'chart-note' });
    const panelAlerts = el('ul', { class: 'panel-alerts', tabindex: '0', 'aria-label': 'This station\'s alerts' });
    const panelMap = el('div', { class: 'mini-map' });
    const closeBtn = el('button', { type: 'button', class: 'close', 'aria-label': 'Close' }, '✕ Close');
    const panel = el('dialog', { id: 'station-panel', 'aria-labelledby': 'panel-title' },
      el('div', { class: 'panel-head' }, el('div', {}, panelTitle, panelSub), closeBtn),
      el('h3', {}, 'Latest readings'),
      el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Latest readings' },
        el('table', {}, el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Pollutant'), el('th', { scope: 'col' }, 'Latest'),
          el('th', { scope: 'col' }, '10-minute mean'), el('th', { scope: 'col' }, 'AQI'), el('th', { scope: 'col' }, 'At'))), readingsBody)),
      el('h3', {}, 'Chart'),
      el('div', { class: 'controls' }, el('label', {}, 'Pollutant ', pollutant), el('label', {}, 'Range ', range),
        el('label', {}, 'Show ', measure), el('label', {}, 'Add a station ', compareWith), compareAdd),
      compareList,
      el('div', { class: 'chart-box' }, canvas), chartNote,
      el('div', { class: 'cols2' },
        el('div', {}, el('h3', {}, 'Alerts'), panelAlerts),
        el('div', {}, el('h3', {}, 'On the map'), panelMap)));
    root.append(panel);
    closeBtn.addEventListener('click', () => panel.close());
    panel.addEventListener('close', () => {
      panelStation = null;
      compare.length = 0;
      clearTimeout(chartTimer);
      if (opener && opener.isConnected) opener.focus();
      else { const t = opener && tiles.get(opener.dataset.station); if (t) t.btn.focus(); }
    });

    // ---- words
    function stateWords(s) {
      if (s.aqi == null) return 'no AQI yet';
      const w = `AQI ${s.aqi}, ${s.category}`;
      return s.stale ? `stale: last ${w}, last reading ${s.last_seen ? grove.ago(ms(s.last_seen)) : 'long ago'}` : w;
    }
    const describe = (s) => `${s.name}, ${stateWords(s)}, region ${s.region}. Open its details.`;
    const nameOf = (id) => (stations.get(id) || { name: id }).name;

    // ---- tiles: made once per station, then only what changed is written
    function makeTile(id) {
      const btn = el('button', { type: 'button', class: 'tile', 'data-station': id });
      // its name is what it shows (with words for screen readers where
      // the eye needs none), so what is seen is what is heard
      const t = { btn, name: el('span', { class: 'name' }), aqi: el('span', { class: 'aqi' }),
        cat: el('span', { class: 'cat' }), region: el('span', { class: 'region' }),
        stale: el('span', { class: 'stale-label' }, 'Stale'), seen: grove.timeAgo(null, 'reading ') };
      btn.append(t.name, el('span', { class: 'sr-only' }, ' AQI '), t.aqi, t.cat,
        el('span', { class: 'sr-only' }, ' region '), t.region, t.stale, t.seen);
      btn.addEventListener('click', () => openPanel(id, btn));
      t.li = el('li', {}, btn);
      return t;
    }
    function renderTile(s) {
      let t = tiles.get(s.id);
      if (!t) { t = makeTile(s.id); tiles.set(s.id, t); grid.append(t.li); }
      const lvl = s.aqi == null ? -1 : s.level ?? levelOfName(s.category);
      text(t.name, s.name);
      text(t.aqi, s.aqi ?? '–');
      text(t.cat, s.aqi == null ? 'no AQI yet' : s.stale ? 'was ' + s.category : s.category);
      text(t.region, s.region);
      attr(t.stale, 'hidden', !s.stale);
      grove.setAgo(t.seen, ms(s.last_seen));
      attr(t.btn, 'data-level', s.stale ? null : lvl < 0 ? null : lvl);
      attr(t.btn, 'class', 'tile' + (s.stale ? ' stale' : ''));
    }

    function sortKey(mode) {
      const fresh = (s) => (s.stale ? 1 : 0);
      switch (mode) {
        case 'best': return (a, b) => fresh(a) - fresh(b) || (a.aqi ?? 1e9) - (b.aqi ?? 1e9) || byName(a, b);
        case 'name': return byName;
        case 'region': return (a, b) => String(a.region).localeCompare(b.region) || byName(a, b);
        case 'seen': return (a, b) => (b.last_seen || 0) - (a.last_seen || 0) || byName(a, b);
        default: return (a, b) => fresh(a) - fresh(b) || (b.aqi ?? -1) - (a.aqi ?? -1) || byName(a, b);
      }
    }
    // Puts tiles in order by moving only those out of place; the focused
    // tile keeps focus and selected text stays selected (moving a node
    // would otherwise drop both).
    function arrange() {
      const list = [...stations.values()].sort(sortKey(sort.value));
      const q = search.value.trim().toLowerCase();
      const active = document.activeElement;
      const sel = getSelection();
      const kept = sel.rangeCount && grid.contains(sel.anchorNode)
        ? [sel.anchorNode, sel.anchorOffset, sel.focusNode, sel.focusOffset] : null;
      let n = 0;
      list.forEach((s, i) => {
        const t = tiles.get(s.id);
        if (!t) return;
        const hit = !q || [s.name, s.id, s.region].some((v) => String(v).toLowerCase().includes(q));
        attr(t.li, 'hidden', !hit);
        if (hit) n++;
        if (grid.children[i] !== t.li) grid.insertBefore(t.li, grid.children[i] || null);
      });
      if (active && active !== document.activeElement && active.isConnected) active.focus({ preventScroll: true });
      // and a selection in a moved tile is put back as it was
      if (kept && kept[0].isConnected && kept[2].isConnected &&
          (sel.anchorNode !== kept[0] || sel.focusNode !== kept[2] || sel.anchorOffset !== kept[1] || sel.focusOffset !== kept[3]))
        sel.setBaseAndExtent(...kept);
      text(shown, q ? `${n} of ${stations.size} stations match “${search.value.trim()}”.` : '');
      if (!mapHost.hidden) {
        // the map is drawn again; a focused dot is focused again
        const dot = mapHost.contains(active) && active.dataset.station;
        drawMap(mapHost, list.filter((s) => !q || [s.name, s.id, s.region].some((v) => String(v).toLowerCase().includes(q))),
          { label: 'Map of the stations', describe, open: openPanel });
        const again = dot && mapHost.querySelector(`g.dot[data-station="${CSS.escape(dot)}"]`);
        if (again) again.focus({ preventScroll: true });
      }
    }
    let arrangePending = false;
    const arrangeSoon = () => {
      if (arrangePending) return;
      arrangePending = true;
      requestAnimationFrame(() => { arrangePending = false; arrange(); });
    };

    function renderSummary() {
      const all = [...stations.values()];
      const stale = all.filter((s) => s.stale).length;
      const fresh = all.filter((s) => !s.stale && s.aqi != null).sort((a, b) => b.aqi - a.aqi);
      const parts = [`${all.length} station${all.length === 1 ? '' : 's'}`];
      if (stale) parts.push(`${stale} stale (no recent reading)`);
      if (fresh.length) parts.push(`worst now: ${fresh[0].name}, AQI ${fresh[0].aqi} ${fresh[0].category}`);
      const newest = Math.max(0, ...all.map((s) => s.last_seen || 0));
      text(summaryText, parts.join(' · ') + (newest ? ' · ' : ''));
      grove.setAgo(updated, newest ? ms(newest) : null);
    }

    // ---- regions: their 10-minute mean beside their worst station
    function renderRegion(r) {
      let row = rows.get(r.name);
      if (!row) {
        row = { tr: el('tr', { 'data-region': r.name }), name: el('th', { scope: 'row' }), aqi: el('td'),
          worst: el('td'), main: el('td'), count: el('td') };
        row.aqiText = el('span');
        row.aqiWhen = grove.timeAgo(null);
        row.aqi.append(el('span', { class: 'badge' }, row.aqiText), ' ', row.aqiWhen);
        row.worstText = el('button', { type: 'button', class: 'link' });
        row.worstText.addEventListener('click', () => row.worstId && openPanel(row.worstId, row.worstText));
        row.worst.append(row.worstText);
        row.tr.append(row.name, row.aqi, row.worst, row.main, row.count);
        rows.set(r.name, row);
        const ordered = [...rows.keys()].sort();
        regionBody.insertBefore(row.tr, (rows.get(ordered[ordered.indexOf(r.name) + 1]) || {}).tr || null);
        alertRegion.append(el('option', { value: r.name }, r.name));
      }
      const lvl = r.aqi == null ? -1 : r.level ?? levelOfName(r.category);
      text(row.name, r.name);
      text(row.aqiText, r.aqi == null ? 'no AQI yet' : r.stale ? `stale: last ${r.aqi} ${r.category}` : `${r.aqi} ${r.category}`);
      attr(row.aqiText.parentNode, 'data-level', lvl < 0 || r.stale ? null : lvl);
      grove.setAgo(row.aqiWhen, r.window ? ms(r.window.end) : null);
      text(row.main, r.dominant ? pollutantOf(r.dominant).name : '–');
      text(row.count, r.stale_stations ? `${r.stations} (${r.stale_stations} stale)` : r.stations ?? 0);
      const worst = [...stations.values()].filter((s) => s.region === r.name && !s.stale && s.aqi != null)
        .sort((a, b) => b.aqi - a.aqi)[0];
      row.worstId = worst ? worst.id : null;
      text(row.worstText, worst ? `${worst.name}: ${worst.aqi} ${worst.category}` : '–');
      attr(row.worstText, 'data-level', worst ? worst.level ?? levelOfName(worst.category) : null);
      attr(row.worstText, 'disabled', !worst);
    }
    const renderRegions = () => { for (const r of regions.values()) renderRegion(r); };

    // ---- alerts: names, severity by colour, icon and words; open the station
    function alertNode(a) {
      const lvl = levelOfName(a.to), cat = CATEGORIES[lvl] || { icon: '?', name: a.to };
      const worse = levelOfName(a.from) < lvl;
      const who = a.kind === 'station' ? nameOf(a.subject) : `Region ${a.subject}`;
      const b = el('button', { type: 'button', class: 'alert', 'data-subject': a.subject, 'data-kind': a.kind },
        el('span', { class: 'badge', 'data-level': lvl }, el('span', { 'aria-hidden': 'true' }, cat.icon + ' '), cat.name),
        ' ', el('strong', {}, who), a.kind === 'station' ? ` (${a.region})` : '',
        el('span', { class: 'what' }, `${worse ? 'worse' : 'better'}: ${a.from || 'no category'} → ${a.to}, AQI ${a.aqi}`),
        grove.timeAgo(a.at));
      b.addEventListener('click', () => {
        if (a.kind === 'station') openPanel(a.subject, b);
        else { search.value = a.subject; arrange(); search.focus(); }
      });
      return el('li', { 'data-alert': a.id, 'data-region': a.region, 'data-level': lvl }, b);
    }
    function filterAlerts(list) {
      const region = alertRegion.value, min = Number(alertLevel.value);
      let n = 0;
      for (const li of list.children) {
        const hit = (!region || li.dataset.region === region) && Number(li.dataset.level) >= min;
        attr(li, 'hidden', !hit);
        n += hit;
      }
      return n;
    }
    function addAlerts(list, live) {
      const fresh = list.filter((a) => a && a.id != null && !alertIds.has(String(a.id)));
      if (!fresh.length) return;
      for (const a of fresh) alertIds.add(String(a.id));
      alerts.push(...fresh);
      alerts.sort((a, b) => b.at - a.at);
      alerts.splice(200);
      // newest first: insert each before the first older one
      for (const a of fresh.sort((x, y) => x.at - y.at)) {
        const node = alertNode(a);
        const after = [...alertList.children].find((li) => (alerts.find((x) => String(x.id) === li.dataset.alert) || { at: 0 }).at <= a.at);
        alertList.insertBefore(node, after || null);
        if (live) agree(a);
      }
      while (alertList.children.length > 200) alertList.lastChild.remove();
      attr(alertNone, 'hidden', filterAlerts(alertList) > 0);
      if (panelStation) renderPanelAlerts();
    }
    // The tile and the alert agree the moment the alert arrives: the alert
    // carries the state of its window, newer than a tile still waiting for
    // its topic's next update (or its 30-second refresh).
    function agree(a) {
      const map = a.kind === 'station' ? stations : regions;
      const cur = map.get(a.subject);
      if (!cur) return;
      if (cur.window && cur.window.end > a.window_end) return;
      const lvl = levelOfName(a.to);
      const next = Object.assign({}, cur, { aqi: a.aqi, category: a.to, level: lvl, color: CATEGORIES[lvl] && CATEGORIES[lvl].color,
        dominant: a.dominant || cur.dominant, window: Object.assign({}, cur.window || {}, { end: a.window_end }) });
      if (a.kind === 'station') putStation(next); else putRegion(next);
    }
    alertRegion.addEventListener('change', () => attr(alertNone, 'hidden', filterAlerts(alertList) > 0));
    alertLevel.addEventListener('change', () => attr(alertNone, 'hidden', filterAlerts(alertList) > 0));

    // ---- state in, announcements out: only a category change is said
    function putStation(s) {
      const old = stations.get(s.id);
      if (old && JSON.stringify(old) === JSON.stringify(s)) return; // a refresh that brings nothing new
      // a state older than the one shown (a topic's message overtaken by
      // its alert, or a refresh answered before it) does not go back in time
      if (old && old.window && s.window && s.window.end < old.window.end) return;
      stations.set(s.id, s);
      renderTile(s);
      if (old && old.category !== s.category && s.category && !s.stale && old.aqi != null)
        grove.announce(`${s.name} is now ${s.category}, AQI ${s.aqi}.`);
      if (old && !old.stale && s.stale) grove.announce(`${s.name} has stopped reporting: its values are stale.`);
      arrangeSoon();
      renderSummary();
      const r = regions.get(s.region);
      if (r) renderRegion(r);
      if (old && old.region !== s.region && regions.get(old.region)) renderRegion(regions.get(old.region));
      if (panelStation === s.id) { renderPanelHead(); renderReadings(); chartSoon(); }
      else if (compare.includes(s.id)) chartSoon();
    }
    function putRegion(r) {
      const old = regions.get(r.name);
      if (old && old.window && r.window && r.window.end < old.window.end) return;
      regions.set(r.name, r);
      renderRegion(r);
    }

    // ---- the panel
    function renderPanelHead() {
      const s = stations.get(panelStation);
      if (!s) return;
      text(panelTitle, s.name);
      const seen = s.last_seen ? `last reading ${grove.ago(ms(s.last_seen))} (${grove.when(ms(s.last_seen))})` : 'no reading yet';
      text(panelSub, `${s.id} · region ${s.region} · ${stateWords(s)} · ${seen}`);
    }
    function renderReadings() {
      const s = stations.get(panelStation);
      const p = (s && s.pollutants) || {};
      const keys = Object.keys(p);
      if (!keys.length) { readingsBody.replaceChildren(el('tr', {}, el('td', { colspan: 5 }, 'No readings in the last window.'))); return; }
      readingsBody.replaceChildren(...keys.map((k) => {
        const x = p[k], info = pollutantOf(k);
        return el('tr', { 'data-pollutant': k }, el('th', { scope: 'row' }, info.name),
          el('td', {}, x.latest == null ? '–' : `${fmt(x.latest, info.digits)} ${info.unit}`),
          el('td', {}, x.mean == null ? '–' : `${fmt(x.mean, info.digits)} ${info.unit}`),
          el('td', {}, x.aqi ?? '–'),
          el('td', {}, x.latest_time ? grove.timeAgo(ms(x.latest_time)) : '–'));
      }));
    }
    function renderPanelAlerts() {
      const mine = alerts.filter((a) => a.kind === 'station' && a.subject === panelStation).slice(0, 20);
      panelAlerts.replaceChildren(...(mine.length ? mine.map((a) => {
        const lvl = levelOfName(a.to), cat = CATEGORIES[lvl] || { icon: '?' };
        return el('li', {}, el('span', { class: 'badge', 'data-level': lvl }, el('span', { 'aria-hidden': 'true' }, cat.icon + ' '), a.to),
          ` from ${a.from || 'no category'}, AQI ${a.aqi} `, grove.timeAgo(a.at));
      }) : [el('li', { class: 'muted' }, 'No alerts for this station.')]));
    }
    // (colours through the CSSOM: the Content-Security-Policy refuses style attributes)
    function key(colour) {
      const k = el('span', { class: 'key' });
      k.style.background = colour;
      return k;
    }
    function renderCompare() {
      compareList.replaceChildren(...compare.map((id, i) => el('li', {}, key(SERIES_COLORS[(i + 1) % SERIES_COLORS.length]),
        nameOf(id), ' ', el('button', { type: 'button', 'aria-label': `Stop comparing ${nameOf(id)}`,
          onclick: () => { compare.splice(compare.indexOf(id), 1); renderCompare(); loadChart(); } }, '✕'))));
      compareWith.replaceChildren(...[...stations.values()].filter((s) => s.id !== panelStation && !compare.includes(s.id))
        .sort(byName).map((s) => el('option', { value: s.id }, `${s.name} (${s.region})`)));
      compareAdd.disabled = !compareWith.options.length;
    }
    compareAdd.addEventListener('click', () => {
      if (!compareWith.value) return;
      compare.push(compareWith.value);
      renderCompare();
      loadChart();
      compareWith.focus();
    });

    async function openPanel(id, from) {
      opener = from || document.activeElement;
      panelStation = id;
      compare.length = 0;
      renderPanelHead();
      renderReadings();
      renderPanelAlerts();
      renderCompare();
      drawMap(panelMap, [...stations.values()], { small: true, highlight: id, label: `Where ${nameOf(id)} is among the stations` });
      const s = stations.get(id);
      if (s && s.dominant) pollutant.value = String(s.dominant).replace(/_.*$/, '');
      if (!panel.open) panel.showModal();
      closeBtn.focus();
      await loadChart();
    }

    // Reads each charted station's pollutant over the range (bucketed
    // means) and draws them; called again on live updates, at most every
    // few seconds.
    let chartSeq = 0;
    async function loadChart() {
      const id = panelStation;
      if (!id) return;
      const seq = ++chartSeq;
      const p = pollutant.value, info = POLLUTANTS[p], asAqi = measure.value === 'aqi';
      const [secs, step, words] = RANGES[range.value];
      const to = Date.now(), from = to - secs * 1000;
      text(chartNote, 'Loading…');
      let series;
      try {
        await grove.script(CHART_JS);
        series = await Promise.all([id, ...compare].map(async (sid, i) => {
          const d = await grove.api(`/api/v1/flow/stations/${encodeURIComponent(sid)}/range?pollutant=${p}` +
            `&from=${from * 1e6}&to=${to * 1e6}&step=${step}&agg=mean`);
          return { id: sid, label: nameOf(sid), color: SERIES_COLORS[i % SERIES_COLORS.length], raw: d.points,
            points: toXY(d.points, STEP_MS[step], asAqi ? (v) => aqiOf(p, v) : null) };
        }));
      } catch (e) {
        if (seq === chartSeq) text(chartNote, e.message.startsWith('cannot load') ? 'Charts are not available: this server has no Chart.js (libjs-chart.js).' : 'Cannot load the readings: ' + e.message);
        return;
      }
      if (seq !== chartSeq || panelStation !== id) return;
      if (!chart) chart = chartOn(canvas);
      const unit = asAqi ? `AQI of ${info.name} (US EPA)` : `${info.name}, ${info.unit}`;
      const started = performance.now();
      chart.set({ from, to, unit, series, bands: bandsFor(p, asAqi),
        format: (v) => (v == null ? 'no reading' : asAqi ? `AQI ${v} ${(CATEGORIES[levelOfAqi(v)] || {}).name}` : `${fmt(v, info.digits + 1)} ${info.unit}`) });
      const took = performance.now() - started;
      const main = series[0];
      const count = main.raw.length;
      const last = main.raw.length ? main.raw[main.raw.length - 1][0] / 1e6 : null;
      canvas.dataset.points = String(series.reduce((n, s) => n + s.raw.length, 0));
      canvas.dataset.drawMs = took.toFixed(1);
      attr(canvas, 'aria-label', `${asAqi ? 'AQI' : 'Concentration'} of ${info.name} at ${series.map((s) => s.label).join(', ')}, ${words}: ` +
        (count ? `${count} averages, the latest ${grove.ago(last)}` : 'no readings'));
      const mins = STEP_MS[step] / 60000;
      chartNote.replaceChildren(count ? `${words}, one point per ${mins >= 1 ? mins + ' min' : STEP_MS[step] / 1000 + ' s'} (mean); latest reading ` : `No ${info.name} readings in the ${words}.`,
        count ? grove.timeAgo(last) : '', count ? '. Breaks in the line are times without readings.' : '');
    }
    function chartSoon() {
      if (chartTimer) return;
      chartTimer = setTimeout(() => { chartTimer = null; loadChart(); }, 3000);
    }
    for (const c of [pollutant, range, measure]) c.addEventListener('change', loadChart);
    const onTheme = () => { if (chart) chart.recolour(); };
    document.addEventListener('grove-theme', onTheme);

    // ---- views, search, sort
    for (const b of [viewTiles, viewMap]) b.addEventListener('click', () => {
      const map = b === viewMap;
      attr(viewTiles, 'aria-pressed', String(!map));
      attr(viewMap, 'aria-pressed', String(map));
      grid.hidden = map;
      mapHost.hidden = !map;
      arrange();
    });
    search.addEventListener('input', arrange);
    sort.addEventListener('change', arrange);

    // ---- data in
    async function load() {
      const snap = await grove.api('/api/v1/flow/snapshot');
      for (const r of snap.regions) regions.set(r.name, r);
      for (const s of snap.stations) putStation(s);
      for (const r of snap.regions) putRegion(r);
      return snap;
    }
    async function catchUp() {
      const since = alerts.length ? alerts[0].at : null;
      const list = await grove.api('/api/v1/flow/alerts?limit=100' + (since ? `&since=${since}` : ''));
      addAlerts(list, true);
    }
    const snap = await load();
    addAlerts(await grove.api('/api/v1/flow/alerts?limit=100'), false);
    arrange();
    grove.live.subscribe('flow/alerts', (a) => addAlerts([a], true));
    for (const r of snap.regions) grove.live.subscribe('flow/regions/' + r.name, (m) => (m.type === 'alert' ? null : putRegion(m)));
    const worstFirst = snap.stations.slice().sort(sortKey('worst'));
    for (const s of worstFirst.slice(0, Math.max(0, MAX_LIVE_TOPICS - 1 - snap.regions.length)))
      grove.live.subscribe('flow/stations/' + s.id, (m) => (m.type === 'alert' ? null : putStation(m)));
    // after a reconnection: what changed meanwhile
    const onLive = (e) => {
      if (e.detail.online && e.detail.resumed) {
        load().then(catchUp).then(() => panelStation && loadChart()).catch(() => {});
      }
    };
    document.addEventListener('grove-live', onLive);
    refresh = setInterval(() => load().catch(() => {}), 30000); // stations past the live ones, new ones
    return {
      leave() {
        clearInterval(refresh);
        clearTimeout(chartTimer);
        document.removeEventListener('grove-live', onLive);
        document.removeEventListener('grove-theme', onTheme);
        if (chart) chart.destroy();
      },
    };
  };
})();
