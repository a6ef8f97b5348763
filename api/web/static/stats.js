// The statistics page's charts: Chart.js draws the numbers of each table from the page's JSON block.
// The charts are hidden from assistive technology: the tables beside them are the accessible form.
"use strict";
(function () {
  var block = document.getElementById("stats-data");
  if (!block || typeof window.Chart === "undefined") {
    return; // no library installed: the tables say everything
  }
  var data = JSON.parse(block.textContent || "{}");
  var rtl = document.documentElement.getAttribute("dir") === "rtl";
  var colours = { civilians: "#0b5cad", children: "#8a4b00", women: "#1d6b35" };
  var series = data.series || {};
  Object.keys(data.charts || {}).forEach(function (by) {
    var canvas = document.querySelector('canvas[data-chart="' + by + '"]');
    var chart = data.charts[by];
    if (!canvas || !chart) {
      return;
    }
    var datasets = Object.keys(chart.series).map(function (key) {
      return { label: series[key] || key, data: chart.series[key], backgroundColor: colours[key] || "#4a5360" };
    });
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: chart.labels, datasets: datasets },
      options: {
        responsive: true,
        animation: false,
        locale: document.documentElement.getAttribute("lang") || "en",
        indexAxis: by === "month" ? "x" : "y",
        // right to left: the month axis runs from the right, and horizontal bars grow leftwards from the right
        scales: {
          x: { reverse: rtl, beginAtZero: true, ticks: { precision: 0 } },
          y: { beginAtZero: true, position: rtl ? "right" : "left", ticks: { precision: 0 } }
        },
        plugins: { legend: { rtl: rtl, position: "bottom" }, tooltip: { rtl: rtl } }
      }
    });
  });
})();
