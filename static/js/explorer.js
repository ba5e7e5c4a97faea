/* Draws the usage pages' charts with the vendored Chart.js (static/js/chart.umd.min.js).
 *
 * A chart is a <canvas data-chart="ID"> inside a hidden .chart-box; its data is the
 * <script type="application/json" id="ID"> that Django's json_script wrote (no inline code, so a
 * strict CSP stays possible). Without JavaScript the page shows the same figures as a table; with
 * it, the chart appears and the table folds away. Charts are drawn again after every htmx swap.
 *
 * Payload: {kind: "bar"|"line", stacked, yTitle, labels: [...],
 *           datasets: [{label, data: [number|null], style?: "area"|"projection"|"limit", fold?: "before"|"after"}],
 *           todayIndex?}
 */
(function () {
  "use strict";

  // Ten colours: a wide split draws ten series and "Other" (usage/views/explorer_groups.py).
  var PALETTE = ["#2f5bd3", "#1d9a6c", "#e08a1e", "#8e44ad", "#d64545", "#1e9bb8", "#b5892f", "#5d6d7e", "#c2185b", "#6b8e23"];
  var OTHER = "#a7b0bb";
  var BEFORE = "#6c7683";
  var STYLES = {
    area: { border: "#2f5bd3", fill: "rgba(47, 91, 211, .12)" },
    projection: { border: "#8a5a00", dash: [6, 4] },
    limit: { border: "#b42318", dash: [2, 3] }
  };
  var charts = [];

  function formatNumber(value) {
    if (value === null || value === undefined) { return ""; }
    var abs = Math.abs(value);
    var digits = abs >= 100 ? 0 : abs >= 1 ? 2 : 6;
    return value.toLocaleString(undefined, { maximumFractionDigits: digits });
  }

  function compact(value) {
    return Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 }).format(value);
  }

  function dataset(spec, i) {
    var base = { label: spec.label, data: spec.data, borderWidth: 1.5, spanGaps: false };
    var style = STYLES[spec.style];
    if (style) {
      return Object.assign(base, {
        borderColor: style.border, backgroundColor: style.fill || style.border, borderDash: style.dash || [],
        fill: Boolean(style.fill), pointRadius: 0, pointHitRadius: 6, pointStyle: "line", tension: 0, borderWidth: 2
      });
    }
    // A fold of a wide split's groups ("Top 10 …" before the page, "Other (k more)" after it) is grey.
    var colour = spec.fold === "before" ? BEFORE : spec.fold || /^Other\b/.test(spec.label) ? OTHER : PALETTE[i % PALETTE.length];
    return Object.assign(base, { backgroundColor: colour, borderColor: colour, borderWidth: 0, maxBarThickness: 56 });
  }

  function config(payload) {
    var line = payload.kind === "line";
    return {
      type: line ? "line" : "bar",
      data: { labels: payload.labels, datasets: payload.datasets.map(dataset) },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: Boolean(payload.stacked), grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
          y: {
            stacked: Boolean(payload.stacked), beginAtZero: true,
            title: { display: Boolean(payload.yTitle), text: payload.yTitle },
            ticks: { callback: compact }
          }
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: line ? 24 : 12, boxHeight: 12, usePointStyle: line } },
          tooltip: {
            filter: function (item) { return item.raw !== null && (line || item.raw !== 0); },
            callbacks: { label: function (item) { return " " + item.dataset.label + ": " + formatNumber(item.raw); } }
          }
        }
      }
    };
  }

  function draw(root) {
    if (typeof window.Chart === "undefined") { return; }  // the tables stay: nothing is lost
    // Charts whose canvas an htmx swap removed hold observers: let them go.
    charts = charts.filter(function (chart) {
      if (chart.canvas.isConnected) { return true; }
      chart.destroy();
      return false;
    });
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (window.Chart.getChart(canvas)) { return; }
      var source = document.getElementById(canvas.dataset.chart);
      if (!source) { return; }
      var payload = JSON.parse(source.textContent);
      var box = canvas.closest(".chart-box");
      if (box) { box.hidden = false; }
      var table = box && box.parentElement.querySelector("details.chart-data");
      if (table) { table.open = false; }
      charts.push(new window.Chart(canvas, config(payload)));
    });
  }

  // The filter form sends every field; drop the empty ones so the pushed URL stays short to share.
  function dropEmptyParameters(event) {
    if (!event.detail.elt.matches || !event.detail.elt.matches("form[data-drop-empty]")) { return; }
    var params = event.detail.formData || event.detail.parameters;
    var empty = [];
    params.forEach(function (value, key) { if (value === "") { empty.push(key); } });
    empty.forEach(function (key) { params.delete(key); });
  }

  function start() {
    draw(document);
    document.body.addEventListener("htmx:load", function (event) { draw(event.target); });
    document.body.addEventListener("htmx:configRequest", dropEmptyParameters);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
