// The look every dashboard chart shares (static/js/charts.js: results, compare, datasets;
// static/js/live_charts.js: the live view), as lightweight-charts options.
window.ParityChartTheme = Object.freeze({
  layout: { background: { color: "#ffffff" }, textColor: "#667085", fontSize: 12,
    attributionLogo: false },
  grid: { vertLines: { color: "#f1f3f7" }, horzLines: { color: "#f1f3f7" } },
  rightPriceScale: { borderColor: "#e3e6ee" },
  timeScale: { borderColor: "#e3e6ee", timeVisible: true, secondsVisible: false },
  autoSize: true,
});
