// The resync dashboard: reads this server's performance API and draws it with uPlot.
// No framework and nothing from any other host. For tests, the page's state is in
// attributes: <body data-ready="1"> after the first successful refresh, data-errors (every
// JavaScript error, one a line), data-auth (unknown | required | ok); each chart's
// container has data-points (the values it plots), #health data-components and #advice
// data-count.
(function () {
  "use strict";

  const API = "/api/performance";
  const TOKEN_KEY = "resync.perfApiToken";
  const REFRESH_MS = 5000;
  const PLOT_HEIGHT = 200;
  const COLORS = ["#2f6fc6", "#1f8a4c", "#c27c0e", "#8e44ad", "#c62f2f", "#16a0a0", "#7a5230", "#d0487f"];
  const STATUS_RANK = { critical: 0, degraded: 1, healthy: 2 };
  // Tick steps of a bytes axis: 1, 2, 4 … 512 B, then the same in KiB, MiB and GiB.
  const BINARY_STEPS = [0, 1, 2, 3].flatMap((power) =>
    [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((step) => step * Math.pow(1024, power)));

  // ---- errors: recorded in <body data-errors> as well as on the console ----

  const errors = [];

  function describe(error) {
    if (error instanceof Error) {
      return error.name + ": " + error.message;
    }
    return String(error);
  }

  function recordError(text) {
    errors.push(text);
    document.body.dataset.errors = errors.join("\n");
  }

  window.onerror = function (message, source, line, column, error) {
    recordError((error ? describe(error) : String(message)) + " (" + source + ":" + line + ":" + column + ")");
    return false; // the console shows it too
  };
  window.addEventListener("unhandledrejection", function (event) {
    recordError("unhandled rejection: " + describe(event.reason));
  });
  document.addEventListener("securitypolicyviolation", function (event) {
    recordError("blocked by the content security policy: " + event.violatedDirective + " " + event.blockedURI);
  });
  // A stylesheet or script that failed to load (these events do not reach window.onerror).
  window.addEventListener("error", function (event) {
    const target = event.target;
    if (target && target !== window && (target.src || target.href)) {
      recordError("failed to load " + (target.src || target.href));
    }
  }, true);

  // ---- the token ----

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (_) {
      return null; // storage disabled: the form is asked again on each load
    }
  }

  function storeToken(token) {
    try {
      if (token) {
        sessionStorage.setItem(TOKEN_KEY, token);
      } else {
        sessionStorage.removeItem(TOKEN_KEY);
      }
    } catch (_) {
      // storage disabled: nothing kept
    }
    byId("forget-token").hidden = !token;
  }

  // `/#token=…` stores the token like the form does, then drops it from the address bar.
  function tokenFromFragment() {
    const prefix = "#token=";
    if (location.hash.startsWith(prefix)) {
      storeToken(decodeURIComponent(location.hash.slice(prefix.length)));
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  // ---- the API ----

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.name = "ApiError";
      this.status = status;
    }
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = storedToken();
    if (token) {
      headers.Authorization = "Bearer " + token;
    }
    let response;
    try {
      response = await fetch(API + path, { headers: headers, cache: "no-store" });
    } catch (error) {
      throw new ApiError(0, "cannot reach the server (" + describe(error) + ")");
    }
    if (response.status === 401) {
      throw new ApiError(401, "the API token is missing or wrong");
    }
    let body;
    try {
      body = await response.json();
    } catch (_) {
      throw new ApiError(response.status, "GET " + API + path + " answered " + response.status + " without JSON");
    }
    // The health route answers 503 with its report when the verdict is critical.
    const critical = path === "/health" && response.status === 503;
    if (!response.ok && !critical) {
      const message = body && body.error ? body.error.message : "status " + response.status;
      throw new ApiError(response.status, "GET " + API + path + ": " + message);
    }
    return body;
  }

  // ---- state ----

  const state = {
    samples: [],
    interval: null,
    capacity: null,
    range: 900,
    reload: true,
    timer: null,
    refreshing: false,
    ready: false,
    plots: {},
  };

  function wanted() {
    return Math.max(2, Math.min(state.capacity, Math.ceil(state.range / state.interval) + 1));
  }

  async function loadHistory() {
    if (state.reload || state.interval === null) {
      // One sample first: the interval and the ring's capacity say how many make the range.
      const head = await api("/history?limit=1");
      state.interval = head.sample_interval_seconds;
      state.capacity = head.capacity;
      const all = await api("/history?limit=" + wanted());
      state.samples = all.samples;
      state.reload = false;
    } else {
      const last = state.samples[state.samples.length - 1];
      const query = last ? "?since=" + last.unix_seconds + "&limit=" + wanted() : "?limit=" + wanted();
      const more = await api("/history" + query);
      state.interval = more.sample_interval_seconds;
      state.capacity = more.capacity;
      const after = last ? last.unix_seconds : -Infinity;
      for (const sample of more.samples) {
        if (sample.unix_seconds > after) {
          state.samples.push(sample);
        }
      }
    }
    const newest = state.samples.length ? state.samples[state.samples.length - 1].unix_seconds : 0;
    state.samples = state.samples.filter((sample) => sample.unix_seconds >= newest - state.range);
  }

  // ---- formatting ----

  function byId(id) {
    return document.getElementById(id);
  }

  function el(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (key === "text") {
        node.textContent = value;
      } else {
        node.setAttribute(key, value);
      }
    }
    for (const child of children || []) {
      node.append(child);
    }
    return node;
  }

  function fixed(value, digits) {
    return Number(value).toFixed(digits);
  }

  function formatBytes(value) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let scaled = Math.abs(value);
    let unit = 0;
    while (scaled >= 1024 && unit < units.length - 1) {
      scaled /= 1024;
      unit += 1;
    }
    const sign = value < 0 ? "-" : "";
    return sign + fixed(scaled, scaled >= 100 || unit === 0 ? 0 : 1) + " " + units[unit];
  }

  function format(value, unit) {
    if (value === null || value === undefined || !Number.isFinite(value)) {
      return "–";
    }
    switch (unit) {
      case "%":
        return fixed(value, 1) + " %";
      case "bytes":
        return formatBytes(value);
      case "ms":
        return fixed(value, value < 1 ? 3 : value < 10 ? 2 : 0) + " ms";
      case "/s":
        return fixed(value, value < 10 ? 2 : 0) + "/s";
      default:
        return String(value);
    }
  }

  function formatAxis(value, unit) {
    if (unit === "bytes") {
      return formatBytes(value);
    }
    if (unit === "%") {
      return fixed(value, 0);
    }
    return String(Math.round(value * 1000) / 1000);
  }

  // ---- series from the history ----

  // One series per name (cache or pool), in order of first appearance.
  function perName(samples, list, value) {
    const names = [];
    for (const sample of samples) {
      for (const entry of list(sample)) {
        if (!names.includes(entry.name)) {
          names.push(entry.name);
        }
      }
    }
    return names.map((name) => ({
      label: name,
      values: samples.map((sample) => {
        const entry = list(sample).find((candidate) => candidate.name === name);
        return entry ? value(entry) : null;
      }),
    }));
  }

  // A cumulative counter as a rate per second between consecutive samples (null for the
  // first sample, a missing figure, or a counter that went down: the server restarted).
  function rate(samples, counter) {
    return samples.map((sample, index) => {
      if (index === 0) {
        return null;
      }
      const previous = samples[index - 1];
      const now = counter(sample);
      const before = counter(previous);
      const seconds = sample.unix_seconds - previous.unix_seconds;
      if (now === null || before === null || now < before || seconds <= 0) {
        return null;
      }
      return (now - before) / seconds;
    });
  }

  function gatewayField(field) {
    return (sample) => (sample.gateway ? sample.gateway[field] : null);
  }

  function l2Field(field) {
    return (sample) => (sample.gateway && sample.gateway.l2 ? sample.gateway.l2[field] : null);
  }

  function percent(value) {
    return value === null || value === undefined ? null : value * 100;
  }

  const CHARTS = [
    {
      id: "cache-hit-rate",
      unit: "%",
      empty: "no cache registered",
      series: (samples) => perName(samples, (s) => s.caches, (c) => percent(c.interval_hit_rate)),
    },
    {
      id: "cache-memory",
      unit: "bytes",
      empty: "no cache registered",
      series: (samples) => {
        const used = perName(samples, (s) => s.caches, (c) => c.weighted_bytes);
        const bound = perName(samples, (s) => s.caches, (c) => c.max_memory_bytes);
        const out = [];
        used.forEach((series, index) => {
          out.push({ label: series.label + " bytes", values: series.values, color: index });
          out.push({ label: series.label + " bound", values: bound[index].values, color: index, dash: [6, 4] });
        });
        return out;
      },
    },
    {
      id: "pool-utilization",
      unit: "%",
      empty: "no pool registered",
      series: (samples) => perName(samples, (s) => s.pools, (p) => percent(p.interval_utilization)),
    },
    {
      id: "pool-acquire",
      unit: "ms",
      empty: "no pool registered",
      series: (samples) =>
        perName(samples, (s) => s.pools, (p) =>
          p.interval_acquire_p95_seconds === null ? null : p.interval_acquire_p95_seconds * 1000),
    },
    {
      id: "gateway-traffic",
      unit: "/s",
      empty: "no gateway in this server",
      series: (samples) => {
        if (!samples.some((s) => s.gateway)) {
          return [];
        }
        const bypass = (s) =>
          s.gateway ? s.gateway.requests - s.gateway.hits - s.gateway.stale - s.gateway.misses : null;
        return [
          { label: "hit", values: rate(samples, gatewayField("hits")) },
          { label: "stale", values: rate(samples, gatewayField("stale")) },
          { label: "miss", values: rate(samples, gatewayField("misses")) },
          { label: "bypass", values: rate(samples, bypass) },
        ];
      },
    },
    {
      id: "gateway-l2",
      unit: "/s",
      hideWhenEmpty: true,
      series: (samples) => {
        if (!samples.some((s) => s.gateway && s.gateway.l2)) {
          return [];
        }
        return [
          { label: "hit", values: rate(samples, l2Field("hits")) },
          { label: "miss", values: rate(samples, l2Field("misses")) },
          { label: "other version", values: rate(samples, l2Field("other_version")) },
          { label: "error", values: rate(samples, l2Field("lookup_errors")) },
          { label: "skipped", values: rate(samples, l2Field("skipped")) },
        ];
      },
    },
  ];

  // ---- rendering ----

  function plotOptions(chart, series, width) {
    return {
      width: width,
      height: PLOT_HEIGHT,
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true },
        y: chart.unit === "%"
          ? { range: [0, 100] }
          : { range: (_, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { stroke: "#6a7283", grid: { stroke: "#eef0f4" }, ticks: { stroke: "#dde1e8" } },
        Object.assign({
          stroke: "#6a7283",
          size: 64,
          grid: { stroke: "#eef0f4" },
          ticks: { stroke: "#dde1e8" },
          values: (_, splits) => splits.map((value) => formatAxis(value, chart.unit)),
        }, chart.unit === "bytes" ? { incrs: BINARY_STEPS } : {}),
      ],
      series: [{}].concat(series.map((one, index) => ({
        label: one.label,
        stroke: COLORS[(one.color === undefined ? index : one.color) % COLORS.length],
        width: 1.5,
        dash: one.dash,
        points: { size: 4 },
        value: (_, value) => format(value, chart.unit),
      }))),
    };
  }

  function renderChart(chart, samples) {
    const container = byId("chart-" + chart.id);
    const figure = container.parentElement;
    const series = chart.series(samples);
    const points = series.reduce(
      (sum, one) => sum + one.values.filter((value) => value !== null && Number.isFinite(value)).length, 0);
    const previous = state.plots[chart.id];
    if (series.length === 0) {
      if (previous) {
        previous.plot.destroy();
        delete state.plots[chart.id];
      }
      figure.hidden = Boolean(chart.hideWhenEmpty);
      container.replaceChildren(el("div", { class: "empty", text: chart.empty || "no data" }));
      container.dataset.points = "0";
      return;
    }
    figure.hidden = false;
    const data = [samples.map((sample) => sample.unix_seconds)].concat(series.map((one) => one.values));
    const key = series.map((one) => one.label).join("\u0000");
    if (previous && previous.key === key) {
      previous.plot.setData(data);
    } else {
      if (previous) {
        previous.plot.destroy();
      }
      container.replaceChildren();
      const width = Math.max(240, container.clientWidth);
      state.plots[chart.id] = { key: key, plot: new uPlot(plotOptions(chart, series, width), data, container) };
    }
    container.dataset.points = String(points);
  }

  function resizePlots() {
    for (const [id, entry] of Object.entries(state.plots)) {
      const width = Math.max(240, byId("chart-" + id).clientWidth);
      entry.plot.setSize({ width: width, height: PLOT_HEIGHT });
    }
  }

  function renderHealth(report) {
    const overall = byId("overall");
    overall.dataset.status = report.status;
    overall.textContent = report.status;
    byId("health-window").textContent = "judged over the last " + fixed(report.window_seconds, 0) + " s";
    const names = Object.keys(report.components).sort((a, b) => {
      const rank = STATUS_RANK[report.components[a].status] - STATUS_RANK[report.components[b].status];
      return rank !== 0 ? rank : a.localeCompare(b);
    });
    const cards = names.map((name) => {
      const component = report.components[name];
      const reasons = component.reasons.length
        ? el("ul", {}, component.reasons.map((reason) =>
          el("li", { title: reason.code + ": measured " + reason.measured + ", threshold " + reason.threshold },
            [reason.message])))
        : el("div", { class: "none", text: "nothing to report" });
      return el("div", { class: "component", "data-status": component.status, "data-name": name }, [
        el("div", { class: "component-head" }, [
          el("span", { text: name }),
          el("span", { class: "component-status", text: component.status }),
        ]),
        reasons,
      ]);
    });
    const health = byId("health");
    health.replaceChildren(...cards);
    health.dataset.components = String(names.length);
  }

  function renderAdvice(recommendations) {
    const advice = byId("advice");
    advice.dataset.count = String(recommendations.length);
    if (recommendations.length === 0) {
      advice.replaceChildren(el("div", { class: "nothing",
        text: "No recommendations: nothing measured over the health window calls for a change." }));
      return;
    }
    const rows = recommendations.map((item) => {
      const evidence = el("ul", { class: "evidence" }, Object.entries(item.evidence).map(([key, value]) =>
        el("li", {}, [el("code", { text: key }), " " + String(Math.round(value * 10000) / 10000)])));
      const change = item.change
        ? el("span", {}, [el("code", { text: item.change.key }), " " + item.change.current + " → " + item.change.suggested])
        : "–";
      return el("tr", { "data-code": item.code }, [
        el("td", {}, [el("span", { class: "severity severity-" + item.severity, text: item.severity })]),
        el("td", { text: item.component }),
        el("td", {}, [item.message, el("div", { class: "muted", text: item.code })]),
        el("td", {}, [evidence]),
        el("td", {}, [change]),
      ]);
    });
    advice.replaceChildren(el("table", { class: "advice" }, [
      el("thead", {}, [el("tr", {}, ["Severity", "Component", "Finding", "Evidence", "Suggested change"]
        .map((title) => el("th", { text: title })))]),
      el("tbody", {}, rows),
    ]));
  }

  function renderTiles(samples) {
    const last = samples[samples.length - 1];
    const previous = samples[samples.length - 2];
    const gateway = last && last.gateway;
    let rps = null;
    if (gateway && previous && previous.gateway && gateway.requests >= previous.gateway.requests) {
      const seconds = last.unix_seconds - previous.unix_seconds;
      rps = seconds > 0 ? (gateway.requests - previous.gateway.requests) / seconds : null;
    }
    byId("tile-rps").textContent = gateway ? format(rps, "/s") : "no gateway";
    byId("tile-hit").textContent = gateway ? format(percent(gateway.interval_hit_rate), "%") : "–";
    byId("tile-p95").textContent = gateway && gateway.interval_request_p95_seconds !== null
      ? format(gateway.interval_request_p95_seconds * 1000, "ms") : "–";
    const l2 = gateway && gateway.l2;
    const l2Tile = byId("tile-l2");
    l2Tile.textContent = l2 ? (l2.available ? "available" : "unavailable") : "not configured";
    l2Tile.dataset.status = l2 ? (l2.available ? "healthy" : "critical") : "unknown";
    byId("tile-samples").textContent = String(samples.length);
    byId("interval").textContent = state.interval === null ? "" : "one sample every " + state.interval + " s";
  }

  function render(health, advice) {
    renderHealth(health);
    for (const chart of CHARTS) {
      renderChart(chart, state.samples);
    }
    renderTiles(state.samples);
    renderAdvice(advice);
    byId("updated").textContent = "updated " + new Date().toLocaleTimeString() + " · every " + REFRESH_MS / 1000 + " s";
  }

  function showProblem(message) {
    const problem = byId("problem");
    problem.hidden = !message;
    problem.textContent = message || "";
  }

  // ---- the refresh loop ----

  function askForToken() {
    const refused = Boolean(storedToken());
    storeToken(null);
    document.body.dataset.auth = "required";
    byId("token-refused").hidden = !refused;
    byId("token-form").hidden = false;
    byId("token-input").focus();
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, REFRESH_MS);
  }

  async function refresh() {
    if (state.refreshing) {
      return;
    }
    state.refreshing = true;
    let again = true;
    try {
      const [health, , cacheAdvice, poolAdvice] = await Promise.all([
        api("/health"),
        loadHistory(),
        api("/cache/recommendations"),
        api("/pools/recommendations"),
      ]);
      document.body.dataset.auth = "ok";
      byId("token-form").hidden = true;
      showProblem(null);
      render(health, cacheAdvice.recommendations.concat(poolAdvice.recommendations));
      if (!state.ready) {
        state.ready = true;
        document.body.dataset.ready = "1";
        console.info("resync dashboard: first refresh: " + state.samples.length + " samples, "
          + Object.keys(health.components).length + " components");
      }
    } catch (error) {
      if (!(error instanceof ApiError)) {
        // A bug of this page, not a server that is down: recorded, and shown.
        recordError(describe(error));
        console.error("resync dashboard error:", error);
        showProblem("The dashboard failed: " + describe(error));
      } else if (error.status === 401) {
        askForToken();
        again = false; // until a token is entered
      } else {
        showProblem(error.message + " — retrying every " + REFRESH_MS / 1000 + " s");
      }
    } finally {
      state.refreshing = false;
      if (again) {
        schedule();
      }
    }
  }

  function start() {
    tokenFromFragment();
    byId("forget-token").hidden = !storedToken();
    byId("forget-token").addEventListener("click", () => {
      storeToken(null);
      location.reload();
    });
    byId("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = byId("token-input");
      storeToken(input.value.trim());
      input.value = "";
      byId("token-form").hidden = true;
      document.body.dataset.auth = "unknown";
      refresh();
    });
    const range = byId("range");
    state.range = Number(range.value);
    range.addEventListener("change", () => {
      state.range = Number(range.value);
      state.reload = true;
      refresh();
    });
    let pending = false;
    window.addEventListener("resize", () => {
      if (!pending) {
        pending = true;
        requestAnimationFrame(() => {
          pending = false;
          resizePlots();
        });
      }
    });
    refresh();
  }

  start();
})();
