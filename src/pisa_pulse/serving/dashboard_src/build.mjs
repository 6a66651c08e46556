// Builds the vendored dashboard assets in ../static/vendor from the npm packages.
// Run `npm ci && npm run build`; the output is committed so nothing is fetched at run time.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { feature } from "topojson-client";

const out = new URL("../static/vendor/", import.meta.url);
mkdirSync(out, { recursive: true });
const pkg = (name) => new URL(`./node_modules/${name}/`, import.meta.url);

copyFileSync(new URL("dist/d3.min.js", pkg("d3")), new URL("d3.min.js", out));

// World map: Natural Earth 1:110m (world-atlas) with ISO 3166-1 numeric ids, re-keyed to
// alpha-3 (i18n-iso-countries' code table) because Forage's choropleth ids are alpha-3.
const numericToAlpha3 = Object.fromEntries(
  JSON.parse(readFileSync(new URL("codes.json", pkg("i18n-iso-countries")))).map(
    ([, alpha3, numeric]) => [numeric, alpha3],
  ),
);
const byName = { Kosovo: "XKX" }; // no ISO numeric code; PISA calls it KSV (aliased in the page)
const topology = JSON.parse(readFileSync(new URL("countries-110m.json", pkg("world-atlas"))));
const world = feature(topology, topology.objects.countries);
for (const f of world.features) {
  f.id = numericToAlpha3[f.id] ?? byName[f.properties.name] ?? null;
  // Keep 2 decimals: plenty at this scale and a third of the size.
  f.geometry.coordinates = JSON.parse(
    JSON.stringify(f.geometry.coordinates, (k, v) => (typeof v === "number" ? +v.toFixed(2) : v)),
  );
}
writeFileSync(new URL("world-alpha3.geo.json", out), JSON.stringify(world));

const licences = ["d3", "topojson-client", "world-atlas", "i18n-iso-countries"].map((name) => {
  const meta = JSON.parse(readFileSync(new URL("package.json", pkg(name))));
  const text = readFileSync(new URL("LICENSE", pkg(name)), "utf8");
  return `## ${name} ${meta.version} (${meta.license})\n\n${text.trim()}\n`;
});
writeFileSync(
  new URL("LICENSES.md", out),
  "# Vendored third-party files\n\n" +
    "d3.min.js is d3's own build. world-alpha3.geo.json is derived from world-atlas " +
    "(Natural Earth, public domain) with topojson-client, ids from i18n-iso-countries.\n\n" +
    licences.join("\n"),
);
console.log("built", out.pathname);
