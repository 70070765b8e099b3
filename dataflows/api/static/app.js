// fundwatch workbench page: plain JavaScript, no library, nothing from the network.
"use strict";

const STATUS = {new: "新 new", acknowledged: "已确认 acknowledged", investigating: "调查中 investigating",
  confirmed: "已证实 confirmed", dismissed: "已排除 dismissed", closed: "已关闭 closed"};
const ACTION = {acknowledged: "确认接收 Acknowledge", investigating: "开始调查 Investigate",
  confirmed: "证实风险 Confirm", dismissed: "排除（误报） Dismiss", closed: "关闭 Close"};
const DISPOSITION = {call_in_loan: "提前收回贷款 Call in the loan", add_collateral: "追加担保 Add collateral",
  raise_risk_class: "调整风险分类 Raise the risk class", restructure: "重组 Restructure",
  refer_to_legal: "移交法务 Refer to legal"};
const LEVELS = ["critical", "high", "medium", "low"];
const LEVEL_COLOR = {critical: "#b3261e", high: "#e0701b", medium: "#d9b310", low: "#5a8f3c"};
const PAGE = 50;
const FILTERS = ["level", "status", "rule", "borrower", "loan", "assignee", "text", "since", "until"];

const $ = (sel) => document.querySelector(sel);
let me = null;
let offset = 0;

function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "line", "circle", "text", "rect", "defs", "marker", "path", "title"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function api(path, options = {}) {
  const token = sessionStorage.getItem("fw-token");
  const headers = {"Authorization": "Bearer " + token};
  if (options.body) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {...options, headers});
  if (r.status === 401) { signOut("令牌无效或已过期 The token is not valid (expired or revoked)"); throw new Error("401"); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.detail || r.statusText);
  return body;
}

function show(view) {
  for (const v of ["signin", "queue", "alert", "overview"]) $(`#${v}-view`).hidden = v !== view;
  $("#nav").hidden = view === "signin";
  $("#nav-queue").classList.toggle("on", view === "queue");
  $("#nav-overview").classList.toggle("on", view === "overview");
}

function signOut(message = "") {
  sessionStorage.removeItem("fw-token");
  me = null;
  $("#signin-error").textContent = message;
  show("signin");
}

async function signIn(event) {
  event.preventDefault();
  sessionStorage.setItem("fw-token", $("#token").value.trim());
  try {
    me = await api("/api/me");
  } catch (e) {
    if (e.message !== "401") $("#signin-error").textContent = e.message;
    return;
  }
  $("#token").value = "";
  route();
}

function levelTag(level) { return el("span", {class: `lvl lvl-${level}`, text: level}); }
function when(ts) { return ts ? ts.slice(0, 16).replace("T", " ") : "-"; }

// --- queue ---------------------------------------------------------------

function filtersFromHash() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  for (const f of FILTERS) $(`#f-${f}`).value = params.get(f) || "";
  offset = Number(params.get("offset") || 0);
}

function queueHash(newOffset) {
  const params = new URLSearchParams();
  for (const f of FILTERS) if ($(`#f-${f}`).value) params.set(f, $(`#f-${f}`).value);
  if (newOffset) params.set("offset", newOffset);
  return "#/queue?" + params.toString();
}

async function loadQueue() {
  filtersFromHash();
  const params = new URLSearchParams({limit: PAGE, offset});
  for (const f of FILTERS) {
    const v = $(`#f-${f}`).value;
    if (v) params.set(f, f === "since" || f === "until" ? v + "T00:00:00Z" : v);
  }
  const page = await api("/api/alerts?" + params);
  const body = $("#queue tbody");
  body.replaceChildren(...page.items.map((a) => el("tr", {"data-id": a.id, onclick: () => { location.hash = "#/alert/" + a.id; }},
    el("td", {text: when(a.event_time)}), el("td", {}, levelTag(a.level)), el("td", {text: a.score}),
    el("td", {text: a.rule_id}), el("td", {text: a.borrower_id}), el("td", {text: a.loan_id || "-"}),
    el("td", {class: "status", text: STATUS[a.status]}), el("td", {text: a.assignee || "-"}),
    el("td", {text: a.summary}))));
  const first = page.items.length ? offset + 1 : 0;
  $("#showing").textContent = `显示第 ${first}–${offset + page.items.length} 条，共 ${page.total} 条 · showing ${page.items.length} of ${page.total}`;
  $("#prev").disabled = offset === 0;
  $("#next").disabled = offset + page.items.length >= page.total;
  show("queue");
}

