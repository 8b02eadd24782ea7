// The diagnosis panel of one hexagon or unit, with an inline SVG time-series chart.
import {
  categoryBadge, categoryLabel, classOf, el, formatValue, legendClasses, NODATA, unitText,
} from "./legend.js";

const SVG = "http://www.w3.org/2000/svg";

async function getJSON(url) {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

/**
 * Load what the panel shows: the diagnosis endpoint when the server has it, otherwise the
 * feature's properties (Features API) with the gaps and time series of /dashboard/features.
 */
export async function loadDiagnosis(api, gridId, featureId) {
  const id = encodeURIComponent(featureId);
  const [diagnosis, feature, extra] = await Promise.all([
    getJSON(`${api}/collections/${gridId}/items/${id}/diagnosis`),
    getJSON(`${api}/collections/${gridId}/items/${id}`),
    getJSON(`${api}/dashboard/features/${gridId}/${id}`),
  ]);
  return {
    diagnosis,
    properties: feature ? feature.properties || {} : {},
    gaps: extra ? extra.gaps : {},
    series: pickSeries(diagnosis, extra),
  };
}

/**
 * Monthly series: the diagnosis's trend time series (variables with two months or more) and
 * the dashboard's counts of records, the diagnosis winning for a variable both have.
 */
function pickSeries(diagnosis, extra) {
  const out = new Map();
  for (const s of (extra && extra.series) || []) out.set(s.variable, s);
  const rows = diagnosis && diagnosis.trend && diagnosis.trend.tables
    ? diagnosis.trend.tables.time_series : null;
  if (Array.isArray(rows)) {
    const byVariable = new Map();
    for (const r of rows) {
      if (!byVariable.has(r.variable)) byVariable.set(r.variable, []);
      byVariable.get(r.variable).push(r);
    }
    for (const [variable, list] of byVariable) {
      if (list.length < 2) continue;
      list.sort((a, b) => String(a.period).localeCompare(String(b.period)));
      const known = out.get(variable);
      out.set(variable, {
        variable,
        title: known ? known.title : variable.replaceAll("_", " "),
        synthetic: known ? known.synthetic : false,
        periods: list.map((r) => String(r.period)),
        values: list.map((r) => Number(r.value) || 0),
      });
    }
  }
  return [...out.values()];
}

function find(object, ...keys) {
  if (!object || typeof object !== "object") return undefined;
  for (const key of keys) if (object[key] !== undefined && object[key] !== null) return object[key];
  return undefined;
}

/** Render the panel for a feature. */
export function renderPanel(root, ctx) {
  const { layers, grid, featureId, data, syntheticLayers, api, activeLayerId } = ctx;
  const props = data.properties;
  root.replaceChildren();

  // Status line: hotspot classes and peer group.
  const status = el("div", { class: "status-line" });
  for (const layer of layers.filter((l) => l.kind === "hotspot")) {
    const value = props[layer.id];
    if (value === undefined) continue;
    status.append(el("span", { class: `badge ${categoryBadge(value)}`,
      title: layer.description }, `${layer.title}: ${value == null ? "no data" : categoryLabel(value)}`));
  }
  let peerNote = null;
  const peer = find(props, "peer_group") ?? find(data.diagnosis, "peer_group");
  if (peer !== undefined) {
    const about = data.diagnosis && data.diagnosis.peer_group && data.diagnosis.peer_group.columns
      && data.diagnosis.peer_group.columns.peer_group;
    const text = peerText(peer && peer.columns ? peer.columns.peer_group.value : peer);
    status.append(el("span", { class: "badge neutral", title: about ? about.description : "" },
      `Peer group ${text}`));
    if (about && about.description) peerNote = el("p", { class: "range" }, about.description);
  }
  if (status.childNodes.length) root.append(status);
  if (peerNote) root.append(peerNote);

  // Indices with their ranges and explanations.
  const indices = layers.filter((l) => l.kind === "index" && props[l.id] !== undefined);
  if (indices.length) {
    root.append(el("h3", {}, "Indices"));
    const table = el("table");
    for (const layer of indices) {
      const value = props[layer.id];
      const [lowId, highId] = layer.range || [];
      const range = lowId && props[lowId] != null && props[highId] != null
        ? `90% range ${formatValue(props[lowId], layer.unit)} – ${formatValue(props[highId], layer.unit)}`
        : "";
      const explanation = indexExplanation(data.diagnosis, layer.id);
      table.append(el("tr", {},
        el("td", {}, swatch(layer, grid, value), " ", layer.title,
          range ? el("div", { class: "range" }, range) : null,
          explanation ? el("div", { class: "range" }, explanation) : null),
        el("td", { class: "value" }, formatValue(value, layer.unit))));
    }
    root.append(table);
  }

  // Indicators by dimension (smoothed rates last), with quality flags.
  const indicators = layers.filter((l) => l.kind === "indicator" || l.kind === "smoothed");
  const entries = new Map(((data.diagnosis && data.diagnosis.indicators) || []).map((e) => [e.id, e]));
  const dimensions = [...new Set(indicators.map((l) => l.dimension || "other"))];
  for (const dimension of dimensions) {
    root.append(el("h3", {}, humanise(dimension)));
    const table = el("table");
    for (const layer of indicators.filter((l) => (l.dimension || "other") === dimension)) {
      const entry = entries.get(layer.id) || {};
      const value = props[layer.id] !== undefined ? props[layer.id] : entry.value;
      const flags = el("div", { class: "flags" });
      const reason = data.gaps[layer.id] || entry.null_reason
        || (value == null ? layer.null_reason : null);
      if (value == null) {
        flags.append(el("span", { class: "badge nodata" }, reason ? `no data: ${reason}` : "no data"));
      } else if (typeof entry.percentile === "number") {
        flags.append(el("span", { class: "percentile",
          title: `Percentile rank among the ${grid.kind === "units" ? "units" : "hexagons"} of the city` },
        `higher than ${Math.round(entry.percentile)}% of ${grid.kind === "units" ? "units" : "hexagons"}`));
      }
      if (layer.synthetic) flags.append(" ", el("span", { class: "badge synthetic" }, "SYNTHETIC"));
      const row = el("tr", {},
        el("td", {}, swatch(layer, grid, value), " ",
          layer.id === activeLayerId ? el("strong", {}, layer.title) : layer.title,
          flags.childNodes.length ? flags : null),
        el("td", { class: "value" }, value == null ? "–"
          : `${formatValue(value, layer.unit)} ${unitText(layer.unit)}`.trim()));
      table.append(row);
    }
    root.append(table);
  }

  // Time series.
  const series = (data.series || []).filter((s) => s.values && s.values.length > 1);
  if (series.length) {
    root.append(el("h3", {}, "Over time"));
    for (const s of series) {
      if (s.values.some((v) => v !== 0)) root.append(chart(s, syntheticLayers));
      else root.append(el("p", { class: "range" }, `${s.title}: none from ${s.periods[0]} to ${s.periods.at(-1)}.`));
    }
  }

  const unavailable = data.diagnosis && data.diagnosis.unavailable;
  if (unavailable && typeof unavailable === "object" && Object.keys(unavailable).length) {
    root.append(el("h3", {}, "Not in this build"));
    const list = el("ul", { class: "unavailable" });
    for (const [key, why] of Object.entries(unavailable)) list.append(el("li", {}, `${humanise(key)}: ${why}`));
    root.append(list);
  }

  const id = encodeURIComponent(featureId);
  root.append(el("p", { class: "links" }, "Data: ",
    el("a", { href: `${api}/collections/${grid.id}/items/${id}` }, "feature (GeoJSON)"),
    data.diagnosis ? " · " : "",
    data.diagnosis ? el("a", { href: `${api}/collections/${grid.id}/items/${id}/diagnosis` }, "diagnosis (JSON)") : ""));
}

function peerText(peer) {
  if (peer === null || typeof peer !== "object") return String(peer);
  const label = find(peer, "label", "name", "title", "group", "id", "value");
  const size = find(peer, "size", "members", "count");
  const n = Array.isArray(size) ? size.length : size;
  return label !== undefined ? `${label}${n !== undefined ? ` (${n} members)` : ""}` : JSON.stringify(peer);
}

function swatch(layer, grid, value) {
  const i = classOf(layer, grid.id, value);
  const colour = i >= 0 ? legendClasses(layer, grid.id)[i].colour : NODATA;
  return el("span", { class: "swatch", style: `background:${colour}`, "aria-hidden": "true" });
}

function indexExplanation(diagnosis, indexId) {
  let indices = find(diagnosis, "indices", "index");
  if (indices && !Array.isArray(indices) && indices.indices) indices = indices.indices;
  if (!indices) return "";
  const entry = Array.isArray(indices) ? indices.find((e) => e.id === indexId) : indices[indexId];
  if (!entry) return "";
  const text = find(entry, "explanation", "explain", "summary");
  if (typeof text === "string") return text;
  const contributions = find(entry, "contributions", "components");
  if (contributions && typeof contributions === "object") {
    const pairs = Array.isArray(contributions)
      ? contributions.map((c) => [c.indicator || c.id, c.contribution ?? c.share ?? c.value])
      : Object.entries(contributions);
    const top = pairs.filter((p) => typeof p[1] === "number")
      .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, 3);
    if (top.length) return `Main contributions: ${top.map(([k, v]) => `${k} ${formatValue(v)}`).join(", ")}`;
  }
  return "";
}

