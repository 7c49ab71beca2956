// The provincial dashboard: plain JavaScript over the query API, no build step.
// Everything the API returns is put on the page as text (never as HTML), so a report's title
// cannot become markup; the page's Content-Security-Policy backs that up.
"use strict";

(() => {
  // ---- words -------------------------------------------------------------------------------
  const TEXT = {
    vi: {
      title: "Sổ theo dõi công tác phối hợp Dân vận – Công an",
      subtitle: "Số liệu báo cáo của các đơn vị cấp huyện",
      tokenLabel: "Mã truy cập (token)",
      remember: "Ghi nhớ trên máy này",
      signIn: "Đăng nhập",
      signOut: "Đăng xuất",
      tokenHint: "Mã do quản trị hệ thống cấp (vai trò dashboard hoặc auditor). Mã chỉ được lưu trong trình duyệt này.",
      province: "Tỉnh/thành phố",
      district: "Quận/huyện",
      allProvinces: "Tất cả tỉnh/thành phố",
      allDistricts: "Tất cả quận/huyện",
      period: "Kỳ báo cáo",
      thisYear: "Năm nay",
      lastYear: "Năm trước",
      thisQuarter: "Quý này",
      last12: "12 tháng gần đây",
      allTime: "Toàn bộ",
      custom: "Tùy chọn",
      from: "Từ ngày",
      to: "Đến ngày",
      granularity: "Chia theo",
      month: "Tháng",
      quarter: "Quý",
      year: "Năm",
      overTime: "Theo thời gian",
      byDistrict: "Theo đơn vị",
      figure: "Chỉ tiêu",
      tableTitle: "Số liệu theo quận/huyện",
      tableTitleProvinces: "Số liệu theo tỉnh/thành phố",
      downloadCsv: "Tải CSV",
      total: "Tổng cộng",
      noData: "Không có số liệu trong kỳ này.",
      conferencesList: "Hội nghị",
      casesList: "Vụ việc",
      programsList: "Chương trình phối hợp",
      more: "Xem thêm",
      footer: "Số liệu từ sổ cái sự kiện; đã loại trừ các báo cáo bị đính chính.",
      loading: "Đang tải…",
      upToDate: "Số liệu đã cập nhật đầy đủ",
      behind: (n, s) => `Còn ${n} báo cáo đang chờ xử lý (chậm ${s} giây)`,
      unknownLag: "Chưa xác định được độ trễ (không kết nối được sổ cái)",
      projectedAt: (t) => `lần ghi gần nhất ${t}`,
      deadLetters: (n) => `${n} bản ghi lỗi đang bị tạm giữ, cần kiểm tra`,
      who: { dashboard: "Xem số liệu", auditor: "Kiểm toán", reporter: "Đơn vị" },
      everywhere: "toàn quốc",
      sub: {
        conferences: (r, f) => `${f(r.conference_attendees)} lượt đại biểu`,
        cases_resolved: (r, f) => `${f(r.cases_stable)} ổn định, ${f(r.cases_temporarily_stable)} tạm ổn định`,
        outreach_sessions: (r, f) => `${f(r.outreach_attendees)} lượt người nghe`,
        tips: (r, f) => `${f(r.valuable_tips)} có giá trị`,
        mean_reduction_percent: (r, f) => `${f(r.procedure_reductions)} thủ tục`,
      },
      errors: {
        401: "Mã truy cập không hợp lệ hoặc đã bị thu hồi.",
        403: "Mã truy cập này không được xem phạm vi đã chọn.",
        422: "Bộ lọc không hợp lệ",
        other: "Không tải được số liệu",
      },
      kinds: { review: "Sơ kết", summary: "Tổng kết", signing: "Ký kết", training: "Tập huấn", other: "Khác" },
      categories: { complaint: "Khiếu nại", petition: "Kiến nghị", land: "Đất đai", security_order: "An ninh trật tự", other: "Khác" },
      resolutions: { stable: "Ổn định", temporarily_stable: "Tạm ổn định" },
      yes: "Có",
      no: "Không",
      columns: {
        held_on: "Ngày", resolved_on: "Ngày", signed_on: "Ngày ký", unit_name: "Đơn vị", title: "Tên",
        kind: "Loại", attendees: "Đại biểu", online: "Trực tuyến", case_id: "Số hiệu", category: "Lĩnh vực",
        resolution: "Kết quả", hotspot_prevented: "Ngăn điểm nóng", period: "Giai đoạn", content_items: "Nội dung",
        district: "Quận/huyện",
        province: "Tỉnh/thành phố",
      },
    },
    en: {
      title: "Mass-mobilization and police coordination ledger",
      subtitle: "Figures reported by district units",
      tokenLabel: "Access token",
      remember: "Remember on this computer",
      signIn: "Sign in",
      signOut: "Sign out",
      tokenHint: "Issued by your administrator (dashboard or auditor role). It is kept only in this browser.",
      province: "Province",
      district: "District",
      allProvinces: "All provinces",
      allDistricts: "All districts",
      period: "Period",
      thisYear: "This year",
      lastYear: "Last year",
      thisQuarter: "This quarter",
      last12: "Last 12 months",
      allTime: "All time",
      custom: "Custom",
      from: "From",
      to: "To",
      granularity: "Group by",
      month: "Month",
      quarter: "Quarter",
      year: "Year",
      overTime: "Over time",
      byDistrict: "By district",
      figure: "Figure",
      tableTitle: "Figures by district",
      tableTitleProvinces: "Figures by province",
      downloadCsv: "Download CSV",
      total: "Total",
      noData: "No figures in this period.",
      conferencesList: "Conferences",
      casesList: "Cases",
      programsList: "Programs",
      more: "Show more",
      footer: "Figures folded from the event ledger; retracted reports are left out.",
      loading: "Loading…",
      upToDate: "Figures are up to date",
      behind: (n, s) => `${n} reports waiting to be processed (${s} s behind)`,
      unknownLag: "Lag unknown (the ledger cannot be reached)",
      projectedAt: (t) => `last written ${t}`,
      deadLetters: (n) => `${n} unreadable records parked; please check`,
      who: { dashboard: "Viewer", auditor: "Auditor", reporter: "Reporting unit" },
      everywhere: "nationwide",
      sub: {
        conferences: (r, f) => `${f(r.conference_attendees)} attendees`,
        cases_resolved: (r, f) => `${f(r.cases_stable)} stable, ${f(r.cases_temporarily_stable)} temporarily stable`,
        outreach_sessions: (r, f) => `${f(r.outreach_attendees)} attendees`,
        tips: (r, f) => `${f(r.valuable_tips)} valuable`,
        mean_reduction_percent: (r, f) => `${f(r.procedure_reductions)} procedures`,
      },
      errors: {
        401: "The token is unknown or revoked.",
        403: "This token may not read the chosen scope.",
        422: "Invalid filter",
        other: "Could not load the figures",
      },
      kinds: { review: "Review", summary: "Summary", signing: "Signing", training: "Training", other: "Other" },
      categories: { complaint: "Complaint", petition: "Petition", land: "Land", security_order: "Security & order", other: "Other" },
      resolutions: { stable: "Stable", temporarily_stable: "Temporarily stable" },
      yes: "Yes",
      no: "No",
      columns: {
        held_on: "Date", resolved_on: "Date", signed_on: "Signed", unit_name: "District", title: "Title",
        kind: "Kind", attendees: "Attendees", online: "Online", case_id: "Case", category: "Category",
        resolution: "Resolution", hotspot_prevented: "Hotspot prevented", period: "Period", content_items: "Items",
        district: "District",
        province: "Province",
      },
    },
  };

  // The contract's figures, with their labels.
  const FIGURES = {
    conferences: ["Hội nghị", "Conferences"],
    conference_attendees: ["Lượt đại biểu dự hội nghị", "Conference attendees"],
    programs_signed: ["Chương trình phối hợp ký kết", "Programs signed"],
    cases_resolved: ["Vụ việc phức tạp đã giải quyết", "Complex cases resolved"],
    cases_stable: ["Giải quyết ổn định", "Resolved, stable"],
    cases_temporarily_stable: ["Tạm ổn định", "Temporarily stable"],
    hotspots_prevented: ["Không để thành điểm nóng", "Hotspots prevented"],
    outreach_sessions: ["Buổi tuyên truyền", "Outreach sessions"],
    outreach_attendees: ["Lượt người nghe tuyên truyền", "Outreach attendees"],
    leaflets: ["Tờ rơi, tài liệu phát hành", "Leaflets handed out"],
    broadcast_hours: ["Giờ phát thanh", "Broadcast hours"],
    tips: ["Nguồn tin tiếp nhận", "Citizen tips"],
    valuable_tips: ["Nguồn tin có giá trị", "Valuable tips"],
    tip_cases_solved: ["Vụ việc làm rõ từ nguồn tin", "Cases solved from tips"],
    models_recognized: ["Mô hình “Dân vận khéo”", "“Skilful mobilization” models"],
    commendations: ["Khen thưởng", "Commendations"],
    procedure_reductions: ["Thủ tục được rút ngắn", "Procedures shortened"],
    mean_reduction_percent: ["Thời gian giảm bình quân (%)", "Mean time cut (%)"],
  };
  const KPI_FIGURES = [
    "conferences", "programs_signed", "cases_resolved", "hotspots_prevented", "outreach_sessions",
    "leaflets", "broadcast_hours", "tips", "tip_cases_solved", "models_recognized", "commendations",
    "mean_reduction_percent",
  ];
  const TABLE_FIGURES = [
    "conferences", "conference_attendees", "programs_signed", "cases_resolved", "cases_stable",
    "cases_temporarily_stable", "outreach_sessions", "outreach_attendees", "tips", "valuable_tips",
    "models_recognized", "commendations", "mean_reduction_percent",
  ];
  const LISTS = {
    conferences: {
      day: "held_on",
      columns: ["held_on", "unit_name", "title", "kind", "attendees", "online"],
      params: (f) => ({ from: f.from, to: f.to }),
    },
    cases: {
      day: "resolved_on",
      columns: ["resolved_on", "unit_name", "case_id", "category", "resolution", "hotspot_prevented"],
      params: (f) => ({ from: f.from, to: f.to }),
    },
    programs: {
      day: "signed_on",
      columns: ["signed_on", "unit_name", "title", "period", "content_items"],
      params: (f) => ({ active_on: f.to }),
    },
  };

  // ---- state ---------------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const state = {
    lang: localStorage.getItem("ledger.lang") === "en" ? "en" : "vi",
    token: null,
    me: null,
    districts: [],
    figure: "cases_resolved",
    list: "conferences",
    listRows: [],
    listCursor: null,
    data: null, // the last summary responses, re-drawn on a language switch
    load: 0, // only the newest load may draw
  };
  const charts = {};

  const t = (key) => TEXT[state.lang][key];
  const figureLabel = (name) => FIGURES[name][state.lang === "vi" ? 0 : 1];
  const UNEVEN_FIGURES = new Set(["broadcast_hours", "mean_reduction_percent"]);
  const TOP_UNITS = 20; // a chart of 700 districts is a smear: the largest ones, the rest in the table
  const unitOf = (f) => (f.province ? "district" : "province");
  const unitCode = (row) => row.unit_code || row.province_code;
  const unitName = (row) => row.unit_name || row.province_name;
  const day = (value) =>
    value
      ? new Date(`${value}T00:00:00`).toLocaleDateString(state.lang === "vi" ? "vi-VN" : "en-GB", {
          day: "2-digit",
          month: "2-digit",
          year: "numeric",
        })
      : "";
  const number = (value) =>
    new Intl.NumberFormat(state.lang === "vi" ? "vi-VN" : "en-US", { maximumFractionDigits: 2 }).format(value);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  // ---- the token -----------------------------------------------------------------------------
  // Kept in sessionStorage (gone when the browser closes) unless the user asks to be
  // remembered. A link may carry it in the #fragment, which never reaches a server or a log;
  // it is moved into storage and wiped from the address bar at once.
  function loadToken() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.get("token")) {
      sessionStorage.setItem("ledger.token", fragment.get("token"));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem("ledger.token") || localStorage.getItem("ledger.token");
  }

  function saveToken(token, remember) {
    sessionStorage.setItem("ledger.token", token);
    if (remember) localStorage.setItem("ledger.token", token);
  }

  function forgetToken() {
    sessionStorage.removeItem("ledger.token");
    localStorage.removeItem("ledger.token");
    state.token = null;
    state.me = null;
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail || String(status));
      this.status = status;
      this.detail = detail;
    }
  }

  async function call(path, params = {}, accept = "application/json") {
    const url = new URL(path, location.origin);
    for (const [key, value] of Object.entries(params)) if (value) url.searchParams.set(key, value);
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${state.token}`, Accept: accept },
      cache: "no-store",
    });
    if (!response.ok) {
      let detail = null;
      try {
        const problem = await response.json();
        detail = problem.detail || problem.title;
        if (problem.errors && problem.errors.length) {
          detail += " " + problem.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
        }
      } catch (_) {
        /* not a problem document */
      }
      throw new ApiError(response.status, detail);
    }
    return accept === "text/csv" ? response : response.json();
  }

  // ---- periods -------------------------------------------------------------------------------
  const iso = (d) =>
    `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;

  function presetRange(preset, today = new Date()) {
    const y = today.getFullYear();
    const m = today.getMonth();
    switch (preset) {
      case "this-year": return [`${y}-01-01`, `${y}-12-31`];
      case "last-year": return [`${y - 1}-01-01`, `${y - 1}-12-31`];
      case "this-quarter": {
        const first = Math.floor(m / 3) * 3;
        return [iso(new Date(y, first, 1)), iso(new Date(y, first + 3, 0))];
      }
      case "last-12": return [iso(new Date(y, m - 11, 1)), iso(new Date(y, m + 1, 0))];
      case "all": return ["", ""];
      default: return null;
    }
  }

  // Every period label from..to, so a chart shows empty months as zero instead of skipping them.
  function periodsBetween(from, to, granularity) {
    if (!from || !to) return null;
    const labels = [];
    let y = Number(from.slice(0, 4));
    let m = Number(from.slice(5, 7));
    const endY = Number(to.slice(0, 4));
    const endM = Number(to.slice(5, 7));
    while ((y < endY || (y === endY && m <= endM)) && labels.length < 400) {
      const label =
        granularity === "year" ? `${y}` :
        granularity === "quarter" ? `${y}-Q${Math.floor((m - 1) / 3) + 1}` :
        `${y}-${String(m).padStart(2, "0")}`;
      if (labels[labels.length - 1] !== label) labels.push(label);
      m += 1;
      if (m > 12) { m = 1; y += 1; }
    }
    return labels;
  }

  function filters() {
    return {
      province: $("province").value,
      district: $("district").value,
      from: $("from").value,
      to: $("to").value,
      granularity: $("granularity").value,
    };
  }

  // ---- drawing -------------------------------------------------------------------------------
  function translatePage() {
    document.documentElement.lang = state.lang;
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const button of document.querySelectorAll(".lang button")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === state.lang));
    }
    const figure = $("figure");
    figure.replaceChildren(
      ...Object.keys(FIGURES).map((name) => el("option", { value: name, selected: name === state.figure }, figureLabel(name))),
    );
    fillProvinceOptions();
    fillDistrictOptions();
    showWho();
  }

  function showWho() {
    if (!state.me) return;
    const where = state.me.unit_code || state.me.province_code;
    const place = where ? placeName(where) : t("everywhere");
    $("who-text").textContent = `${t("who")[state.me.role] || state.me.role} · ${place}`;
  }

  function placeName(code) {
    const district = state.districts.find((d) => d.code === code);
    if (district) return district.name;
    const province = (state.provinces || []).find((p) => p.code === code);
    return province ? province.name : code;
  }

  function fillProvinceOptions() {
    const select = $("province");
    const chosen = select.value;
    const fixed = state.me && (state.me.province_code || state.me.unit_code);
    const options = fixed ? [] : [el("option", { value: "" }, t("allProvinces"))];
    for (const p of state.provinces || []) options.push(el("option", { value: p.code }, p.name));
    select.replaceChildren(...options);
    select.value = chosen;
    select.disabled = Boolean(fixed);
  }

  function fillDistrictOptions() {
    const select = $("district");
    const chosen = select.value;
    const own = state.me && state.me.unit_code;
    const options = own ? [] : [el("option", { value: "" }, t("allDistricts"))];
    for (const d of state.districts) options.push(el("option", { value: d.code }, d.name));
    select.replaceChildren(...options);
    select.value = own || (state.districts.some((d) => d.code === chosen) ? chosen : "");
    select.disabled = Boolean(own);
  }

  function showError(error) {
    const box = $("error");
    if (!error) {
      box.hidden = true;
      return;
    }
    const messages = t("errors");
    const lead = messages[error.status] || messages.other;
    box.textContent = error.detail && error.status === 422 ? `${lead}: ${error.detail}` : lead;
    box.hidden = false;
  }

  function showFreshness(fresh) {
    const line = $("freshness");
    const parts = [];
    if (fresh.lag_ms === null || fresh.lag_ms === undefined) parts.push(t("unknownLag"));
    else if (!fresh.records_behind) parts.push(t("upToDate"));
    else parts.push(t("behind")(number(fresh.records_behind), number(Math.round(fresh.lag_ms / 100) / 10)));
    if (fresh.projected_at) {
      const at = new Date(fresh.projected_at).toLocaleString(state.lang === "vi" ? "vi-VN" : "en-GB");
      parts.push(t("projectedAt")(at));
    }
    line.replaceChildren(parts.join(" · "));
    if (fresh.dead_letters) line.append(" · ", el("span", { class: "warn" }, t("deadLetters")(number(fresh.dead_letters))));
    line.classList.toggle("stale", Boolean(fresh.records_behind));
    line.dataset.lagMs = fresh.lag_ms ?? "";
  }

  function drawKpis(total) {
    const subs = t("sub");
    $("kpis").replaceChildren(
      ...KPI_FIGURES.map((name) =>
        el(
          "div",
          { class: "kpi", "data-figure": name },
          el("div", { class: "label" }, figureLabel(name)),
          el("div", { class: "value", "data-value": total[name] }, number(total[name])),
          el("div", { class: "sub" }, subs[name] ? subs[name](total, number) : ""),
        ),
      ),
    );
  }

  function chart(id, config) {
    if (!window.Chart) return; // the library is missing (not installed): the numbers still show
    if (charts[id]) charts[id].destroy();
    charts[id] = new window.Chart($(id), config);
  }

  function drawCharts(byPeriod, byUnit, f) {
    const name = state.figure;
    const ticks = UNEVEN_FIGURES.has(name) ? {} : { precision: 0 };
    const labels = periodsBetween(f.from, f.to, f.granularity) || byPeriod.map((r) => r.period);
    const value = Object.fromEntries(byPeriod.map((r) => [r.period, r[name]]));
    const common = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: false } },
    };
    chart("chart-time", {
      type: "bar",
      data: {
        labels,
        datasets: [{ label: figureLabel(name), data: labels.map((l) => value[l] || 0), backgroundColor: "#1f5f99" }],
      },
      options: { ...common, scales: { y: { beginAtZero: true, ticks } } },
    });
    const ranked = [...byUnit].sort((a, b) => b[name] - a[name]).slice(0, TOP_UNITS);
    chart("chart-district", {
      type: "bar",
      data: {
        labels: ranked.map(unitName),
        datasets: [{ label: figureLabel(name), data: ranked.map((r) => r[name]), backgroundColor: "#b3261e" }],
      },
      options: { ...common, indexAxis: "y", scales: { x: { beginAtZero: true, ticks } } },
    });
  }

  function drawTable(byUnit, total, unit) {
    const table = $("by-district");
    $("table-title").textContent = t(unit === "district" ? "tableTitle" : "tableTitleProvinces");
    table.tHead.replaceChildren(
      el("tr", {}, el("th", { class: "text" }, t("columns")[unit]), ...TABLE_FIGURES.map((n) => el("th", {}, figureLabel(n)))),
    );
    const cells = (row) =>
      TABLE_FIGURES.map((n) => el("td", { "data-figure": n, "data-value": row[n] }, number(row[n])));
    const body = byUnit.length
      ? byUnit.map((row) => el("tr", { "data-unit": unitCode(row) }, el("td", {}, unitName(row)), ...cells(row)))
      : [el("tr", {}, el("td", { class: "empty", colSpan: TABLE_FIGURES.length + 1 }, t("noData")))];
    table.tBodies[0].replaceChildren(...body);
    table.tFoot.replaceChildren(el("tr", { "data-total": "" }, el("td", {}, t("total")), ...cells(total)));
  }

  function drawAll() {
    if (!state.data) return;
    const { total, byPeriod, byUnit, filters: f } = state.data;
    drawKpis(total);
    drawCharts(byPeriod, byUnit, f);
    drawTable(byUnit, total, unitOf(f));
    showFreshness(state.data.freshness);
    drawList();
  }

  function listCell(name, row) {
    const words = TEXT[state.lang];
    switch (name) {
      case "kind": return words.kinds[row.kind] || row.kind;
      case "category": return words.categories[row.category] || row.category;
      case "resolution": return words.resolutions[row.resolution] || row.resolution;
      case "online": case "hotspot_prevented": return row[name] ? words.yes : words.no;
      case "period": return `${row.period_start}–${row.period_end}`;
      case "content_items": return number(row.content_items.length);
      case "attendees": return number(row.attendees);
      case "held_on": case "resolved_on": case "signed_on": return day(row[name]);
      default: return row[name] ?? "";
    }
  }

  function drawList(loading = false) {
    const spec = LISTS[state.list];
    for (const tab of document.querySelectorAll(".tabs button")) {
      tab.setAttribute("aria-selected", String(tab.dataset.list === state.list));
    }
    const table = $("list");
    table.tHead.replaceChildren(el("tr", {}, ...spec.columns.map((c) => el("th", { class: "text" }, t("columns")[c]))));
    const rows = state.listRows.length
      ? state.listRows.map((row) =>
          el("tr", { "data-event": row.event_id }, ...spec.columns.map((c) => el("td", { class: c === "title" ? "text wrap" : "text" }, listCell(c, row)))),
        )
      : [el("tr", {}, el("td", { class: "empty", colSpan: spec.columns.length }, t(loading ? "loading" : "noData")))];
    table.tBodies[0].replaceChildren(...rows);
    $("more").hidden = !state.listCursor;
  }

  // ---- loading -------------------------------------------------------------------------------
  function scopeParams(f) {
    return { province: f.province, district: f.district, from: f.from, to: f.to };
  }

  async function loadAll() {
    const load = ++state.load;
    const f = filters();
    document.body.dataset.state = "loading";
    try {
      const base = scopeParams(f);
      const [total, byPeriod, byUnit] = await Promise.all([
        call("/v1/summary", base),
        call("/v1/summary", { ...base, group_by: f.granularity }),
        call("/v1/summary", { ...base, group_by: unitOf(f) }),
      ]);
      const list = await call(`/v1/${state.list}`, { ...listParams(f), limit: 25 });
      if (load !== state.load) return; // a newer load started meanwhile
      state.data = { total: total.rows[0], byPeriod: byPeriod.rows, byUnit: byUnit.rows, filters: f, freshness: total.freshness };
      state.listRows = list.rows;
      state.listCursor = list.next_cursor;
      showError(null);
      drawAll();
      document.body.dataset.query = new URLSearchParams(Object.entries(base).filter(([, v]) => v)).toString();
      document.body.dataset.state = "ready";
    } catch (error) {
      if (load !== state.load) return;
      failed(error);
    }
  }

  function listParams(f) {
    return { province: f.province, district: f.district, ...LISTS[state.list].params(f) };
  }

  async function loadList(more) {
    const load = ++state.load;
    const f = filters();
    document.body.dataset.state = "loading";
    try {
      const page = await call(`/v1/${state.list}`, { ...listParams(f), limit: 25, cursor: more ? state.listCursor : null });
      if (load !== state.load) return;
      state.listRows = more ? state.listRows.concat(page.rows) : page.rows;
      state.listCursor = page.next_cursor;
      drawList();
      document.body.dataset.state = "ready";
    } catch (error) {
      if (load !== state.load) return;
      failed(error);
    }
  }

  function failed(error) {
    document.body.dataset.state = "error";
    if (error instanceof ApiError && error.status === 401) {
      forgetToken();
      showSignedOut();
    }
    showError(error instanceof ApiError ? error : new ApiError(0, null));
  }

  async function loadDistricts() {
    const province = $("province").value;
    state.districts = province ? (await call("/v1/districts", { province })).rows : [];
    fillDistrictOptions();
  }

  // CSV comes from the API itself (with its BOM, so spreadsheets read Vietnamese right); a
  // list is followed page by page through its cursor and joined under one header.
  async function downloadCsv(path, params, filename) {
    let text = "";
    let cursor = null;
    for (let page = 0; page < 200; page += 1) {
      const response = await call(path, { ...params, cursor, format: "csv" }, "text/csv");
      // text() drops the byte-order mark; it is put back once, in front of the whole file.
      let chunk = (await response.text()).replace(/^\ufeff/, "");
      if (page > 0) chunk = chunk.slice(chunk.indexOf("\n") + 1); // the header again
      text += chunk;
      cursor = response.headers.get("X-Next-Cursor");
      if (!cursor) break;
    }
    const link = el("a", { href: URL.createObjectURL(new Blob(["\ufeff" + text], { type: "text/csv;charset=utf-8" })), download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  function csvName(kind, f) {
    const where = f.district || f.province || "all";
    return `${kind}-${where}-${f.from || "start"}-${f.to || "now"}.csv`;
  }

  // ---- wiring --------------------------------------------------------------------------------
  function showSignedOut() {
    $("sign-in").hidden = false;
    $("main").hidden = true;
    $("who").hidden = true;
    document.body.dataset.state = "signed-out";
  }

  async function start() {
    state.token = loadToken();
    if (!state.token) return showSignedOut();
    try {
      state.me = await call("/v1/me");
      state.provinces = (await call("/v1/provinces")).rows;
    } catch (error) {
      showSignedOut();
      return failed(error);
    }
    $("sign-in").hidden = true;
    $("main").hidden = false;
    $("who").hidden = false;
    const me = state.me;
    if (me.unit_code) {
      const own = (await call("/v1/districts")).rows.find((d) => d.code === me.unit_code);
      state.provinces = state.provinces.filter((p) => own && p.code === own.province_code);
    } else if (me.province_code) {
      state.provinces = state.provinces.filter((p) => p.code === me.province_code);
    }
    fillProvinceOptions();
    if (me.province_code || me.unit_code) $("province").value = state.provinces[0]?.code || "";
    await loadDistricts();
    showWho();
    applyPreset();
    await loadAll();
  }

  function applyPreset() {
    const range = presetRange($("period").value);
    if (range) [$("from").value, $("to").value] = range;
  }

  function wire() {
    for (const button of document.querySelectorAll(".lang button")) {
      button.addEventListener("click", () => {
        state.lang = button.dataset.lang;
        localStorage.setItem("ledger.lang", state.lang);
        translatePage();
        drawAll();
      });
    }
    $("sign-in").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      saveToken(token, $("remember").checked);
      $("token").value = "";
      start();
    });
    $("sign-out").addEventListener("click", () => {
      forgetToken();
      showSignedOut();
    });
    $("province").addEventListener("change", async () => {
      $("district").value = "";
      try {
        await loadDistricts();
      } catch (error) {
        return failed(error);
      }
      loadAll();
    });
    $("district").addEventListener("change", loadAll);
    $("period").addEventListener("change", () => {
      applyPreset();
      loadAll();
    });
    for (const id of ["from", "to"]) {
      $(id).addEventListener("change", () => {
        $("period").value = "custom";
        loadAll();
      });
    }
    $("granularity").addEventListener("change", loadAll);
    $("figure").addEventListener("change", () => {
      state.figure = $("figure").value;
      if (state.data) drawCharts(state.data.byPeriod, state.data.byUnit, state.data.filters);
    });
    for (const tab of document.querySelectorAll(".tabs button")) {
      tab.addEventListener("click", () => {
        state.list = tab.dataset.list;
        state.listRows = [];
        state.listCursor = null;
        drawList(true);
        loadList(false);
      });
    }
    $("more").addEventListener("click", () => loadList(true));
    $("csv-summary").addEventListener("click", () => {
      const f = filters();
      downloadCsv("/v1/summary", { ...scopeParams(f), group_by: unitOf(f) }, csvName("summary", f)).catch(failed);
    });
    $("csv-list").addEventListener("click", () => {
      const f = filters();
      downloadCsv(`/v1/${state.list}`, { ...listParams(f), limit: 1000 }, csvName(state.list, f)).catch(failed);
    });
  }

  wire();
  translatePage();
  start();
})();
