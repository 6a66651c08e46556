// PISA Pulse live dashboard: polls Forage's five endpoints every second and draws the charts
// Forage draws (big number, line, bars, world choropleth, bubbles) with d3.
//
// Each chart polls on its own (one slow or failing endpoint never freezes the others) and has
// its own loading / waiting / empty / error message. Marks are joined by key (country or time
// label), so a hovered mark survives the poll and its tooltip stays. How old the data are
// comes from the server (/-/pulse-health and X-Pulse-Data-Age), never from this browser's clock.
(function () {
  "use strict";
  const POLL_MS = 1000;
  const BASE = "/forage/";
  const HEALTH = "/-/pulse-health";
  // PISA's codes for economies that are not ISO 3166 countries, mapped to the map's features.
  const MAP_ALIASES = { TAP: "TWN", KSV: "XKX" };
  const NO_DATA = "#e3e3e3";
  const BARS_TOP = 12; // with many countries and nothing selected: the top and bottom 12
  const known = new Set(); // every country seen, for the selector (with the codebook's)
  let names = {}; // CNT code → codebook name (countries.json)
  let world = null;
  let showAllBars = false;
  let mapValues = new Map(); // map feature id → the published row (read by the tooltips)
  // Countries whose ESCS is provisional (their HOMEPOS not yet final: not calibrated, or its rows still being rescored): the published mart
  // forage_escs.escs_provisional, read from Datasette's table JSON every 5 s, so Forage's own
  // JSON keeps the shape GEI specified.
  const PROVISIONAL = "/pulse/forage_escs.json?_shape=array&_col=country&escs_provisional=1&_size=max";
  let provisional = new Set();

  const el = (id) => document.getElementById(id);
  const fmt = d3.format(",");
  const nameOf = (code) => names[code] || code;
  const label = (code) => (names[code] ? `${names[code]} (${code})` : code);

  // ---- tooltips: one element; the hovered mark is remembered and re-read after every poll --
  const tip = el("tooltip");
  let hovered = null; // { node, text }

  function showTip(event, node, text) {
    hovered = { node, text };
    tip.textContent = text(node.__data__);
    tip.hidden = false;
    moveTip(event);
  }
  function moveTip(event) {
    const pad = 12;
    const x = Math.min(event.pageX + pad, window.scrollX + document.documentElement.clientWidth - tip.offsetWidth - 4);
    tip.style.left = Math.max(window.scrollX + 4, x) + "px";
    tip.style.top = event.pageY + pad + "px";
  }
  function hideTip() {
    hovered = null;
    tip.hidden = true;
  }
  function refreshTip() {
    if (!hovered) return;
    if (!hovered.node.isConnected) return hideTip();
    tip.textContent = hovered.text(hovered.node.__data__);
  }
  function tooltip(selection, text) {
    selection
      .on("pointerenter", function (event) { showTip(event, this, text); })
      .on("pointermove", moveTip)
      .on("pointerleave", hideTip);
  }

  // ---- layout helpers -----------------------------------------------------------------------
  function frame(svg, height, margin) {
    // Drawn in CSS pixels at the card's width (no viewBox scaling: 11 px text stays 11 px).
    const width = Math.max(280, Math.floor(svg.getBoundingClientRect().width));
    const root = d3.select(svg).attr("width", width).attr("height", height)
      .attr("viewBox", `0 0 ${width} ${height}`);
    const g = root.selectAll("g.plot").data([0]).join("g").attr("class", "plot")
      .attr("transform", `translate(${margin.left},${margin.top})`);
    return { root, g, w: width - margin.left - margin.right, h: height - margin.top - margin.bottom };
  }

  function layer(parent, cls) {
    const selector = ":scope > g." + cls.split(" ").join(".");
    return parent.selectAll(selector).data([0]).join("g").attr("class", cls);
  }

  function axisTitle(parent, cls, text, attrs) {
    const t = parent.selectAll(`:scope > text.${cls}`).data([text]).join("text")
      .attr("class", `axis-title ${cls}`).text((d) => d);
    for (const [k, v] of Object.entries(attrs)) t.attr(k, v);
    return t;
  }

  // Robust limits: a country beyond 2 interquartile ranges of the middle half is an outlier;
  // the axis spans the others and the outlier is drawn at the edge and marked, instead of
  // squashing every other country into a corner.
  function clampDomain(values) {
    const sorted = values.filter((v) => Number.isFinite(v)).sort(d3.ascending);
    const lo = sorted[0], hi = sorted[sorted.length - 1];
    if (sorted.length < 5) return [lo, hi];
    const q1 = d3.quantileSorted(sorted, 0.25), q3 = d3.quantileSorted(sorted, 0.75);
    const iqr = q3 - q1;
    if (!(iqr > 0)) return [lo, hi];
    const inliers = sorted.filter((v) => v >= q1 - 2 * iqr && v <= q3 + 2 * iqr);
    return [inliers[0], inliers[inliers.length - 1]];
  }
  const clamp = (v, [lo, hi]) => Math.max(lo, Math.min(hi, v));

  // Hide optional labels (bubble names) that would overlap any other text, biggest first.
  function declutter(svg, candidates) {
    const boxes = [];
    const hit = (b) => boxes.some((o) => b.left < o.right && o.left < b.right && b.top < o.bottom && o.top < b.bottom);
    const optional = new Set(candidates.nodes());
    candidates.attr("visibility", "visible");
    for (const t of svg.querySelectorAll("text")) {
      if (!optional.has(t) && t.getAttribute("visibility") !== "hidden") boxes.push(t.getBoundingClientRect());
    }
    for (const t of candidates.nodes()) {
      const b = t.getBoundingClientRect();
      if (hit(b)) t.setAttribute("visibility", "hidden");
      else boxes.push(b);
    }
  }

  function tickEvery(count, width, labelPx) {
    return Math.max(1, Math.ceil(count / Math.max(1, Math.floor(width / labelPx))));
  }

  // ---- the five charts ------------------------------------------------------------------------
  function drawCount(body) {
    const node = el("submissions-count");
    node.textContent = fmt(body.count);
    node.dataset.count = String(body.count);
    return true;
  }

  function drawLine(body, chart) {
    const points = body.datasets[0].data;
    if (!points.length) return false;
    const svg = el("chart-line");
    const { root, g, w, h } = frame(svg, 260, { top: 12, right: 16, bottom: 44, left: 56 });
    const x = d3.scalePoint().domain(points.map((p) => p.x)).range([0, w]);
    const y = d3.scaleLinear().domain([0, d3.max(points, (p) => p.y) || 1]).nice().range([h, 0]);
    const every = tickEvery(points.length, w, 48);
    layer(g, "axis x").attr("transform", `translate(0,${h})`)
      .call(d3.axisBottom(x).tickValues(points.filter((_, i) => i % every === 0).map((p) => p.x)));
    layer(g, "axis y").call(d3.axisLeft(y).ticks(5).tickFormat(d3.format("~s")));
    const unit = el("granularity").value;
    axisTitle(g, "x-title", `${unit === "minute" ? "minute" : "hour"} (UTC)`, { x: w, y: h + 36, "text-anchor": "end" });
    axisTitle(g, "y-title", `submissions per ${unit}`, { transform: "rotate(-90)", x: -h / 2, y: -44, "text-anchor": "middle" });
    layer(g, "line").selectAll("path").data([points]).join("path").attr("fill", "none")
      .attr("stroke", "#2b5fab").attr("stroke-width", 2)
      .attr("d", d3.line().x((p) => x(p.x)).y((p) => y(p.y)));
    layer(g, "points").selectAll("circle").data(points, (p) => p.x)
      .join((enter) => enter.append("circle").attr("r", 3.5).attr("fill", "#2b5fab").call(tooltip, (p) => `${p.x} UTC: ${fmt(p.y)} submissions`))
      .attr("cx", (p) => x(p.x)).attr("cy", (p) => y(p.y)).attr("data-id", (p) => p.x);
    root.attr("aria-label", `Line chart of submissions per ${unit}, ${points.length} ${unit}s, latest ${points[points.length - 1].x} UTC: ${fmt(points[points.length - 1].y)}`);
    chart.table = [["time (UTC)", "submissions"], ...points.map((p) => [p.x, fmt(p.y)])];
    return true;
  }

  function drawBars(body, chart) {
    const all = body.datasets.slice().sort((a, b) => d3.descending(a.hours, b.hours) || d3.ascending(nameOf(a.country), nameOf(b.country)));
    chart.table = [["country", "code", "hours per week"], ...all.map((r) => [nameOf(r.country), r.country, r.hours])];
    const button = el("bars-all");
    const many = all.length > 2 * BARS_TOP && selectedCountries().length === 0;
    button.hidden = !many;
    button.textContent = showAllBars ? `top and bottom ${BARS_TOP}` : `show all ${all.length}`;
    button.setAttribute("aria-pressed", String(showAllBars));
    let rows = all;
    let gap = null;
    if (many && !showAllBars) {
      rows = [...all.slice(0, BARS_TOP), ...all.slice(-BARS_TOP)];
      gap = all.length - rows.length;
    }
    if (!rows.length) return false;
    const svg = el("chart-bars");
    const narrow = svg.getBoundingClientRect().width < 520;
    const left = narrow ? 118 : 190;
    const step = 18, gapRows = gap ? 1.5 : 0;
    const height = Math.round((rows.length + gapRows) * step) + 50;
    const { root, g, w, h } = frame(svg, height, { top: 8, right: 44, bottom: 42, left });
    const domain = clampDomain(all.map((r) => r.hours));
    const x = d3.scaleLinear().domain([0, domain[1] || 1]).nice().range([0, w]);
    const top = x.domain()[1];
    const yOf = (i) => (i < BARS_TOP || !gap ? i : i + gapRows) * step;
    const index = new Map(rows.map((r, i) => [r.country, i]));
    const short = (code) => {
      const n = nameOf(code);
      const max = narrow ? 16 : 28;
      return n.length > max ? n.slice(0, max - 1) + "…" : n;
    };
    layer(g, "axis x").attr("transform", `translate(0,${h})`).call(d3.axisBottom(x).ticks(Math.max(2, Math.floor(w / 70))));
    axisTitle(g, "x-title", "hours of learning per week (mean TMINS ÷ 60)", { x: w, y: h + 34, "text-anchor": "end" });
    const bar = layer(g, "bars").selectAll("g.bar-row").data(rows, (r) => r.country)
      .join((enter) => {
        const row = enter.append("g").attr("class", "bar-row");
        row.append("text").attr("class", "bar-name").attr("text-anchor", "end").attr("x", -6).attr("dy", "0.35em");
        row.append("rect").attr("class", "bar").attr("fill", "#e07b39").call(tooltip, (r) => `${label(r.country)}: ${r.hours} h per week`);
        row.append("path").attr("class", "outlier-mark");
        row.append("text").attr("class", "bar-value").attr("dy", "0.35em");
        return row;
      })
      .attr("transform", (r) => `translate(0,${yOf(index.get(r.country))})`)
      .attr("data-id", (r) => r.country);
    bar.select("text.bar-name").attr("y", step / 2 - 1).text((r) => short(r.country));
    bar.select("rect").attr("data-id", (r) => r.country).attr("y", 2).attr("height", step - 4)
      .attr("width", (r) => x(Math.min(r.hours, top)));
    bar.select("path.outlier-mark")
      .attr("d", (r) => (r.hours > top ? `M${w - 8},1 l5,${step / 2 - 1} l-5,${step / 2 - 1} M${w - 3},1 l5,${step / 2 - 1} l-5,${step / 2 - 1}` : null))
      .attr("stroke", "#7a2f00").attr("fill", "none");
    bar.select("text.bar-value").attr("y", step / 2 - 1)
      .attr("x", (r) => x(Math.min(r.hours, top)) + 4).text((r) => `${r.hours} h`);
    layer(g, "gap").selectAll("text").data(gap ? [gap] : []).join("text").attr("class", "gap-note")
      .attr("x", -left + 4).attr("y", BARS_TOP * step + (gapRows * step) / 2 + 4)
      .text((n) => (narrow ? `… ${n} more: show all` : `… ${n} countries between: show all, or see the table`));
    const beyond = all.filter((r) => r.hours > top);
    el("note-bars").textContent = beyond.length ? `Beyond the axis (drawn to the edge, marked »): ${beyond.map((r) => `${nameOf(r.country)} ${r.hours} h`).join(", ")}.` : "";
    root.attr("aria-label", `Bar chart of learning hours per week, ${all.length} countries sorted by hours` +
      (all.length ? `; highest ${nameOf(all[0].country)} ${all[0].hours} h, lowest ${nameOf(all[all.length - 1].country)} ${all[all.length - 1].hours} h` : ""));
    return true;
  }

  function drawMap(body, chart) {
    const rows = body.datasets.slice().sort((a, b) => d3.ascending(nameOf(a.id), nameOf(b.id)));
    chart.table = [["country", "code", "mean ESCS", "provisional"],
      ...rows.map((d) => [nameOf(d.id), d.id, d.value, provisional.has(d.id) ? "yes" : "no"])];
    const values = (mapValues = new Map(rows.map((d) => [MAP_ALIASES[d.id] || d.id, d])));
    if (!world) return "the map is loading";
    const svg = el("chart-map");
    const width = Math.max(280, Math.floor(svg.getBoundingClientRect().width));
    const { root, g, w, h } = frame(svg, Math.round(width * 0.5) + 56, { top: 0, right: 0, bottom: 56, left: 0 });
    const projection = d3.geoNaturalEarth1().fitSize([w, h], world);
    const color = d3.scaleSequential(d3.interpolateRdYlBu).domain([-1.5, 1.5]).clamp(true);
    layer(g, "countries").selectAll("path").data(world.features, (f) => f.id || f.properties.name)
      .join((enter) => enter.append("path").attr("stroke", "#fff").attr("stroke-width", 0.4)
        .call(tooltip, (f) => {
          const d = mapValues.get(f.id);
          if (!d) return `${f.properties.name}: no data`;
          return `${label(d.id)}: mean ESCS ${d.value}` + (provisional.has(d.id) ? " (provisional: home possessions not yet final)" : "");
        }))
      .attr("d", d3.geoPath(projection))
      .attr("fill", (f) => (values.has(f.id) ? color(values.get(f.id).value) : NO_DATA))
      .attr("data-id", (f) => f.id)
      .attr("data-provisional", (f) => (values.has(f.id) && provisional.has(values.get(f.id).id) ? "yes" : null))
      .attr("stroke-dasharray", (f) => (values.has(f.id) && provisional.has(values.get(f.id).id) ? "2,1.5" : null))
      .attr("stroke", (f) => (values.has(f.id) && provisional.has(values.get(f.id).id) ? "#333" : "#fff"));
    // Legend: the colour ramp (clamped at ±1.5) and a swatch for countries without data.
    const steps = d3.range(-1.5, 1.51, 0.5);
    const sw = Math.min(44, Math.floor((w - 90) / steps.length));
    const legend = layer(g, "legend").attr("transform", `translate(10,${h + 18})`);
    axisTitle(legend, "legend-title", "mean ESCS (PISA index; colours clamped at ±1.5)", { x: 0, y: -6 });
    legend.selectAll("rect.ramp").data(steps).join("rect").attr("class", "ramp")
      .attr("x", (_, i) => i * sw).attr("width", sw).attr("height", 10).attr("fill", (v) => color(v));
    legend.selectAll("text.ramp-label").data(steps).join("text").attr("class", "ramp-label")
      .attr("x", (_, i) => i * sw + sw / 2).attr("y", 24).attr("text-anchor", "middle")
      .text((v, i) => (i === 0 ? "≤" : i === steps.length - 1 ? "≥" : "") + (Math.abs(v) < 1e-9 ? "0" : d3.format("+.1f")(v)));
    const nd = steps.length * sw + 16;
    legend.selectAll("rect.no-data").data([0]).join("rect").attr("class", "no-data")
      .attr("x", nd).attr("width", 16).attr("height", 10).attr("fill", NO_DATA).attr("stroke", "#999");
    legend.selectAll("text.no-data-label").data(["no data"]).join("text").attr("class", "no-data-label")
      .attr("x", nd + 20).attr("y", 9).text((d) => d);
    const missing = rows.filter((d) => !world.features.some((f) => f.id === (MAP_ALIASES[d.id] || d.id)));
    const interim = rows.filter((d) => provisional.has(d.id));
    el("note-map").textContent = (missing.length ? `Too small for the 1:110m map (see the table): ${missing.map((d) => `${nameOf(d.id)} ${d.value}`).join(", ")}. ` : "") +
      (interim.length > 8 ? `Provisional ESCS for ${interim.length} countries (home possessions not yet final; dashed outline, listed in the table).`
        : interim.length ? `Provisional ESCS (home possessions not yet final; dashed outline): ${interim.map((d) => nameOf(d.id)).join(", ")}.` : "");
    root.attr("aria-label", `World map of mean ESCS, ${rows.length} countries with data` +
      (rows.length ? `; from ${d3.min(rows, (d) => d.value)} to ${d3.max(rows, (d) => d.value)}` : ""));
    return rows.length > 0;
  }

  function drawBubbles(body, chart) {
    const rows = body.datasets.map((d) => ({ id: d.id, ...d.data[0] }))
      .sort((a, b) => d3.descending(a.submissions, b.submissions) || d3.ascending(a.id, b.id));
    chart.table = [["country", "code", "early education (years)", "belonging", "submissions"],
      ...rows.map((r) => [nameOf(r.id), r.id, r.x, r.y, fmt(r.submissions)])];
    if (!rows.length) return false;
    const svg = el("chart-bubbles");
    const { root, g, w, h } = frame(svg, 350, { top: 46, right: 20, bottom: 46, left: 58 });
    const pad = ([lo, hi], m) => [Math.min(lo, hi - m) - m / 2, Math.max(hi, lo + m) + m / 2];
    const xd = clampDomain(rows.map((r) => r.x)), yd = clampDomain(rows.map((r) => r.y));
    const x = d3.scaleLinear().domain(pad(xd, 0.5)).nice().range([0, w]);
    const y = d3.scaleLinear().domain(pad(yd, 0.3)).nice().range([h, 0]);
    const maxN = d3.max(rows, (r) => r.submissions) || 1;
    const rMax = Math.max(12, Math.min(28, w / 24));
    const r = d3.scaleSqrt().domain([0, maxN]).range([2, rMax]);
    const out = (d) => d.outside;
    for (const d of rows) d.outside = d.x !== clamp(d.x, x.domain()) || d.y !== clamp(d.y, y.domain());
    layer(g, "axis x").attr("transform", `translate(0,${h})`).call(d3.axisBottom(x).ticks(Math.max(3, Math.floor(w / 70))));
    layer(g, "axis y").call(d3.axisLeft(y).ticks(5));
    axisTitle(g, "x-title", "early childhood education, years (mean DURECEC)", { x: w, y: h + 36, "text-anchor": "end" });
    axisTitle(g, "y-title", "sense of belonging (mean BELONG)", { transform: "rotate(-90)", x: -h / 2, y: -44, "text-anchor": "middle" });
    const node = layer(g, "nodes").selectAll("g.node").data(rows, (d) => d.id)
      .join((enter) => {
        const n = enter.append("g").attr("class", "node");
        n.append("circle").attr("class", "bubble").attr("fill", "#5a9e6f").attr("fill-opacity", 0.55)
          .call(tooltip, (d) => `${label(d.id)}: early education ${d.x} years, belonging ${d.y}, ${fmt(d.submissions)} submissions` + (out(d) ? " (outside the axes: drawn at the edge)" : ""));
        n.append("text").attr("class", "bubble-label").attr("text-anchor", "middle").attr("dy", "0.35em");
        return n;
      })
      .attr("transform", (d) => `translate(${x(clamp(d.x, x.domain()))},${y(clamp(d.y, y.domain()))})`)
      .attr("data-id", (d) => d.id)
      .order(); // biggest first in the document: small bubbles stay on top and hoverable
    node.select("circle").attr("data-id", (d) => d.id).attr("r", (d) => r(d.submissions))
      .attr("stroke", (d) => (out(d) ? "#a12" : "#2f6b41")).attr("stroke-dasharray", (d) => (out(d) ? "3 2" : null))
      .classed("outlier", out);
    node.select("text").text((d) => d.id);
    // Bubble sizes: a legend of three reference counts.
    const refs = [...new Set([maxN, Math.round(maxN / 4), Math.round(maxN / 16)].map((n) => +d3.format(".1~r")(n)).filter((n) => n > 0))];
    const legend = layer(root, "size-legend").attr("transform", `translate(${w + 78 - 2 * rMax - 50},4)`);
    legend.selectAll("circle").data(refs).join("circle").attr("class", "size-ref")
      .attr("cx", rMax).attr("cy", (n) => 36 - r(n)).attr("r", (n) => r(n)).attr("fill", "none").attr("stroke", "#777");
    legend.selectAll("text.size-ref-label").data(refs).join("text").attr("class", "size-ref-label")
      .attr("x", 2 * rMax + 4).attr("y", (n, i) => 10 + i * 13).text((n) => fmt(n));
    axisTitle(legend, "size-title", "submissions", { x: -4, y: 10, "text-anchor": "end" });
    declutter(svg, node.select("text"));
    const beyond = rows.filter(out);
    el("note-bubbles").textContent = beyond.length ? `Outside the axes (drawn at the edge, dashed): ${beyond.map((d) => `${nameOf(d.id)} (${d.x}, ${d.y})`).join(", ")}.` : "";
    root.attr("aria-label", `Bubble chart of ${rows.length} countries: early childhood education (x) against sense of belonging (y), bubble size the number of submissions`);
    return true;
  }

  // ---- polling, one loop per chart -------------------------------------------------------------
  const CHARTS = [
    { key: "submissions", path: "submissions", countries: false, draw: drawCount },
    { key: "line", path: "submissions_over_time", countries: false, draw: drawLine },
    { key: "bars", path: "learning_hours_per_week", countries: true, draw: drawBars, codes: (b) => b.datasets.map((d) => d.country) },
    { key: "map", path: "escs", countries: true, draw: drawMap, codes: (b) => b.datasets.map((d) => d.id) },
    { key: "bubbles", path: "early_education_and_belonging", countries: true, draw: drawBubbles, codes: (b) => b.datasets.map((d) => d.id) },
  ];

  function selectedCountries() {
    return Array.from(el("countries").selectedOptions).map((o) => o.value);
  }

  function url(chart) {
    const params = [];
    if (chart.path === "submissions_over_time") params.push("granularity=" + el("granularity").value);
    const chosen = selectedCountries();
    // Forage sends the codes with bare commas: ?countries=FRA,GBR,ESP
    if (chart.countries && chosen.length) params.push("countries=" + chosen.join(","));
    return BASE + chart.path + (params.length ? "?" + params.join("&") : "");
  }

  function setState(chart, state, message) {
    const card = el("card-" + chart.key);
    card.dataset.state = state;
    const node = el("state-" + chart.key);
    node.textContent = message || "";
    node.hidden = !message;
  }

  function emptyMessage(chart) {
    if (chart.key === "line") return "No time buckets published yet.";
    return selectedCountries().length ? "No data for the selected countries." : "No country has data yet.";
  }

  function render(chart) {
    el("card-" + chart.key).dataset.state = "ok"; // visible while drawing: it is measured
    const drawn = chart.draw(chart.body, chart);
    if (drawn === true) setState(chart, "ok", "");
    else setState(chart, drawn === false ? "empty" : "loading", drawn === false ? emptyMessage(chart) : "Loading " + drawn + "…");
    renderTable(chart);
  }

  async function pollChart(chart) {
    const started = Date.now();
    try {
      const res = await fetch(url(chart), { cache: "no-store" });
      let body = null;
      try { body = await res.json(); } catch (_) { /* not JSON: reported below */ }
      if (res.ok && body) {
        chart.body = body;
        chart.publishedAt = res.headers.get("X-Pulse-Published-At");
        if (chart.codes) remember(chart.codes(body));
        render(chart);
        const asof = el("asof-" + chart.key);
        if (asof && chart.publishedAt) asof.textContent = "published " + utcTime(chart.publishedAt);
        refreshTip();
      } else if (res.status === 503) {
        const detail = body && body.error ? String(body.error) : "";
        if (chart.body) setState(chart, "error", "The data are briefly unavailable; showing the last data received.");
        else setState(chart, "waiting", detail.startsWith("not published yet")
          ? "Waiting for the first publication…" : "The data are briefly unavailable; retrying every second.");
      } else {
        setState(chart, "error", `Could not load this chart: ${(body && body.error) || "HTTP " + res.status}.`);
      }
    } catch (err) {
      setState(chart, "error", chart.body ? "The server is not answering; showing the last data received." : "The server is not answering; retrying every second.");
    }
    chart.timer = setTimeout(() => pollChart(chart), Math.max(0, POLL_MS - (Date.now() - started)));
  }

  function repoll(chart) {
    clearTimeout(chart.timer);
    pollChart(chart);
  }

  function utcTime(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toISOString().slice(11, 19) + " UTC";
  }

  // ---- tables (built only while open: 82 rows a second for nobody would waste the CPU) --------
  function renderTable(chart) {
    const details = document.querySelector(`details.table-view[data-chart="${chart.key}"]`);
    if (!details || !details.open || !chart.table) return;
    const [head, ...rows] = chart.table;
    const table = d3.select(details.querySelector(".table-wrap")).selectAll("table").data([0]).join("table");
    table.selectAll("thead").data([head]).join("thead").selectAll("tr").data((d) => [d]).join("tr")
      .selectAll("th").data((d) => d).join("th").attr("scope", "col").text((d) => d);
    table.selectAll("tbody").data([rows]).join("tbody").selectAll("tr").data((d) => d, (r) => r[1] ?? r[0]).join("tr")
      .selectAll("td").data((d) => d.map((v, i) => [v, head[i]])).join("td")
      .each(function ([v, col]) {
        // The country code links to the country's page (/country/<CNT>).
        if (col === "code") d3.select(this).selectAll("a").data([v]).join("a")
          .attr("href", (c) => `/country/${encodeURIComponent(c)}`).text((c) => c);
        else d3.select(this).text(v);
      });
  }
  for (const details of document.querySelectorAll("details.table-view")) {
    details.addEventListener("toggle", () => renderTable(CHARTS.find((c) => c.key === details.dataset.chart)));
  }

  // ---- the selector: country names from the codebook ----------------------------------------
  function remember(codes) {
    let added = false;
    for (const c of codes) if (!known.has(c)) { known.add(c); added = true; }
    if (added) fillSelector();
  }
  function fillSelector() {
    const select = el("countries");
    const chosen = new Set(selectedCountries());
    // Every PISA economy of the codebook, and any other code the endpoints answer with.
    const codes = new Set([...Object.keys(names), ...known]);
    select.replaceChildren(...Array.from(codes).sort((a, b) => d3.ascending(nameOf(a), nameOf(b))).map((c) => {
      const o = new Option(label(c), c);
      o.selected = chosen.has(c);
      return o;
    }));
  }

  // ---- freshness, from the server's clock ----------------------------------------------------
  let lastHealth = null; // when (this browser's clock) the server last answered: only for "unreachable"
  async function pollProvisional() {
    try {
      const res = await fetch(PROVISIONAL, { cache: "no-store" });
      if (res.ok) provisional = new Set((await res.json()).map((r) => r.country));
    } catch (_) { /* not published yet: no country is marked */ }
    setTimeout(pollProvisional, 5000);
  }

  async function pollHealth() {
    const started = Date.now();
    try {
      const res = await fetch(HEALTH, { cache: "no-store" });
      const body = await res.json();
      lastHealth = Date.now();
      showHealth(body);
    } catch (err) {
      const since = lastHealth ? ` for ${Math.round((Date.now() - lastHealth) / 1000)} s` : "";
      setStatus("error", "server not answering" + since);
      warn(`The server has not answered${since}: the numbers below may be out of date.`);
    }
    setTimeout(pollHealth, Math.max(0, POLL_MS - (Date.now() - started)));
  }

  function age(seconds) {
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 120) return Math.round(seconds) + " s";
    if (seconds < 7200) return Math.round(seconds / 60) + " min";
    return Math.round(seconds / 3600) + " h";
  }

  function showHealth(body) {
    const s = el("status");
    s.dataset.age = body.data_age_s ?? "";
    if (body.status === "waiting") {
      setStatus("waiting", "waiting for the first publication");
      warn(null);
    } else if (body.status === "fresh") {
      setStatus("ok", `live · data ${age(body.data_age_s)} old · published ${utcTime(body.published_at)}`);
      warn(null);
    } else {
      setStatus("stale", `stale · data ${age(body.data_age_s)} old`);
      warn(`Stale data: the numbers below are ${age(body.data_age_s)} old (published ${utcTime(body.published_at)}). ` +
        body.reasons.map((r) => `${r.component}: ${r.message}`).join("; ") + ".");
    }
  }

  function warn(text) {
    const w = el("stale-warning");
    if (!text) { w.hidden = true; w.textContent = ""; return; }
    if (w.textContent !== text) w.textContent = text;
    w.hidden = false;
  }

  function setStatus(kind, text) {
    const s = el("status");
    s.className = "status " + kind;
    if (s.textContent !== text) s.textContent = text;
  }

  // ---- start ---------------------------------------------------------------------------------
  el("clear-countries").addEventListener("click", () => {
    for (const o of el("countries").options) o.selected = false;
    for (const c of CHARTS) if (c.countries) repoll(c);
  });
  el("countries").addEventListener("change", () => { for (const c of CHARTS) if (c.countries) repoll(c); });
  el("granularity").addEventListener("change", () => repoll(CHARTS[1]));
  el("bars-all").addEventListener("click", () => { showAllBars = !showAllBars; if (CHARTS[2].body) render(CHARTS[2]); });
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { for (const c of CHARTS) if (c.body) render(c); }, 150);
  });

  fetch("/-/pulse/countries.json").then((r) => r.json()).then((n) => {
    names = n;
    fillSelector();
    for (const c of CHARTS) if (c.body) render(c);
  }).catch(() => { /* codes instead of names: still usable */ });
  fetch("/-/pulse/vendor/world-alpha3.geo.json").then((r) => r.json()).then((geo) => {
    world = geo;
    if (CHARTS[3].body) render(CHARTS[3]);
  }).catch(() => setState(CHARTS[3], "error", "The world map could not be loaded."));
  for (const chart of CHARTS) pollChart(chart);
  pollHealth();
  pollProvisional();
})();