function humanise(text) {
  const words = String(text).replaceAll("_", " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A bar chart of a monthly series as inline SVG. */
export function chart(series, syntheticLayers) {
  const width = 340;
  const height = 130;
  const pad = { left: 34, right: 6, top: 8, bottom: 22 };
  const values = series.values;
  const max = Math.max(...values, 1);
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const step = innerW / values.length;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", "100%");
  svg.setAttribute("role", "img");
  const total = values.reduce((a, b) => a + b, 0);
  svg.setAttribute("aria-label",
    `${series.title}: ${values.length} months from ${series.periods[0]} to ${series.periods.at(-1)}, total ${formatValue(total)}`);
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("line", { x1: pad.left, x2: width - pad.right, y1: pad.top + innerH, y2: pad.top + innerH, stroke: "#999" });
  add("text", { x: pad.left - 4, y: pad.top + 8, "text-anchor": "end" }, formatValue(max));
  add("text", { x: pad.left - 4, y: pad.top + innerH, "text-anchor": "end" }, "0");
  values.forEach((v, i) => {
    const h = (v / max) * innerH;
    const bar = add("rect", {
      x: pad.left + i * step + step * 0.15, y: pad.top + innerH - h,
      width: Math.max(step * 0.7, 1), height: h, fill: series.synthetic ? "#c0508a" : "#2c7fb8",
    });
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${series.periods[i]}: ${formatValue(v)}`;
    bar.append(title);
  });
  const labelEvery = Math.max(1, Math.ceil(values.length / 6));
  series.periods.forEach((p, i) => {
    const gap = (values.length - 1) % labelEvery;
    const last = i === values.length - 1 && gap >= Math.max(2, labelEvery / 2);
    if (i % labelEvery === 0 || last) {
      add("text", { x: pad.left + i * step + step / 2, y: height - 6, "text-anchor": "middle" }, p);
    }
  });
  const figure = el("figure");
  figure.append(svg);
  figure.append(el("figcaption", {}, series.title, series.synthetic
    ? el("span", {}, " ", el("span", { class: "badge synthetic" }, "SYNTHETIC")) : null,
    ` (per month; months without records count 0)`));
  void syntheticLayers;
  return figure;
}
