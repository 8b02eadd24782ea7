// Colours, MapLibre expressions, number formatting and the legend of the dashboard.
// The class breaks come from the server (/dashboard/layers.json): fixed per build and grid.

export const NODATA = "#d3d7dc";

// ColorBrewer sequential ramps (colour-blind safe), light to dark.
const RAMPS = {
  risk: ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"], // YlOrRd: more is worse
  resilience: ["#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494"], // YlGnBu: more is better
  context: ["#f2f0f7", "#cbc9e2", "#9e9ac8", "#756bb1", "#54278f"], // Purples
};
const QUALITATIVE = [
  "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
];

export const DIRECTION_TEXT = {
  risk: "Higher values mean more risk",
  resilience: "Higher values mean more resilience",
  context: "Context (neither risk nor resilience)",
};

/** Pick n colours spread over a ramp. */
export function rampColours(direction, n) {
  const ramp = RAMPS[direction] || RAMPS.context;
  if (n >= ramp.length) return ramp.slice();
  if (n === 1) return [ramp[ramp.length - 1]];
  return Array.from({ length: n }, (_, i) => ramp[Math.round((i * (ramp.length - 1)) / (n - 1))]);
}

/** Colour of a category of a hotspot or peer-group layer. */
export function categoryColour(category, index) {
  const c = String(category).toLowerCase();
  const strength = /99/.test(c) ? 0 : /95/.test(c) ? 1 : /90/.test(c) ? 2 : 0;
  if (/not.?sig|^ns$|none|insignificant/.test(c)) return "#f0f0f0";
  if (/hot|^hh$|high-high/.test(c)) return ["#b2182b", "#ef8a62", "#fddbc7"][strength];
  if (/cold|^ll$|low-low/.test(c)) return ["#2166ac", "#67a9cf", "#d1e5f0"][strength];
  if (/^hl$|high-low/.test(c)) return "#f4a582";
  if (/^lh$|low-high/.test(c)) return "#92c5de";
  return QUALITATIVE[index % QUALITATIVE.length];
}

/** Badge class of a hotspot status, for the panel. */
export function categoryBadge(category) {
  const c = String(category).toLowerCase();
  if (/not.?sig|^ns$|none|insignificant/.test(c)) return "neutral";
  if (/hot|^hh$|high-high|^hl$/.test(c)) return "hot";
  if (/cold|^ll$|low-low|^lh$/.test(c)) return "cold";
  return "neutral";
}

/** A category for people: hot_99 -> "Hot spot (99% confidence)", HH -> "High-high cluster". */
export function categoryLabel(category) {
  const c = String(category);
  const spot = c.match(/^(hot|cold)_(\d+)$/i);
  if (spot) return `${spot[1].toLowerCase() === "hot" ? "Hot" : "Cold"} spot (${spot[2]}% confidence)`;
  const named = {
    HH: "High-high cluster", LL: "Low-low cluster", HL: "High-low outlier", LH: "Low-high outlier",
    not_significant: "Not significant",
  };
  return named[c] || c.replaceAll("_", " ");
}

/** The legend classes of a layer on a grid, each {colour, label, count}. */
export function legendClasses(layer, gridId) {
  const classes = layer.grids[gridId];
  if (!classes) return [];
  if (classes.type === "categorical") {
    return classes.categories.map((category, i) => ({
      value: category,
      colour: categoryColour(category, i),
      label: categoryLabel(category),
      count: classes.counts[i],
    }));
  }
  const colours = rampColours(layer.direction, classes.breaks.length);
  const unique = classes.method === "unique values";
  return classes.breaks.map((upper, i) => {
    let label;
    if (unique) label = formatValue(upper, layer.unit);
    else if (i === 0 && classes.min === upper) label = formatValue(upper, layer.unit);
    else if (i === 0) label = `${formatValue(classes.min, layer.unit)} – ${formatValue(upper, layer.unit)}`;
    else label = `> ${formatValue(classes.breaks[i - 1], layer.unit)} – ${formatValue(upper, layer.unit)}`;
    return { upper, colour: colours[i], label, count: classes.counts[i] };
  });
}

