// PISA Pulse live dashboard: polls Forage's five endpoints every second and draws the charts
// Forage draws (big number, line, bars, world choropleth, bubbles) with d3.
(function () {
  "use strict";
  const POLL_MS = 1000;
  const BASE = "/forage/";
  // PISA's codes for economies that are not ISO 3166 countries, mapped to the map's features.
  const MAP_ALIASES = { TAP: "TWN", KSV: "XKX" };
  const known = new Set(); // every country seen, for the selector
  let world = null;

  const el = (id) => document.getElementById(id);
  const fmt = d3.format(",");

  function selectedCountries() {
    return Array.from(el("countries").selectedOptions).map((o) => o.value);
  }

  function url(chart, withCountries) {
    const params = [];
    if (chart === "submissions_over_time") params.push("granularity=" + el("granularity").value);
    const chosen = selectedCountries();
    // Forage sends the codes with bare commas: ?countries=FRA,GBR,ESP
    if (withCountries && chosen.length) params.push("countries=" + chosen.join(","));
    return BASE + chart + (params.length ? "?" + params.join("&") : "");
  }

  async function get(chart, withCountries) {
    const res = await fetch(url(chart, withCountries), { cache: "no-store" });
    if (!res.ok) throw new Error(chart + ": HTTP " + res.status);
    return res.json();
  }

  function remember(codes) {
    let added = false;
    for (const c of codes) if (!known.has(c)) { known.add(c); added = true; }
    if (!added) return;
    const select = el("countries");
    const chosen = new Set(selectedCountries());
    select.replaceChildren(...Array.from(known).sort().map((c) => {
      const o = new Option(c, c);
      o.selected = chosen.has(c);
      return o;
    }));
  }

  function frame(svg, margin) {
    const box = svg.viewBox.baseVal;
    const root = d3.select(svg);
    root.selectAll("*").remove();
    const g = root.append("g").attr("transform", `translate(${margin.left},${margin.top})`);
    return { g, w: box.width - margin.left - margin.right, h: box.height - margin.top - margin.bottom };
  }

  function drawCount(body) {
    const node = el("submissions-count");
    node.textContent = fmt(body.count);
    node.dataset.count = String(body.count);
  }

  function drawLine(body) {
    const points = body.datasets[0].data;
    const { g, w, h } = frame(el("chart-line"), { top: 10, right: 15, bottom: 30, left: 50 });
    const x = d3.scalePoint().domain(points.map((p) => p.x)).range([0, w]);
    const y = d3.scaleLinear().domain([0, d3.max(points, (p) => p.y) || 1]).nice().range([h, 0]);
    const every = Math.ceil(points.length / 12);
    g.append("g").attr("class", "axis").attr("transform", `translate(0,${h})`)
      .call(d3.axisBottom(x).tickValues(points.filter((_, i) => i % every === 0).map((p) => p.x)));
    g.append("g").attr("class", "axis").call(d3.axisLeft(y).ticks(5));
    g.append("path").datum(points).attr("fill", "none").attr("stroke", "#2b5fab")
      .attr("stroke-width", 2).attr("d", d3.line().x((p) => x(p.x)).y((p) => y(p.y)));
    g.selectAll("circle").data(points).join("circle").attr("r", 2.5).attr("fill", "#2b5fab")
      .attr("cx", (p) => x(p.x)).attr("cy", (p) => y(p.y))
      .append("title").text((p) => `${p.x}: ${p.y}`);
  }

  function drawBars(body) {
    const rows = body.datasets;
    const { g, w, h } = frame(el("chart-bars"), { top: 10, right: 15, bottom: 30, left: 40 });
    const x = d3.scaleBand().domain(rows.map((r) => r.country)).range([0, w]).padding(0.25);
    const y = d3.scaleLinear().domain([0, d3.max(rows, (r) => r.hours) || 1]).nice().range([h, 0]);
    g.append("g").attr("class", "axis").attr("transform", `translate(0,${h})`).call(d3.axisBottom(x));
    g.append("g").attr("class", "axis").call(d3.axisLeft(y).ticks(5));
    const bar = g.selectAll("g.bar").data(rows).join("g").attr("class", "bar");
    bar.append("rect").attr("fill", "#e07b39").attr("x", (r) => x(r.country))
      .attr("width", x.bandwidth()).attr("y", (r) => y(r.hours)).attr("height", (r) => h - y(r.hours));
    bar.append("text").attr("text-anchor", "middle").attr("x", (r) => x(r.country) + x.bandwidth() / 2)
      .attr("y", (r) => y(r.hours) - 3).text((r) => r.hours + " h");
  }

  function drawMap(body) {
    const values = new Map(body.datasets.map((d) => [MAP_ALIASES[d.id] || d.id, d.value]));
    const svg = el("chart-map");
    const { g, w, h } = frame(svg, { top: 0, right: 0, bottom: 30, left: 0 });
    if (!world) return;
    const projection = d3.geoNaturalEarth1().fitSize([w, h], world);
    const color = d3.scaleSequential(d3.interpolateRdYlBu).domain([-1.5, 1.5]);
    g.selectAll("path").data(world.features).join("path")
      .attr("d", d3.geoPath(projection))
      .attr("fill", (f) => (values.has(f.id) ? color(values.get(f.id)) : "#e3e3e3"))
      .attr("stroke", "#fff").attr("stroke-width", 0.4)
      .attr("data-id", (f) => f.id)
      .append("title").text((f) => `${f.properties.name}: ${values.has(f.id) ? values.get(f.id) : "no data"}`);
    const legend = g.append("g").attr("transform", `translate(10,${h + 5})`);
    d3.range(-1.5, 1.51, 0.5).forEach((v, i) => {
      legend.append("rect").attr("x", i * 45).attr("width", 45).attr("height", 8).attr("fill", color(v));
      legend.append("text").attr("x", i * 45).attr("y", 18).text(v.toFixed(1));
    });
    legend.append("text").attr("x", 7 * 45 + 10).attr("y", 8).text("mean ESCS");
  }

  function drawBubbles(body) {
    const rows = body.datasets.map((d) => ({ id: d.id, ...d.data[0] }));
    const { g, w, h } = frame(el("chart-bubbles"), { top: 15, right: 20, bottom: 35, left: 50 });
    const pad = (lo, hi) => [Math.min(lo, hi - 0.5), Math.max(hi, lo + 0.5)];
    const x = d3.scaleLinear().domain(pad(d3.min(rows, (r) => r.x) - 0.3 || 0, d3.max(rows, (r) => r.x) + 0.3 || 4)).range([0, w]);
    const y = d3.scaleLinear().domain(pad(d3.min(rows, (r) => r.y) - 0.2 || -1, d3.max(rows, (r) => r.y) + 0.2 || 1)).range([h, 0]);
    const r = d3.scaleSqrt().domain([0, d3.max(rows, (r) => r.submissions) || 1]).range([3, 30]);
    g.append("g").attr("class", "axis").attr("transform", `translate(0,${h})`).call(d3.axisBottom(x).ticks(6));
    g.append("g").attr("class", "axis").call(d3.axisLeft(y).ticks(5));
    g.append("text").attr("x", w).attr("y", h + 30).attr("text-anchor", "end").text("early childhood education (years, DURECEC)");
    g.append("text").attr("x", 4).attr("y", -4).text("sense of belonging (BELONG)");
    const node = g.selectAll("g.node").data(rows).join("g").attr("class", "node")
      .attr("transform", (d) => `translate(${x(d.x)},${y(d.y)})`);
    node.append("circle").attr("r", (d) => r(d.submissions)).attr("fill", "#5a9e6f").attr("fill-opacity", 0.6)
      .attr("stroke", "#2f6b41").append("title").text((d) => `${d.id}: x ${d.x}, y ${d.y}, ${d.submissions} submissions`);
    node.append("text").attr("text-anchor", "middle").attr("dy", 4).text((d) => d.id);
  }

  async function poll() {
    const started = Date.now();
    try {
      const [count, line, bars, map, bubbles] = await Promise.all([
        get("submissions", false),
        get("submissions_over_time", false),
        get("learning_hours_per_week", true),
        get("escs", true),
        get("early_education_and_belonging", true),
      ]);
      remember([...bars.datasets.map((d) => d.country), ...map.datasets.map((d) => d.id),
        ...bubbles.datasets.map((d) => d.id)]);
      drawCount(count);
      drawLine(line);
      drawBars(bars);
      drawMap(map);
      drawBubbles(bubbles);
      setStatus("ok", "updated " + new Date().toLocaleTimeString());
    } catch (err) {
      setStatus("error", String(err.message || err));
    }
    setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
  }

  function setStatus(kind, text) {
    const s = el("status");
    s.className = "status " + kind;
    s.textContent = text;
  }

  el("clear-countries").addEventListener("click", () => {
    for (const o of el("countries").options) o.selected = false;
  });
  fetch("/-/pulse/vendor/world-alpha3.geo.json")
    .then((r) => r.json())
    .then((geo) => { world = geo; })
    .catch((err) => setStatus("error", "map: " + err));
  poll();
})();
