// The sensor page's chart: the data are in the page (#chart-data, the same values as the
// table below it); uPlot draws the mean of each slice and the min-max band around it.
(function () {
  "use strict";
  var holder = document.getElementById("chart");
  var source = document.getElementById("chart-data");
  if (!holder || !source || typeof uPlot === "undefined") return;
  var d = JSON.parse(source.textContent);
  if (!d.t || d.t.length === 0) return;
  var lang = document.documentElement.lang || "fr";
  var label = d.label + (d.unit ? " (" + d.unit + ")" : "");
  var names = lang === "fr" ? ["min", "moyenne", "max"] : ["min", "mean", "max"];
  var tz = function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); };
  var span = d.t[d.t.length - 1] - d.t[0];
  var tick = uPlot.fmtDate(
    span > 2 * 86400 ? "{DD}/{MM} {HH}:{mm}" : span > 600 ? "{HH}:{mm}" : "{HH}:{mm}:{ss}");
  var full = uPlot.fmtDate("{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}");
  function width() { return Math.max(280, holder.clientWidth || 640); }
  var opts = {
    width: width(),
    height: 320,
    tzDate: tz,
    scales: { x: { time: true } },
    axes: [
      {
        stroke: "#1f2933", grid: { stroke: "#d5dbe1" }, ticks: { stroke: "#d5dbe1" },
        values: function (u, splits) { return splits.map(function (v) { return tick(tz(v)); }); }
      },
      { stroke: "#1f2933", grid: { stroke: "#d5dbe1" }, ticks: { stroke: "#d5dbe1" }, label: label, size: 70 }
    ],
    series: [
      { label: "UTC", value: function (u, v) { return v == null ? "--" : full(tz(v)); } },
      { label: names[0], stroke: "#5b8db8", width: 1 },
      { label: names[1], stroke: "#0b4f8a", width: 2 },
      { label: names[2], stroke: "#5b8db8", width: 1 }
    ],
    bands: [{ series: [3, 1], fill: "rgba(11, 79, 138, 0.12)" }]
  };
  var plot = new uPlot(opts, [d.t, d.min, d.mean, d.max], holder);
  holder.setAttribute("data-points", String(d.t.length));
  window.addEventListener("resize", function () {
    plot.setSize({ width: width(), height: 320 });
  });
})();