// --- one alert -----------------------------------------------------------

function drawGraph(graph, borrower) {
  const box = $("#route");
  if (!graph.edges.length) { box.replaceChildren(el("p", {class: "hint", text: "此告警没有路径 No route or path in this alert's evidence"})); return; }
  const n = graph.nodes.length, W = Math.max(520, Math.min(1250, 230 * n)), H = graph.circle ? 360 : 190;
  const pos = {};
  graph.nodes.forEach((id, i) => {
    pos[id] = graph.circle
      ? [W / 2 + 130 * Math.cos(2 * Math.PI * i / n - Math.PI / 2), H / 2 + 130 * Math.sin(2 * Math.PI * i / n - Math.PI / 2)]
      : [70 + i * (W - 140) / Math.max(1, n - 1), H / 2];
  });
  const svg = el("svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": graph.circle ? "guarantee circle" : "route"});
  svg.append(el("defs", {}, el("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7,
    markerHeight: 7, orient: "auto-start-reverse"}, el("path", {d: "M 0 0 L 10 5 L 0 10 z", fill: "#5b6b7c"}))));
  const seen = {};  // edges between the same two parties (a round trip) are drawn apart
  graph.edges.forEach((e) => {
    const [x1, y1] = pos[e.src], [x2, y2] = pos[e.dst];
    const pair = [e.src, e.dst].sort().join(" ");
    const k = seen[pair] = (seen[pair] ?? -1) + 1;
    const len = Math.hypot(x2 - x1, y2 - y1) || 1, r = 24, bend = k ? 30 * k : 0;
    const nx = -(y2 - y1) / len * bend * (e.src < e.dst ? 1 : -1), ny = (x2 - x1) / len * bend * (e.src < e.dst ? 1 : -1);
    const a = [x1 + (x2 - x1) * r / len + nx, y1 + (y2 - y1) * r / len + ny];
    const b = [x2 - (x2 - x1) * r / len + nx, y2 - (y2 - y1) * r / len + ny];
    const label = (e.kind === "guarantee" ? "担保 guarantees " : e.kind === "shared" ? "共用 shares " : "") + e.label;
    svg.append(el("g", {class: `edge ${e.kind}`, "data-ref": e.ref || ""},
      el("line", {x1: a[0], y1: a[1], x2: b[0], y2: b[1], "marker-end": e.kind === "shared" ? "" : "url(#arrow)"}),
      el("text", {x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2 - 6, "text-anchor": "middle", text: label})));
  });
  for (const id of graph.nodes) {
    const [x, y] = pos[id];
    svg.append(el("g", {class: "node" + (id === borrower ? " borrower" : ""), "data-node": id},
      el("circle", {cx: x, cy: y, r: 22}), el("text", {x, y: y + 38, "text-anchor": "middle", text: id})));
  }
  box.replaceChildren(svg);
}

function actionsFor(a) {
  const box = $("#actions");
  box.replaceChildren();
  $("#action-error").textContent = "";
  if (!me || me.role === "viewer") { box.append(el("p", {class: "hint", text: "只读令牌 A viewer token can only read"})); return; }
  const reason = el("input", {id: "reason", size: 30, placeholder: "原因 Why (kept in the audit)"});
  box.append(reason);
  for (const to of a.next) {
    if (to === "confirmed") {
      const select = el("select", {id: "disposition"}, ...Object.entries(DISPOSITION).map(([k, v]) => el("option", {value: k, text: v})));
      box.append(el("fieldset", {}, select, el("button", {type: "button", class: "action", "data-to": to, text: ACTION[to],
        onclick: () => act(a, "transition", {to, version: a.version, reason: reason.value, disposition: select.value})})));
    } else {
      box.append(el("button", {type: "button", class: "action", "data-to": to, text: ACTION[to],
        onclick: () => act(a, "transition", {to, version: a.version, reason: reason.value})}));
    }
  }
  if (a.status !== "closed") {
    const who = el("input", {id: "assignee", size: 10, placeholder: "处理人 assignee", value: a.assignee || ""});
    box.append(el("fieldset", {}, who, el("button", {type: "button", id: "assign", text: "指派 Assign",
      onclick: () => act(a, "assign", {assignee: who.value || null, version: a.version, reason: reason.value})})));
  }
  const note = el("input", {id: "comment", size: 30, placeholder: "备注 Comment"});
  box.append(el("fieldset", {}, note, el("button", {type: "button", id: "add-comment", text: "添加备注 Comment",
    onclick: () => note.value && act(a, "comments", {text: note.value})})));
}

