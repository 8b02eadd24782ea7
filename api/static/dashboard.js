// The geo-usm dashboard: MapLibre GL (vendored ES module, no CDN), an offline basemap from the
// city's own data, one map layer per indicator / index / hotspot class of the build, a legend
// with the server's fixed class breaks and a diagnosis panel per hexagon or unit.
//
// Every source degrades: vector tiles when the server has them, else GeoJSON from the Features
// API; the basemap tiles when present, else the study area and unit outlines; the density
// surface and the city switcher only when their endpoints answer.
import * as maplibregl from "./vendor/maplibre-gl.mjs";
import { el, fillColour, renderLegend } from "./legend.js";
import { loadDiagnosis, renderPanel } from "./panel.js";

const config = JSON.parse(document.getElementById("usm-config").textContent);
const api = config.api;
const $ = (id) => document.getElementById(id);

const state = {
  meta: null, // /dashboard/layers.json
  grid: null, // active grid
  layer: null, // active layer
  sources: {}, // grid id -> {kind: "vector"|"geojson", sourceLayer}
  selected: null, // {grid, id}
};

async function getJSON(url) {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
  status.hidden = !text;
}

/** Every feature of a collection as one GeoJSON FeatureCollection, following `next` links. */
async function allItems(collectionId) {
  const features = [];
  let url = `${api}/collections/${collectionId}/items?limit=10000`;
  while (url) {
    const page = await getJSON(url);
    if (!page) break;
    features.push(...page.features);
    const next = (page.links || []).find((l) => l.rel === "next");
    url = next && page.features.length ? next.href : null;
  }
  return { type: "FeatureCollection", features };
}

/** TileJSON of a tileset, or null when the server has no such tiles (yet). */
async function tileJSON(path) {
  const tj = await getJSON(`${api}${path}`);
  return tj && Array.isArray(tj.tiles) && tj.tiles.length ? tj : null;
}

function tileSource(tj, type) {
  const source = { type, tiles: tj.tiles };
  // The attribution is in the page's footer (the build's statements), not repeated on the map.
  for (const key of ["minzoom", "maxzoom", "bounds"]) {
    if (tj[key] !== undefined) source[key] = tj[key];
  }
  if (type === "raster") source.tileSize = tj.tileSize || 256;
  return source;
}

// --- the map ------------------------------------------------------------------------------------

