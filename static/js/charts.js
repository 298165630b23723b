// Charts of the dashboard, drawn with the vendored lightweight-charts from data the page embeds
// with json_script (no extra request). Prices and equity arrive as decimal strings.
(function () {
  const LC = window.LightweightCharts;
  const theme = window.ParityChartTheme; // static/js/chart_theme.js
  const readJson = (id) => JSON.parse(document.getElementById(id).textContent);

  function candlesOf(columns) {
    return columns.time.map((time, i) => ({
      time, open: Number(columns.open[i]), high: Number(columns.high[i]),
      low: Number(columns.low[i]), close: Number(columns.close[i]),
    }));
  }

  // The whole run at any width. lightweight-charts keeps bars at least 0.5 px apart by
  // default, so 2,000 candles could not fit a 390 px phone and the run's start was cut off:
  // bars may get thinner, the chart fits its content on load, keeps the visible time range when
  // its container is resized, and fits again once the new width is laid out.
  function keepWholeRunVisible(chart, element) {
    const timeScale = chart.timeScale();
    timeScale.applyOptions({ minBarSpacing: 0.01, lockVisibleTimeRangeOnResize: true });
    timeScale.fitContent();
    let width = element.clientWidth;
    element.dataset.fittedWidth = String(width);  // tells the browser tests a fit is done
    new ResizeObserver(() => {
      if (element.clientWidth === width) return;
      width = element.clientWidth;
      requestAnimationFrame(() => {
        timeScale.fitContent();
        element.dataset.fittedWidth = String(width);
      });
    }).observe(element);
  }

  // Fill markers, clustered by time when zoomed out: 1,000 arrows on a zoomed-out chart are a
  // smear. The candles are cut into buckets of a power-of-two number of candles, the fewest that
  // are MARKER_SPACING_PX wide at the current zoom; each bucket gets one marker per side, at its
  // first fill, saying how many it stands for ("12 buys"). Zoomed in until a candle is that
  // wide, a bucket is one candle and every candle's fills have their own marker again. Buckets
  // start at multiples of their size, so panning does not regroup them; only zooming does.
  const MARKER_SPACING_PX = 40;

  function bucketCandlesAt(chart, candleCount) {
    const timeScale = chart.timeScale();
    const range = timeScale.getVisibleLogicalRange();
    const shown = range ? Math.max(range.to - range.from, 1) : candleCount;
    const spacing = timeScale.width() / shown;  // px per candle
    let bucket = 1;
    while (bucket * spacing < MARKER_SPACING_PX && bucket < candleCount) bucket *= 2;
    return bucket;
  }

  function clusteredMarkersOf(candleIndex, columns, bucket) {
    const groups = new Map();  // "<bucket>:<side>" -> {time, side, count}, in time order
    columns.time.forEach((time, i) => {
      const key = `${Math.floor(candleIndex.get(time) / bucket)}:${columns.side[i]}`;
      const group = groups.get(key);
      if (group) group.count += 1;
      else groups.set(key, { time, side: columns.side[i], count: 1 });
    });
    return Array.from(groups.values()).sort((a, b) => a.time - b.time).map((group) => {
      const buy = group.side === "BUY";
      const text = group.count > 1 ? `${group.count} ${buy ? "buys" : "sells"}` : "";
      return buy
        ? { time: group.time, position: "belowBar", shape: "arrowUp", color: "#2b8a3e", text }
        : { time: group.time, position: "aboveBar", shape: "arrowDown", color: "#c92a2a", text };
    });
  }

  function clusterFillMarkers(chart, series) {
    const plugin = LC.createSeriesMarkers(series, []);
    let candleIndex = new Map();
    let fills = { time: [], side: [] };
    let bucket = 0;
    const render = (force) => {
      const next = bucketCandlesAt(chart, candleIndex.size);
      if (!force && next === bucket) return;
      bucket = next;
      plugin.setMarkers(clusteredMarkersOf(candleIndex, fills, bucket));
    };
    chart.timeScale().subscribeVisibleLogicalRangeChange(() => render(false));
    return {
      setFills(candleTimes, columns) {
        candleIndex = new Map(candleTimes.map((time, i) => [time, i]));
        fills = columns;
        render(true);
      },
      bucket: () => bucket,
      markers: () => plugin.markers(),
    };
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
    const markers = data[symbols[0]].markers ? clusterFillMarkers(chart, series) : null;
    keepWholeRunVisible(chart, element);
    const show = (symbol) => {
      series.setData(candlesOf(data[symbol]));
      chart.timeScale().fitContent();
      if (markers) markers.setFills(data[symbol].time, data[symbol].markers);
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
    element.parityChart = { chart, series, markers };  // read back by the browser tests
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
    keepWholeRunVisible(chart, element);
    element.parityChart = { chart, series: equity };  // read back by the browser tests
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
    keepWholeRunVisible(chart, element);
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