async function act(a, what, body) {
  try {
    await api(`/api/alerts/${a.id}/${what}`, {method: "POST", body: JSON.stringify(body)});
    await loadAlert(a.id);
  } catch (e) {
    $("#action-error").textContent = e.message;  // 409: someone else changed it; reload to see
  }
}

async function loadAlert(id) {
  const a = await api("/api/alerts/" + encodeURIComponent(id));
  $("#a-title").replaceChildren(levelTag(a.level), ` ${a.rule_id} · ${a.rule ? a.rule.title : ""} `);
  $("#a-summary").textContent = a.summary;
  const facts = [["告警编号 Alert", a.id], ["状态 Status", STATUS[a.status]], ["借款人 Borrower", a.borrower_id],
    ["贷款 Loan", a.loan_id || "-"], ["分数 Score", a.score],
    ["借款人综合分 Borrower score", `${a.borrower_score_now} (${a.borrower_score ?? "-"} when found)`],
    ["模型 Models", Object.entries(a.model_versions || {}).map(([m, v]) => `${m} v${v}`).join(", ") || "-"],
    ["处理人 Assignee", a.assignee || "-"],
    ["事件时间 Event time", when(a.event_time)], ["发现时间 Detected", when(a.detected_at)],
    ["处置 Disposition", a.disposition || "-"], ["规则版本 Rule version", `${a.rule_version} (pack ${a.pack_version})`]];
  $("#a-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {text: v})]));
  $("#a-rule").replaceChildren(...(a.rule ? [
    el("p", {text: "说明 Description: " + (a.rule.description || "-")}),
    el("p", {text: "调查要点 Investigation: " + (a.rule.investigation || "-")})] : []));
  drawGraph(a.graph, a.borrower_id);
  $("#a-path").replaceChildren(...a.evidence.path.map((line) => el("li", {text: line})));
  $("#a-values tbody").replaceChildren(...Object.entries(a.evidence.values).map(([k, v]) =>
    el("tr", {}, el("td", {text: k}), el("td", {text: String(v)}))));
  $("#a-conditions").textContent = "成立的条件 Conditions that held: " + (a.evidence.conditions.join(", ") || "-");
  const events = a.evidence.events.length ? a.evidence.events : a.evidence.event_ids.map((id) => ({id}));
  const columns = [...new Set(events.flatMap((e) => Object.keys(e)))].filter((k) => k !== "stream");
  $("#a-events thead").replaceChildren(el("tr", {}, ...columns.map((k) => el("th", {text: k}))));
  $("#a-events tbody").replaceChildren(...events.map((e) => el("tr", {},
    ...columns.map((k) => el("td", {text: e[k] === undefined || e[k] === null ? "" : String(e[k])})))));
  actionsFor(a);
  $("#audit tbody").replaceChildren(...a.audit.map((e) => el("tr", {},
    el("td", {text: when(e.changed_at)}), el("td", {text: e.actor}), el("td", {text: e.action}),
    el("td", {text: e.from_status ? STATUS[e.from_status] : "-"}), el("td", {text: e.to_status ? STATUS[e.to_status] : "-"}),
    el("td", {text: e.detail}))));
  show("alert");
}

// --- overview ------------------------------------------------------------

function bars(rows, width = 700) {
  const max = Math.max(1, ...rows.map((r) => r.alerts)), h = 18;
  const svg = el("svg", {width, height: rows.length * h + 10});
  rows.forEach((r, i) => svg.append(el("text", {x: 0, y: i * h + 14, text: r.key}),
    el("rect", {x: 90, y: i * h + 3, height: h - 5, width: Math.max(1, (width - 150) * r.alerts / max), fill: "#1f5fa8"}),
    el("text", {x: 95 + (width - 150) * r.alerts / max, y: i * h + 14, text: r.alerts})));
  return svg;
}

function perDay(rows) {
  const days = [...new Set(rows.map((r) => r.day))];
  const total = {};
  for (const r of rows) total[r.day] = (total[r.day] || 0) + r.alerts;
  const max = Math.max(1, ...Object.values(total)), W = Math.max(600, days.length * 9 + 60), H = 200;
  const step = (W - 60) / Math.max(1, days.length), svg = el("svg", {width: W, height: H + 50});
  const stacked = {};
  days.forEach((d, i) => {
    for (const level of [...LEVELS].reverse()) {
      const r = rows.find((x) => x.day === d && x.level === level);
      if (!r) continue;
      const y0 = stacked[d] || 0, h = H * r.alerts / max;
      svg.append(el("rect", {x: 40 + i * step, y: H - y0 - h + 10, width: Math.max(1, step - 1), height: h,
        fill: LEVEL_COLOR[level]}, el("title", {text: `${d} ${level}: ${r.alerts}`})));
      stacked[d] = y0 + h;
    }
    if (i % Math.ceil(days.length / 8) === 0) svg.append(el("text", {x: 40 + i * step, y: H + 28, text: d}));
  });
  svg.append(el("text", {x: 0, y: 16, text: max}));
  LEVELS.forEach((l, i) => svg.append(el("rect", {x: W - 300 + i * 70, y: H + 32, width: 10, height: 8, fill: LEVEL_COLOR[l]}),
    el("text", {x: W - 286 + i * 70, y: H + 40, text: l})));
  return svg;
}

async function loadOverview() {
  const o = await api("/api/overview");
  const open = o.by_status.filter((c) => c.key !== "closed").reduce((s, c) => s + c.alerts, 0);
  const closed = o.by_status.filter((c) => c.key === "closed").reduce((s, c) => s + c.alerts, 0);
  $("#ov-status").replaceChildren(
    el("div", {class: "card", id: "ov-open"}, el("b", {text: open}), "未结 open"),
    el("div", {class: "card", id: "ov-closed"}, el("b", {text: closed}), "已关闭 closed"),
    ...o.by_status.map((c) => el("div", {class: "card"}, el("b", {text: c.alerts}), STATUS[c.key])),
    ...o.by_level.map((c) => el("div", {class: "card"}, el("b", {text: c.alerts}), levelTag(c.key))));
  $("#ov-days").replaceChildren(perDay(o.per_day));
  $("#ov-rules").replaceChildren(bars(o.by_rule));
  $("#ov-borrowers tbody").replaceChildren(...o.top_borrowers.map((c) => el("tr", {},
    el("td", {}, el("a", {href: "#/queue?borrower=" + encodeURIComponent(c.key), text: c.key})), el("td", {text: c.alerts}))));
  show("overview");
}

// --- routing -------------------------------------------------------------

async function route() {
  if (!sessionStorage.getItem("fw-token")) { show("signin"); return; }
  try {
    if (!me) me = await api("/api/me");
    $("#whoami").textContent = `${me.name} (${me.role})`;
    const hash = location.hash || "#/queue";
    if (hash.startsWith("#/alert/")) await loadAlert(decodeURIComponent(hash.slice(8)));
    else if (hash.startsWith("#/overview")) await loadOverview();
    else await loadQueue();
  } catch (e) {
    if (e.message !== "401") $("#action-error").textContent = e.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const [k, v] of Object.entries(STATUS)) $("#f-status").append(el("option", {value: k, text: v}));
  $("#signin-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", () => signOut());
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); location.hash = queueHash(0); });
  $("#reset").addEventListener("click", () => { for (const f of FILTERS) $(`#f-${f}`).value = ""; location.hash = queueHash(0); });
  $("#prev").addEventListener("click", () => { location.hash = queueHash(Math.max(0, offset - PAGE)); });
  $("#next").addEventListener("click", () => { location.hash = queueHash(offset + PAGE); });
  window.addEventListener("hashchange", route);
  route();
});
