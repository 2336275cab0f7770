// flow.js — the air-quality page: stations coloured by AQI category
// (colour and text), the regions' 10-minute AQI, a chart per station with
// a range and a pollutant, and the alerts feed, all kept current by the
// live topics (flow/regions/*, flow/stations/*, flow/alerts).
'use strict';

(function () {
  const el = grove.el;
  const POLLUTANTS = { pm25: 'PM2.5', pm10: 'PM10', o3: 'Ozone', no2: 'NO2', co: 'CO', so2: 'SO2' };
  const RANGES = { '1h': [3600, '10s'], '6h': [6 * 3600, '1m'], '24h': [86400, '5m'], '7d': [7 * 86400, '1h'] };
  const MAX_LIVE_STATIONS = 50; // topics a connection may hold: the rest refresh every 30 s

  function aqiText(e) {
    const t = e.aqi == null ? 'no AQI yet' : `AQI ${e.aqi} · ${e.category}`;
    return e.stale ? t + ' (stale: no reading lately)' : t;
  }

  // A stale station (silent for --flow-stale-after) keeps its last AQI,
  // greyed and labelled.
  function tile(s, open) {
    const b = el('button', { type: 'button', class: 'tile' + (s.stale ? ' stale' : ''), 'data-level': s.level ?? '',
      'data-station': s.id, style: `background:${s.color || 'var(--card)'}`,
      'aria-label': `${s.name}, ${aqiText(s)}, region ${s.region}. Open its chart.`, onclick: () => open(s.id) },
    el('span', { class: 'name' }, s.name), el('span', { class: 'aqi' }, s.aqi ?? '–'),
    el('small', {}, s.category || 'no AQI yet'), el('small', {}, s.region),
    s.stale ? el('small', { class: 'stale-label' }, 'stale') : null);
    if (s.color == null) b.style.color = 'var(--fg)';
    return b;
  }

  function regionRow(r) {
    return el('tr', { 'data-region': r.name }, el('th', { scope: 'row' }, r.name),
      el('td', {}, r.aqi ?? '–'),
      el('td', {}, r.color ? el('span', { class: 'swatch', style: `background:${r.color}` }) : null, r.category || 'no AQI yet'),
      el('td', {}, r.dominant ? POLLUTANTS[r.dominant] : '–'),
      el('td', {}, r.stale_stations ? `${r.stations} (${r.stale_stations} stale)` : r.stations));
  }

  function alertItem(a) {
    const when = new Date(a.at).toLocaleTimeString();
    return el('li', {}, el('strong', {}, `${a.kind} ${a.subject}`), `: ${a.from || '—'} → ${a.to} (AQI ${a.aqi}) `,
      el('time', { datetime: new Date(a.at).toISOString(), class: 'muted' }, when));
  }

  // A line chart on a canvas: one min-max bar per pixel column, so 10,000
  // points draw as fast as 500.
  function draw(canvas, points, from, to) {
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = w * dpr;
    canvas.height = h * dpr;
    const g = canvas.getContext('2d');
    g.scale(dpr, dpr);
    const style = getComputedStyle(document.documentElement);
    g.clearRect(0, 0, w, h);
    g.fillStyle = style.getPropertyValue('--muted');
    g.font = '12px system-ui';
    if (!points.length) { g.fillText('no readings in this range', 10, 20); return; }
    let lo = Infinity, hi = -Infinity;
    for (const [, v] of points) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (hi === lo) { hi += 1; lo -= 1; }
    const pad = 28, x = (t) => pad + (t - from) / (to - from) * (w - pad - 4), y = (v) => h - 16 - (v - lo) / (hi - lo) * (h - 24);
    g.fillText(hi.toPrecision(3), 2, 12);
    g.fillText(lo.toPrecision(3), 2, h - 18);
    g.strokeStyle = style.getPropertyValue('--accent');
    g.lineWidth = 1.5;
    g.beginPath();
    let col = -1, cmin = 0, cmax = 0, last = null;
    const flush = () => { if (col >= 0) { g.lineTo(col, y(cmin)); g.lineTo(col, y(cmax)); g.lineTo(col, y(last)); } };
    for (const [t, v] of points) {
      const c = Math.round(x(t));
      if (c !== col) { flush(); if (col < 0) g.moveTo(c, y(v)); col = c; cmin = cmax = v; }
      if (v < cmin) cmin = v; if (v > cmax) cmax = v;
      last = v;
    }
    flush();
    g.stroke();
  }

  grove.chart = { draw }; // for bench/console

  grove.pages.flow = async function (root) {
    const stations = new Map(), regions = new Map();
    let chartStation = null, refresh = null;
    const live = el('span', { class: 'live', 'data-on': 'false' }, 'live');
    const grid = el('div', { class: 'grid', role: 'list', 'aria-label': 'Stations by AQI' });
    const regionBody = el('tbody');
    const alerts = el('ul', { id: 'alerts', 'aria-label': 'Alerts, newest first' });
    const chartTitle = el('h2', { id: 'chart-title' }, 'Chart');
    const pollutant = el('select', { 'aria-label': 'Pollutant' },
      ...Object.entries(POLLUTANTS).map(([k, v]) => el('option', { value: k }, v)));
    const range = el('select', { 'aria-label': 'Range' },
      ...Object.keys(RANGES).map((k) => el('option', { value: k }, 'last ' + k)));
    const canvas = el('canvas', { role: 'img', 'aria-label': 'No station chosen' });
    const chartNote = el('p', { class: 'muted' }, 'Choose a station to see its readings.');
    const chart = el('section', { class: 'chart', 'aria-labelledby': 'chart-title', hidden: true },
      chartTitle, el('div', { class: 'controls' }, pollutant, range), canvas, chartNote);

    root.append(el('h1', {}, 'Air quality ', live),
      el('div', { class: 'cols' },
        el('div', {}, el('h2', {}, 'Stations'), grid, chart),
        el('div', {}, el('h2', {}, 'Regions (10-minute AQI)'),
          el('table', { 'aria-label': 'Regions' }, el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'region'),
            el('th', { scope: 'col' }, 'AQI'), el('th', { scope: 'col' }, 'category'), el('th', { scope: 'col' }, 'mostly'),
            el('th', { scope: 'col' }, 'stations'))), regionBody),
          el('h2', {}, 'Alerts'), alerts)));

    function putStation(s) {
      stations.set(s.id, s);
      const old = grid.querySelector(`[data-station="${CSS.escape(s.id)}"]`);
      const t = tile(s, openChart);
      t.setAttribute('role', 'listitem');
      if (old) old.replaceWith(t); else grid.append(t);
      if (old && document.activeElement === old) t.focus();
    }
    function putRegion(r) {
      regions.set(r.name, r);
      const old = regionBody.querySelector(`[data-region="${CSS.escape(r.name)}"]`);
      if (old) old.replaceWith(regionRow(r)); else regionBody.append(regionRow(r));
    }
    function addAlert(a) { alerts.prepend(alertItem(a)); while (alerts.children.length > 100) alerts.lastChild.remove(); }

    async function openChart(id) {
      chartStation = id;
      chart.hidden = false;
      const s = stations.get(id) || { name: id };
      chartTitle.textContent = `${s.name}: ${POLLUTANTS[pollutant.value]}, last ${range.value}`;
      const [secs, step] = RANGES[range.value];
      const to = Date.now() * 1e6, from = to - secs * 1e9;
      const data = await grove.api(`/api/v1/flow/stations/${encodeURIComponent(id)}/range?pollutant=${pollutant.value}` +
        `&from=${from}&to=${to}&step=${step}&agg=mean`);
      const started = performance.now();
      draw(canvas, data.points, from, to);
      const took = performance.now() - started;
      canvas.setAttribute('aria-label', `${data.points.length} readings of ${POLLUTANTS[pollutant.value]} at ${s.name}`);
      chartNote.textContent = `${data.points.length} buckets of ${step} (${data.source}), drawn in ` +
        `${took.toFixed(1)} ms.`;
    }
    pollutant.addEventListener('change', () => chartStation && openChart(chartStation));
    range.addEventListener('change', () => chartStation && openChart(chartStation));

    async function load() {
      const snap = await grove.api('/api/v1/flow/snapshot');
      for (const s of snap.stations) putStation(s);
      for (const r of snap.regions) putRegion(r);
      return snap;
    }
    const snap = await load();
    for (const a of (await grove.api('/api/v1/flow/alerts?limit=50')).reverse()) addAlert(a);
    for (const r of snap.regions) grove.live.subscribe('flow/regions/' + r.name, (m) => m.type === 'alert' ? null : putRegion(m));
    for (const s of snap.stations.slice(0, MAX_LIVE_STATIONS))
      grove.live.subscribe('flow/stations/' + s.id, (m) => m.type === 'alert' ? null : putStation(m));
    grove.live.subscribe('flow/alerts', addAlert);
    const onLive = (e) => live.setAttribute('data-on', String(e.detail));
    document.addEventListener('grove-live', onLive);
    live.setAttribute('data-on', String(!!(grove.live.ws && grove.live.ws.readyState === 1)));
    refresh = setInterval(() => load().catch(() => {}), 30000); // stations past the live ones, new ones
    return { leave() { clearInterval(refresh); document.removeEventListener('grove-live', onLive); } };
  };
})();