/** The MapLibre fill-colour expression of a layer on a grid (NULL: no-data grey). */
export function fillColour(layer, gridId) {
  const classes = layer.grids[gridId];
  if (!classes) return NODATA;
  const legend = legendClasses(layer, gridId);
  const value = ["get", layer.id];
  if (classes.type === "categorical") {
    const pairs = legend.flatMap((c) => [c.value, c.colour]);
    return ["match", ["to-string", value], ...pairs, NODATA];
  }
  const steps = [];
  legend.forEach((c, i) => {
    if (i < legend.length - 1) steps.push(["<=", ["to-number", value], c.upper], c.colour);
  });
  const last = legend[legend.length - 1].colour;
  return ["case", ["!=", ["typeof", value], "number"], NODATA, ...steps, last];
}

/** Class index (0-based) of a value on a grid, or -1. */
export function classOf(layer, gridId, value) {
  const legend = legendClasses(layer, gridId);
  if (value === null || value === undefined) return -1;
  const classes = layer.grids[gridId];
  if (classes.type === "categorical") return legend.findIndex((c) => c.value === String(value));
  const i = legend.findIndex((c) => value <= c.upper);
  return i === -1 ? legend.length - 1 : i;
}

const isShare = (unit) => unit === "share" || unit === "1";

/** A value for people: shares as percentages, sensible decimals, thousands separators. */
export function formatValue(value, unit = "") {
  if (value === null || value === undefined || Number.isNaN(value)) return "no data";
  if (typeof value !== "number") return String(value);
  if (isShare(unit)) return `${formatNumber(value * 100)}%`;
  return formatNumber(value);
}

export function formatNumber(value) {
  const a = Math.abs(value);
  let digits = 0;
  if (a === 0 || a >= 100) digits = 0;
  else if (a >= 10) digits = 1;
  else if (a >= 1) digits = 2;
  else digits = 3;
  return value.toLocaleString("en-GB", { maximumFractionDigits: digits });
}

/** Unit text shown beside values ("%" is already in shares). */
export function unitText(unit) {
  if (!unit || isShare(unit) || unit === "count") return "";
  return unit;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
export { el };

/** Render the legend of the active layer into `root`. */
export function renderLegend(root, layer, grid, classification, syntheticLayers) {
  root.replaceChildren();
  if (!layer) return;
  root.append(el("h2", {}, layer.title));
  const sub = [unitText(layer.unit) || (isShare(layer.unit) ? "percent" : layer.unit || ""),
    layer.kind === "hotspot" || layer.kind === "peer" ? "" : DIRECTION_TEXT[layer.direction]]
    .filter(Boolean).join(" · ");
  if (sub) root.append(el("p", { class: "sub" }, sub));
  if (layer.synthetic) {
    const names = layer.sources.filter((s) => syntheticLayers.includes(s)).join(", ");
    root.append(el("p", {}, el("span", { class: "badge synthetic" },
      "SYNTHETIC DATA"), ` demonstration data (${names}), not real observations`));
  }
  const classes = layer.grids[grid.id];
  if (!classes) {
    root.append(el("p", { class: "sub" }, "No value on this grid",
      layer.null_reason ? `: ${layer.null_reason}` : "."));
    return;
  }
  const list = el("ul");
  for (const c of legendClasses(layer, grid.id)) {
    list.append(el("li", {}, el("span", { class: "swatch", style: `background:${c.colour}` }),
      c.label, el("span", { class: "count" }, `${c.count}`)));
  }
  if (classes.nodata) {
    list.append(el("li", {}, el("span", { class: "swatch", style: `background:${NODATA}` }),
      "no data", el("span", { class: "count" }, `${classes.nodata}`)));
  }
  root.append(list);
  const method = classes.type === "categorical"
    ? "Categories as computed by the build; numbers are features per class."
    : classes.method === "unique values"
      ? "One class per value; numbers are features per class."
      : `${classification.method}, ${classification.classes} classes, fixed for this build `
        + `(computed over the ${grid.count} features of this grid); numbers are features per class.`;
  root.append(el("p", { class: "method" }, method));
  if (layer.description) root.append(el("p", { class: "description" }, layer.description));
}
