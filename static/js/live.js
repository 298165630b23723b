// The live view of a running session (templates/runtimes/backtest_live.html): a read-only
// WebSocket to /app/sessions/<id>/live (login session + same-origin check) that relays the frames
// the host sends to the strategy, plus `snapshot` (the session's row), `observer_state` (account,
// positions and open orders when the socket attached) and `dropped` messages. Reconnects with
// backoff until a snapshot says the session has ended.
(function () {
  "use strict";
  const MAX_EVENTS = 200;
  const root = document.getElementById("live");
  if (!root) return;
  const status = root.querySelector("[data-live-status]");
  const eventsBody = root.querySelector("[data-live-events]");
  const ordersBody = root.querySelector("[data-live-orders]");
  const positionsBody = root.querySelector("[data-live-positions]");
  const accountList = root.querySelector("[data-live-account]");
  // Optional parts (a deployment's page has them; a backtest's live view does not).
  const fillsBody = root.querySelector("[data-live-fills]");
  const equityCell = root.ownerDocument.querySelector("[data-live-equity]");
  const field = (name) => root.querySelector(`[data-live-field="${name}"]`);
  const orders = new Map();
  const positions = new Map();
  let seen = 0, dropped = 0, ended = false, delay = 500;

  const cell = (text, className) => {
    const td = document.createElement("td");
    td.textContent = text == null ? "–" : String(text);
    if (className) td.className = className;
    return td;
  };
  const row = (values) => {
    const tr = document.createElement("tr");
    values.forEach((value) => tr.appendChild(cell(value)));
    return tr;
  };
  const fillTable = (body, items, columns, width) => {
    body.replaceChildren();
    if (!items.length) {
      const tr = document.createElement("tr");
      const td = cell("None", "muted");
      td.colSpan = width;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    items.forEach((item) => body.appendChild(row(columns(item))));
  };
  const drawOrders = () => fillTable(ordersBody, Array.from(orders.values()), (o) => [
    o.id, o.symbol, o.side, o.order_type, o.quantity, o.filled_quantity, o.status], 7);
  const drawPositions = () => fillTable(positionsBody, Array.from(positions.values()), (p) => [
    p.symbol, p.side, p.quantity, p.average_entry_price, p.unrealized_pnl], 5);
  const drawAccount = (account) => {
    if (!account) return;
    if (equityCell) equityCell.textContent = `${account.equity} ${account.currency || ""}`.trim();
    accountList.replaceChildren();
    for (const [label, key] of [["Equity", "equity"], ["Balance", "balance"],
      ["Unrealized P&L", "unrealized_pnl"], ["Margin used", "margin_used"],
      ["Margin available", "margin_available"]]) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = `${account[key]} ${account.currency || ""}`.trim();
      accountList.append(dt, dd);
    }
  };
  const OPEN = new Set(["pending", "pending_cancel", "open", "partially_filled"]);
  const trackOrder = (order) => {
    if (OPEN.has(String(order.status).toLowerCase())) orders.set(order.id, order);
    else orders.delete(order.id);
  };
  const trackPosition = (position) => {
    if (Number(position.quantity) > 0) positions.set(position.id, position);
    else positions.delete(position.id);
  };

  const summary = (frame) => {
    switch (frame.type) {
      case "candle": {
        const b = frame.bar;
        return `${b.symbol} ${b.timeframe} O ${b.open} H ${b.high} L ${b.low} C ${b.close}`;
      }
      case "order": {
        const o = frame.order;
        return `${frame.event} ${o.side} ${o.quantity} ${o.symbol} ${o.order_type} (${o.status})`;
      }
      case "quote": {
        const q = frame.quote;
        return `${q.symbol} bid ${q.bid} ask ${q.ask} last ${q.last}`;
      }
      case "trade": {
        const t = frame.trade;
        return `${t.side || ""} ${t.quantity} ${t.symbol} @ ${t.price}`.trim();
      }
      case "position": {
        const p = frame.position;
        return `${frame.event} ${p.side} ${p.quantity} ${p.symbol}`;
      }
      case "account":
        return `equity ${frame.account.equity} ${frame.account.currency || ""}`.trim();
      case "connection":
        return `${frame.event}${frame.error ? ": " + frame.error : ""}` +
          `${frame.reason ? ": " + frame.reason : ""}`;
      case "error":
        return `${frame.code}: ${frame.message}`;
      case "backtest_complete":
        return "the backtest completed";
      default:
        return "";
    }
  };
  const addEvent = (frame) => {
    const tr = row([frame.type, frame.timestamp, summary(frame)]);
    tr.dataset.type = frame.type;
    eventsBody.prepend(tr);
    while (eventsBody.children.length > MAX_EVENTS) eventsBody.lastElementChild.remove();
    seen += 1;
    field("seen").textContent = seen;
    if (frame.type === "trade" && fillsBody) {
      if (!fillsBody.querySelector("[data-type]")) fillsBody.replaceChildren();
      const t = frame.trade;
      const fill = row([t.timestamp || frame.timestamp, t.symbol, t.side, t.quantity, t.price,
        t.commission]);
      fill.dataset.type = "trade";
      fillsBody.prepend(fill);
      while (fillsBody.children.length > MAX_EVENTS) fillsBody.lastElementChild.remove();
    }
    if (frame.type === "connection" && field("connection")) {
      field("connection").textContent = frame.event;
    }
    if (frame.timestamp) field("time").textContent = frame.timestamp;
  };

  const CONNECTION = {created: "strategy not connected yet", queued: "waiting for a worker",
    waiting: "waiting for the strategy", running: "strategy connected"};
  const onSnapshot = (session) => {
    field("state").textContent = session.state;
    if (field("connection")) {
      field("connection").textContent = CONNECTION[session.state] || "session ended";
    }
    const badge = root.ownerDocument.querySelector("[data-live-badge] .state");
    if (badge) {
      badge.className = `state state-${session.state}`;
      badge.textContent = session.state_label;
    }
    const header = root.ownerDocument.querySelector("[data-live-header-state]");
    if (header) header.textContent = session.state_label;
    if (session.terminal) {
      ended = true;
      status.textContent = `The session has ended (${session.state}${session.failure_reason ? ": " + session.failure_reason : ""}).`;
      const link = document.createElement("a");
      link.href = root.dataset.resultUrl;
      link.textContent = " See its page.";
      status.appendChild(link);
      showOutcome(session);
    }
  };
  // The header's link once the run ended: to its results, or to why it did not complete.
  const showOutcome = (session) => {
    const outcome = root.ownerDocument.querySelector("[data-live-outcome]");
    if (!outcome) return;
    const link = outcome.querySelector("a");
    link.href = root.dataset.resultUrl;
    link.textContent = session.state === "completed" ? "See the results"
      : session.state === "failed" ? "See why it failed" : "See its page";
    const why = outcome.querySelector("[data-live-failure]");
    if (why) why.textContent = session.failure_message || "";
    outcome.hidden = false;
  };
  const onMessage = (message) => {
    // For the optional parts that draw from the stream (static/js/live_charts.js).
    root.dispatchEvent(new CustomEvent("live:message", { detail: message }));
    if (message.type === "snapshot") return onSnapshot(message.session);
    if (message.type === "access_lost") {
      ended = true; // the server refuses this view now: no reconnecting
      status.textContent = `Live view closed: ${message.reason}`;
      return;
    }
    if (message.type === "dropped") {
      dropped += message.count;
      field("dropped").textContent = dropped;
      return;
    }
    if (message.type === "observer_state") {
      drawAccount(message.account);
      (message.positions || []).forEach(trackPosition);
      (message.orders || []).forEach(trackOrder);
      drawPositions();
      drawOrders();
      if (message.simulated_time) field("time").textContent = message.simulated_time;
      return;
    }
    addEvent(message);
    if (message.type === "order") { trackOrder(message.order); drawOrders(); }
    else if (message.type === "position") { trackPosition(message.position); drawPositions(); }
    else if (message.type === "account") drawAccount(message.account);
  };

  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${root.dataset.liveUrl}`);
    socket.addEventListener("open", () => {
      delay = 500;
      if (!ended) status.textContent = "Live: events appear as the session streams them.";
    });
    socket.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      if (ended) return;
      status.textContent = `Disconnected; reconnecting in ${(delay / 1000).toFixed(1)} s…`;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    });
  };
  connect();
})();
