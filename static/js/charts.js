// Charts of the dashboard, drawn with the vendored lightweight-charts from data the page embeds
// with json_script (no extra request). Prices and equity arrive as decimal strings.
(function () {
  const LC = window.LightweightCharts;
  const theme = {
    layout: { background: { color: "#ffffff" }, textColor: "#667085", fontSize: 12,
      attributionLogo: false },
    grid: { vertLines: { color: "#f1f3f7" }, horzLines: { color: "#f1f3f7" } },
    rightPriceScale: { borderColor: "#e3e6ee" },
    timeScale: { borderColor: "#e3e6ee", timeVisible: true, secondsVisible: false },
    autoSize: true,
  };
  const readJson = (id) => JSON.parse(document.getElementById(id).textContent);

  function candlesOf(columns) {
    return columns.time.map((time, i) => ({
      time, open: Number(columns.open[i]), high: Number(columns.high[i]),
      low: Number(columns.low[i]), close: Number(columns.close[i]),
    }));
  }

  // Fills as markers (a result's price chart): buy = arrow up below its candle, sell = arrow
  // down above it; times are already those of their candles, in order.
  function markersOf(columns) {
    return columns.time.map((time, i) => columns.side[i] === "BUY"
      ? { time, position: "belowBar", shape: "arrowUp", color: "#2b8a3e" }
      : { time, position: "aboveBar", shape: "arrowDown", color: "#c92a2a" });
  }

  function drawCandles(element) {
    const data = readJson(element.dataset.source);
    const symbols = Object.keys(data);
    if (!symbols.length) return;
    const chart = LC.createChart(element, theme);
    const series = chart.addSeries(LC.CandlestickSeries, {
      upColor: "#2b8a3e", downColor: "#c92a2a", borderVisible: false,
      wickUpColor: "#2b8a3e", wickDownColor: "#c92a2a",
    });
    const markers = data[symbols[0]].markers ? LC.createSeriesMarkers(series, []) : null;
    const show = (symbol) => {
      series.setData(candlesOf(data[symbol]));
      if (markers) markers.setMarkers(markersOf(data[symbol].markers));
      chart.timeScale().fitContent();
      document.querySelectorAll(`[data-symbol-for="${element.id}"]`).forEach((button) => {
        button.setAttribute("aria-pressed", String(button.dataset.symbol === symbol));
      });
      document.querySelectorAll(`[data-fills-for="${element.id}"]`).forEach((note) => {
        note.hidden = note.dataset.symbol !== symbol;
      });
      element.dataset.symbol = symbol;
    };
    document.querySelectorAll(`[data-symbol-for="${element.id}"]`).forEach((button) => {
      button.addEventListener("click", () => show(button.dataset.symbol));
    });
    show(symbols[0]);
  }

  function pointsOf(columns, scale) {
    return columns.time.map((time, i) => ({ time, value: Number(columns.value[i]) * scale }));
  }

  function drawEquity(element) {
    const data = readJson(element.dataset.source);
    if (!data.equity.time.length) return;
    const chart = LC.createChart(element, theme);
    const equity = chart.addSeries(LC.AreaSeries, {
      lineColor: "#3b5bdb", topColor: "rgba(59, 91, 219, .25)", bottomColor: "rgba(59, 91, 219, .02)",
      lineWidth: 2, priceFormat: { type: "price", precision: 2, minMove: 0.01 },
    });
    equity.setData(pointsOf(data.equity, 1));
    const drawdown = chart.addSeries(LC.AreaSeries, {
      lineColor: "#c92a2a", topColor: "rgba(201, 42, 42, .02)", bottomColor: "rgba(201, 42, 42, .3)",
      lineWidth: 1, invertFilledArea: true,
      priceFormat: { type: "percent", precision: 2, minMove: 0.01 },
    }, 1);
    drawdown.setData(pointsOf(data.drawdown, 100));
    if (element.dataset.benchmark) drawBenchmark(chart, readJson(element.dataset.benchmark));
    const panes = chart.panes();
    if (panes.length > 1) panes[1].setStretchFactor(0.4);
    chart.timeScale().fitContent();
  }

  // Buy-and-hold of the same symbols (the result's trade analysis), on the equity's scale.
  function drawBenchmark(chart, columns) {
    if (!columns || !columns.time.length) return;
    const line = chart.addSeries(LC.LineSeries, {
      color: "#868e96", lineWidth: 1, lineStyle: LC.LineStyle.Dashed,
      priceLineVisible: false, lastValueVisible: false,
      priceFormat: { type: "price", precision: 2, minMove: 0.01 },
    });
    line.setData(pointsOf(columns, 1));
  }

  // Several runs' equity, each normalised to 1 at its start: one line per run, in its colour.
  function drawCompare(element) {
    const runs = readJson(element.dataset.source);
    if (!runs.length) return;
    const chart = LC.createChart(element, theme);
    for (const run of runs) {
      const line = chart.addSeries(LC.LineSeries, {
        color: run.colour, lineWidth: 2, title: "",
        priceFormat: { type: "price", precision: 4, minMove: 0.0001 },
      });
      line.setData(pointsOf(run, 1));
    }
    chart.timeScale().fitContent();
  }

  document.addEventListener("DOMContentLoaded", () => {
    // Legend swatches of runs take their colour from data-colour: a style attribute would be
    // blocked by the Content-Security-Policy, a property set from script is not.
    document.querySelectorAll(".swatch[data-colour]").forEach((swatch) => {
      swatch.style.background = swatch.dataset.colour;
    });
    if (!LC) return;
    document.querySelectorAll("[data-chart=candles]").forEach(drawCandles);
    document.querySelectorAll("[data-chart=equity]").forEach(drawEquity);
    document.querySelectorAll("[data-chart=compare]").forEach(drawCompare);
  });
})();