function createMap(bounds) {
  const map = new maplibregl.Map({
    container: "map",
    style: {
      version: 8,
      sources: {},
      layers: [{ id: "background", type: "background", paint: { "background-color": "#eef1f4" } }],
    },
    bounds,
    fitBoundsOptions: { padding: 24 },
    attributionControl: { compact: false },
    canvasContextAttributes: { preserveDrawingBuffer: true },
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  return map;
}

async function addBasemap(map) {
  const tj = await tileJSON("/tiles/basemap/WebMercatorQuad/tilejson.json");
  if (tj) {
    map.addSource("basemap", tileSource(tj, "vector"));
    const has = new Set((tj.vector_layers || []).map((l) => l.id));
    const all = has.size === 0;
    if (all || has.has("study_area")) {
      map.addLayer({ id: "base-study-area", type: "fill", source: "basemap",
        "source-layer": "study_area", paint: { "fill-color": "#fbfbf8" } });
    }
    if (all || has.has("parks")) {
      map.addLayer({ id: "base-parks", type: "fill", source: "basemap", "source-layer": "parks",
        paint: { "fill-color": "#c8e3b4", "fill-outline-color": "#9cc98a" } });
    }
    if (all || has.has("streets")) {
      map.addLayer({ id: "base-streets", type: "line", source: "basemap", "source-layer": "streets",
        paint: { "line-color": "#9aa3ad", "line-width": ["interpolate", ["linear"], ["zoom"], 11, 0.3, 16, 2] } });
    }
    return { tiles: true, boundaries: all || has.has("boundaries"), studyArea: all || has.has("study_area") };
  }
  const study = await allItems("study_area");
  if (study.features.length) {
    map.addSource("study-area", { type: "geojson", data: study });
    map.addLayer({ id: "base-study-area", type: "fill", source: "study-area",
      paint: { "fill-color": "#fbfbf8" } });
  }
  return { tiles: false, boundaries: false, studyArea: study.features.length > 0 };
}

/** Make sure the grid's source exists: vector tiles, or GeoJSON items as a fallback. */
async function ensureGridSource(map, grid) {
  if (state.sources[grid.id]) return state.sources[grid.id];
  const sourceId = `grid-${grid.id}`;
  const tj = await tileJSON(`/collections/${grid.id}/tiles/WebMercatorQuad/tilejson.json`);
  let info;
  if (tj) {
    map.addSource(sourceId, { ...tileSource(tj, "vector"), promoteId: { [grid.id]: grid.id_column } });
    info = { id: sourceId, kind: "vector", sourceLayer: grid.id };
  } else {
    const data = await allItems(grid.id);
    map.addSource(sourceId, { type: "geojson", data, promoteId: grid.id_column });
    info = { id: sourceId, kind: "geojson", count: data.features.length };
  }
  state.sources[grid.id] = info;
  return info;
}

function gridLayerSpec(id, type, source, paint, extra = {}) {
  const spec = { id, type, source: source.id, paint, ...extra };
  if (source.kind === "vector") spec["source-layer"] = source.sourceLayer;
  return spec;
}

/** Draw the active grid with the active layer (replacing the grid layers). */
async function drawGrid(map) {
  const grid = state.grid;
  const source = await ensureGridSource(map, grid);
  for (const id of ["grid-fill", "grid-line", "grid-selected"]) {
    if (map.getLayer(id)) map.removeLayer(id);
  }
  const before = map.getLayer("unit-outline") ? "unit-outline" : undefined;
  map.addLayer(gridLayerSpec("grid-fill", "fill", source, {
    "fill-color": state.layer ? fillColour(state.layer, grid.id) : "#cccccc",
    "fill-opacity": 0.78,
  }), before);
  map.addLayer(gridLayerSpec("grid-line", "line", source, {
    "line-color": "#ffffff", "line-width": grid.kind === "hex" ? 0.4 : 0.8, "line-opacity": 0.8,
  }), before);
  map.addLayer(gridLayerSpec("grid-selected", "line", source, {
    "line-color": "#111111", "line-width": 3,
  }, { filter: selectedFilter(grid) }));
  if (map.getLayer("density")) map.moveLayer("density", "grid-line");
}

function selectedFilter(grid) {
  const id = state.selected && state.selected.grid === grid.id ? state.selected.id : "";
  return ["==", ["to-string", ["get", grid.id_column]], id];
}

async function addUnitOutlines(map, basemap) {
  // Unit boundaries above the hexagons, so that planners see their areas on every grid.
  if (basemap.boundaries) {
    map.addLayer({ id: "unit-outline", type: "line", source: "basemap", "source-layer": "boundaries",
      paint: { "line-color": "#3d4652", "line-width": 0.7, "line-opacity": 0.6 } });
    return;
  }
  const units = state.meta.grids.find((g) => g.kind === "units");
  if (!units) return;
  const source = await ensureGridSource(map, units);
  map.addLayer(gridLayerSpec("unit-outline", "line", source, {
    "line-color": "#3d4652", "line-width": 0.6, "line-opacity": 0.45,
  }));
}

async function addDensity(map) {
  const tj = await tileJSON("/collections/risk_surface/map/tiles/WebMercatorQuad/tilejson.json");
  if (!tj) return;
  map.addSource("density", tileSource(tj, "raster"));
  map.addLayer({ id: "density", type: "raster", source: "density",
    paint: { "raster-opacity": 0.75 }, layout: { visibility: "none" } }, "grid-line");
  $("overlay-controls").hidden = false;
  const legend = await getJSON(`${api}/collections/risk_surface/legend`);
  if (legend) renderDensityLegend($("density-legend"), legend);
  $("density-toggle").addEventListener("change", (event) => {
    map.setLayoutProperty("density", "visibility", event.target.checked ? "visible" : "none");
    $("density-legend").hidden = !event.target.checked;
  });
}

function renderDensityLegend(root, legend) {
  root.replaceChildren();
  const list = el("ul");
  const colours = legend.colors || legend.colours;
  const breaks = legend.breaks || legend.bins;
  const entries = legend.classes || legend.entries || legend.items;
  if (Array.isArray(entries)) {
    for (const e of entries) {
      const label = e.label ?? (e.min !== undefined ? `${e.min} – ${e.max}` : e.value);
      list.append(el("li", {}, el("span", { class: "swatch", style: `background:${e.color || e.colour}` }), label));
    }
  } else if (Array.isArray(colours) && Array.isArray(breaks)) {
    colours.forEach((c, i) => list.append(el("li", {}, el("span", { class: "swatch", style: `background:${c}` }),
      i === 0 ? `≤ ${breaks[0]}` : `${breaks[i - 1] ?? ""} – ${breaks[i] ?? ""}`)));
  }
  const title = [legend.title || legend.description, legend.unit].filter(Boolean).join(", ");
  if (title) root.append(el("p", { class: "method" }, title));
  root.append(list);
}

// --- controls -----------------------------------------------------------------------------------

const KIND_GROUP = {
  index: "Indices", hotspot: "Hotspots", peer: "Peer groups", smoothed: "Smoothed rates",
};

function fillLayerSelect() {
  const select = $("layer-select");
  select.replaceChildren();
  const groups = new Map();
  for (const layer of state.meta.layers) {
    const name = KIND_GROUP[layer.kind] || humanise(layer.dimension || "Indicators");
    if (!groups.has(name)) groups.set(name, el("optgroup", { label: name }));
    const available = Boolean(layer.grids[state.grid.id]);
    const text = `${layer.title}${layer.synthetic ? " [synthetic]" : ""}`
      + (available ? "" : ` (no data${layer.null_reason ? `: ${layer.null_reason}` : " on this grid"})`);
    const option = el("option", { value: layer.id }, text);
    option.disabled = !available;
    groups.get(name).append(option);
  }
  const order = ["Indices", "Hotspots"];
  const names = [...groups.keys()].sort((a, b) => rank(a, order) - rank(b, order));
  for (const name of names) select.append(groups.get(name));
  if (state.layer) select.value = state.layer.id;
}

function rank(name, order) {
  const i = order.indexOf(name);
  return i === -1 ? order.length : i;
}

function humanise(text) {
  const words = String(text).replaceAll("_", " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function defaultLayer() {
  const usable = state.meta.layers.filter((l) => l.grids[state.grid.id]);
  return usable.find((l) => l.kind === "index" && l.direction === "risk")
    || usable.find((l) => l.kind === "index")
    || usable.find((l) => l.direction === "risk" && !l.synthetic && l.unit !== "count")
    || usable[0] || null;
}

function fillGridToggle(map) {
  const fieldset = $("grid-toggle");
  for (const grid of state.meta.grids) {
    const label = grid.kind === "hex" ? `Hexagons (H3 resolution ${grid.resolution})` : "Administrative units";
    const input = el("input", { type: "radio", name: "grid", value: grid.id });
    input.checked = grid.id === state.grid.id;
    input.addEventListener("change", async () => {
      document.body.dataset.ready = "false";
      state.grid = grid;
      if (!state.layer || !state.layer.grids[grid.id]) state.layer = defaultLayer();
      fillLayerSelect();
      await drawGrid(map);
      updateLegend();
      if (state.selected) closePanel();
      whenDrawn(map);
    });
    fieldset.append(el("label", {}, input, ` ${label} `, el("span", { class: "count" }, `(${grid.count})`)));
  }
}

function fillFeatureFinder(map) {
  const units = state.meta.grids.find((g) => g.kind === "units" && g.features);
  if (!units) return;
  const select = $("feature-select");
  select.append(el("option", { value: "" }, "Choose a unit…"));
  for (const f of units.features) select.append(el("option", { value: f.id }, f.name === f.id ? f.id : `${f.name} (${f.id})`));
  $("feature-find").hidden = false;
  select.addEventListener("change", async () => {
    const feature = units.features.find((f) => f.id === select.value);
    if (!feature) return;
    if (state.grid.id !== units.id) {
      document.querySelector(`input[name=grid][value="${units.id}"]`).click();
    }
    map.fitBounds(feature.bbox, { padding: 60, maxZoom: 15, duration: 0 });
    await openPanel(map, units, feature.id);
  });
}

function updateLegend() {
  renderLegend($("legend"), state.layer, state.grid, state.meta.classification, state.meta.synthetic_layers);
}

// --- the diagnosis panel ------------------------------------------------------------------------

async function openPanel(map, grid, featureId) {
  state.selected = { grid: grid.id, id: String(featureId) };
  if (map.getLayer("grid-selected")) map.setFilter("grid-selected", selectedFilter(state.grid));
  const panel = $("panel");
  const title = $("panel-title");
  const unitNames = new Map((grid.features || []).map((f) => [f.id, f.name]));
  const name = unitNames.get(String(featureId));
  title.replaceChildren(grid.kind === "units" ? (name || featureId) : `Hexagon ${featureId}`,
    el("small", {}, grid.kind === "units" ? `Administrative unit ${featureId}` : `H3 cell, resolution ${grid.resolution}`));
  $("panel-body").replaceChildren(el("p", { class: "status" }, "Loading the diagnosis…"));
  panel.hidden = false;
  map.setPadding({ top: 0, bottom: 0, left: 0, right: panel.offsetWidth });
  const data = await loadDiagnosis(api, grid.id, String(featureId));
  if (!state.selected || state.selected.id !== String(featureId)) return;
  renderPanel($("panel-body"), {
    layers: state.meta.layers, grid, featureId: String(featureId), data, api,
    syntheticLayers: state.meta.synthetic_layers, activeLayerId: state.layer && state.layer.id,
  });
  panel.dataset.feature = String(featureId);
  title.focus();
}

function closePanel() {
  state.selected = null;
  $("panel").hidden = true;
  delete $("panel").dataset.feature;
  const map = window.usmMap;
  if (map) map.setPadding({ top: 0, bottom: 0, left: 0, right: 0 });
  if (map && map.getLayer("grid-selected")) map.setFilter("grid-selected", selectedFilter(state.grid));
}

// --- cities -------------------------------------------------------------------------------------

async function fillCities() {
  const match = api.match(/^(.*)\/cities\/[^/]+$/);
  const root = match ? match[1] : api;
  const listing = await getJSON(`${root}/cities`);
  const cities = listing && (Array.isArray(listing) ? listing : listing.cities);
  if (!Array.isArray(cities) || cities.length < 2) return;
  const select = $("city-select");
  for (const city of cities) {
    const option = el("option", { value: city.href || `${root}/cities/${city.id}/` }, city.name || city.id);
    const here = (city.href || "").replace(/\/$/, "") === api || city.name === config.city;
    option.selected = here;
    select.append(option);
  }
  select.addEventListener("change", () => { window.location.href = select.value; });
  $("city-switch").hidden = false;
}

// --- start --------------------------------------------------------------------------------------

async function start() {
  $("api-link").href = `${api}/api.html`;
  const meta = await getJSON(`${api}/dashboard/layers.json`);
  if (!meta) {
    setStatus("The server did not describe the build's layers (/dashboard/layers.json).", true);
    return;
  }
  state.meta = meta;
  $("build-info").textContent = `Build ${meta.build_id}`;
  if (meta.synthetic_layers.length) {
    const badge = $("synthetic-badge");
    badge.textContent = `Includes SYNTHETIC demonstration data: ${meta.synthetic_layers.join(", ")}`;
    badge.hidden = false;
  }
  if (!meta.grids.length) {
    setStatus("This build has no grid to map.", true);
    return;
  }
  state.grid = meta.grids[0];
  state.layer = defaultLayer();
  const described = await getJSON(`${api}/collections/${state.grid.id}`);
  const bbox = described && described.extent ? described.extent.spatial.bbox[0] : [-180, -85, 180, 85];
  $("attribution").textContent = [...new Set(meta.attribution)].join(" · ");
  const map = createMap([[bbox[0], bbox[1]], [bbox[2], bbox[3]]]);
  window.usmMap = map;
  window.usmDashboard = { state, openPanel: (gridId, id) => openPanel(map, meta.grids.find((g) => g.id === gridId), id) };
  fillGridToggle(map);
  fillLayerSelect();
  updateLegend();
  fillFeatureFinder(map);
  fillCities();

  await map.once("load");
  const basemap = await addBasemap(map);
  await addUnitOutlines(map, basemap);
  await drawGrid(map);
  if (basemap.studyArea || !basemap.tiles) addStudyAreaOutline(map, basemap);
  await addDensity(map);

  $("layer-select").addEventListener("change", (event) => {
    state.layer = meta.layers.find((l) => l.id === event.target.value) || null;
    map.setPaintProperty("grid-fill", "fill-color", fillColour(state.layer, state.grid.id));
    whenDrawn(map);
    updateLegend();
    if (state.selected) openPanel(map, state.grid, state.selected.id);
  });
  map.on("click", "grid-fill", (event) => {
    const feature = event.features && event.features[0];
    if (!feature) return;
    const id = feature.properties[state.grid.id_column] ?? feature.id;
    openPanel(map, state.grid, id);
  });
  map.on("mouseenter", "grid-fill", () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", "grid-fill", () => { map.getCanvas().style.cursor = ""; });
  $("panel-close").addEventListener("click", closePanel);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("panel").hidden) closePanel();
  });
  const sources = state.sources[state.grid.id];
  setStatus(sources.kind === "vector" ? "" : "Vector tiles are not available: the grid is drawn from GeoJSON.");
  whenDrawn(map);
}

/** Mark the page ready (body[data-ready=true]) once the map has drawn what it was given. */
function whenDrawn(map) {
  document.body.dataset.ready = "false";
  map.once("idle", () => { document.body.dataset.ready = "true"; });
  map.triggerRepaint();
}

function addStudyAreaOutline(map, basemap) {
  const source = basemap.tiles ? "basemap" : map.getSource("study-area") ? "study-area" : null;
  if (!source) return;
  const spec = { id: "study-area-outline", type: "line", source,
    paint: { "line-color": "#1d4e89", "line-width": 2 } };
  if (basemap.tiles) spec["source-layer"] = "study_area";
  map.addLayer(spec);
}

start().catch((error) => {
  setStatus(`The dashboard failed to start: ${error.message}`, true);
  console.error(error);
});
