// The live view's charts and progress (templates/runtimes/backtest_live.html): an equity chart
// and a price chart that grow as the backtest streams, the progress in percent and an ETA. The
// price chart shows one symbol: the run's only one, or the one picked (the page keeps the
// candles of up to MAX_PRICE_SYMBOLS symbols, so a pick shows its history at once).
// Fed by static/js/live.js, which re-dispatches every socket message on #live as "live:message".
// Equity is marked at each close as the engine marks it: the account's balance (cash plus the
// cost of what is held) plus each position's unrealised P&L at the last close.
// Bounded: past MAX_POINTS a series is thinned to half (pairs of candles merged, every other
// equity point kept), so a long run costs the page the same as a short one.
(function () {
  "use strict";
  const MAX_POINTS = 2000;
  const MAX_PRICE_SYMBOLS = 20; // symbols whose candles the page keeps (the picker offers them)
  const ETA_WINDOW_MS = 15000; // the rate of simulated over wall time is measured over this
  const SAMPLE_EVERY_MS = 200;
  const root = document.getElementById("live");
  if (!root) return;
  const field = (name) => root.querySelector(`[data-live-field="${name}"]`);
  const percentBar = root.querySelector("[data-live-percent-bar]");
  const seconds = (iso) => Math.floor(Date.parse(iso) / 1000);

  let period = null; // {first, last} in ms of simulated time
  let ended = false;
  const samples = []; // [wall ms, simulated ms]
  // Until the host's account arrives, the cash the run starts with.
  let balance = root.dataset.initialCash ? Number(root.dataset.initialCash) : null;
  const positions = new Map(); // symbol -> {sign, quantity, entry}
  const closes = new Map(); // symbol -> last close
  const picker = root.querySelector("[data-live-price-pick]");
  let priceSymbol = picker ? picker.value : null;
  const equityPoints = [];
  const candlesBySymbol = new Map(); // symbol -> its candles so far (thinned like the rest)
  const candlesOf = (symbol) => {
    if (!candlesBySymbol.has(symbol) && candlesBySymbol.size < MAX_PRICE_SYMBOLS) {
      candlesBySymbol.set(symbol, []);
    }
    return candlesBySymbol.get(symbol);
  };

  const LC = window.LightweightCharts;
  const theme = window.ParityChartTheme; // static/js/chart_theme.js
  const chartIn = (name) => root.querySelector(`[data-live-chart="${name}"]`);
  let equitySeries = null, priceSeries = null;
  if (LC && chartIn("equity") && chartIn("price")) {
    equitySeries = LC.createChart(chartIn("equity"), theme).addSeries(LC.AreaSeries, {
      lineColor: "#3b5bdb", topColor: "rgba(59, 91, 219, .25)",
      bottomColor: "rgba(59, 91, 219, .02)", lineWidth: 2,
      priceFormat: { type: "price", precision: 2, minMove: 0.01 },
    });
    priceSeries = LC.createChart(chartIn("price"), theme).addSeries(LC.CandlestickSeries, {
      upColor: "#2b8a3e", downColor: "#c92a2a", borderVisible: false,
      wickUpColor: "#2b8a3e", wickDownColor: "#c92a2a",
    });
    chartIn("price").parityChart = { series: priceSeries };  // read back by the browser tests
  }

  const thinLine = (points) => points.filter((_, i) => i % 2 === 1 || i === points.length - 1);
  const thinCandles = (points) => {
    const merged = [];
    for (let i = 0; i < points.length; i += 2) {
      const a = points[i], b = points[i + 1] || a;
      merged.push({ time: a.time, open: a.open, close: b.close,
        high: Math.max(a.high, b.high), low: Math.min(a.low, b.low) });
    }
    return merged;
  };
  // Adds (or, at the same time, replaces) the last point; redraws all only when thinned.
  const grow = (points, series, point, thin) => {
    const last = points[points.length - 1];
    if (last && point.time < last.time) return;
    if (last && point.time === last.time) points[points.length - 1] = point;
    else points.push(point);
    if (points.length > MAX_POINTS) {
      const kept = thin(points);
      points.splice(0, points.length, ...kept);
      if (series) series.setData(points);
    } else if (series) {
      series.update(points[points.length - 1]);
    }
  };

  const equityAtClose = () => {
    if (balance === null) return null;
    let equity = balance;
    for (const [symbol, p] of positions) {
      const close = closes.has(symbol) ? closes.get(symbol) : p.entry;
      equity += p.sign * p.quantity * (close - p.entry);
    }
    return equity;
  };

  const onCandle = (frame) => {
    const bar = frame.bar;
    closes.set(bar.symbol, Number(bar.close));
    if (priceSymbol === null) {
      priceSymbol = bar.symbol;
      const note = root.querySelector("[data-live-price-symbol]");
      if (note) note.textContent = priceSymbol;
    }
    const time = seconds(bar.timestamp);
    const candles = candlesOf(bar.symbol);
    if (candles) {
      grow(candles, bar.symbol === priceSymbol ? priceSeries : null, { time,
        open: Number(bar.open), high: Number(bar.high), low: Number(bar.low),
        close: Number(bar.close) }, thinCandles);
    }
    const equity = equityAtClose();
    if (equity !== null) grow(equityPoints, equitySeries, { time, value: equity }, thinLine);
    root.dataset.equityPoints = equityPoints.length;
    root.dataset.pricePoints = (candlesOf(priceSymbol) || []).length;
    simulated(Date.parse(frame.timestamp || bar.timestamp));
  };

  // Another symbol picked: its candles so far, then it grows as the others do.
  if (picker) {
    picker.addEventListener("change", () => {
      priceSymbol = picker.value;
      const candles = candlesOf(priceSymbol) || [];
      if (priceSeries) priceSeries.setData(candles);
      root.dataset.pricePoints = candles.length;
    });
  }

  const trackPosition = (p) => {
    const quantity = Number(p.quantity);
    if (quantity > 0) {
      positions.set(p.symbol, { sign: String(p.side).toUpperCase() === "SHORT" ? -1 : 1,
        quantity, entry: Number(p.average_entry_price) });
    } else positions.delete(p.symbol);
  };

  const duration = (ms) => {
    const total = Math.max(0, Math.round(ms / 1000));
    const h = Math.floor(total / 3600), m = Math.floor(total / 60) % 60, s = total % 60;
    if (h) return `${h} h ${m} min`;
    return m ? `${m} min ${s} s` : `${s} s`;
  };

  // Progress is the simulated time's share of the period; the ETA divides what is left by the
  // rate the simulated time moved over the last ETA_WINDOW_MS of wall time.
  const simulated = (moment) => {
    if (!period || !Number.isFinite(moment) || ended) return;
    const now = performance.now();
    // A fast run streams thousands of frames a second: measure and redraw a few times a second.
    if (samples.length && now - samples[samples.length - 1][0] < SAMPLE_EVERY_MS) return;
    samples.push([now, moment]);
    while (samples.length > 2 && now - samples[1][0] > ETA_WINDOW_MS) samples.shift();
    const share = Math.min(Math.max((moment - period.first) / (period.last - period.first), 0), 1);
    showPercent(Math.floor(share * 100));
    const [wall0, sim0] = samples[0];
    const rate = (moment - sim0) / (now - wall0);
    if (now - wall0 > 500 && rate > 0) {
      field("eta").textContent = `${duration((period.last - moment) / rate)} left`;
    }
  };
  const showPercent = (percent) => {
    field("percent").textContent = `${percent}%`;
    if (percentBar) percentBar.value = percent;
  };

  const onSnapshot = (session) => {
    const first = session.period && session.period.first;
    const last = session.period && session.period.last;
    if (first && last && Date.parse(last) > Date.parse(first)) {
      period = { first: Date.parse(first), last: Date.parse(last) };
    }
    if (session.terminal) {
      ended = true;
      if (session.state === "completed") showPercent(100);
      field("eta").textContent = "–";
    }
  };

  root.addEventListener("live:message", (event) => {
    const message = event.detail;
    switch (message.type) {
      case "snapshot": return onSnapshot(message.session);
      case "observer_state":
        if (message.account) balance = Number(message.account.balance);
        (message.positions || []).forEach(trackPosition);
        return;
      case "account": balance = Number(message.account.balance); return;
      case "position": trackPosition(message.position); return;
      case "candle": onCandle(message); return;
      default:
        if (message.timestamp) simulated(Date.parse(message.timestamp));
    }
  });
})();
