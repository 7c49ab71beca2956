// The provincial dashboard: plain JavaScript over the query API, no build step.
// Everything the API returns is put on the page as text (never as HTML), so a report's title
// cannot become markup; the page's Content-Security-Policy backs that up.
//
// Units over time (DESIGN.md, "Administrative units over time"): the province list is today's
// 34, each with its predecessors' history; the drill-down lists today's communes and the former
// districts (until 2025-06-30); a toggle shows the figures by today's units (frame=current) or
// by the units of each report's date (frame=as_reported).
"use strict";

(() => {
  // The reorganization: the last day of the legacy edition and the first of the 2025 one.
  const LEGACY_LAST_DAY = "2025-06-30";
  const REFORM_DAY = "2025-07-01";

  // "30/6/2025" as Vietnamese writes a date; "30 Jun 2025" in English.
  const viDay = (iso) => `${Number(iso.slice(8, 10))}/${Number(iso.slice(5, 7))}/${iso.slice(0, 4)}`;
  const enDay = (iso) =>
    `${Number(iso.slice(8, 10))} ${"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(" ")[Number(iso.slice(5, 7)) - 1]} ${iso.slice(0, 4)}`;

  // ---- words -------------------------------------------------------------------------------
  const TEXT = {
    vi: {
      title: "Sổ theo dõi công tác phối hợp Dân vận – Công an",
      subtitle: "Số liệu báo cáo của các xã, phường, đặc khu (từ 1/7/2025), đơn vị cấp huyện (đến 30/6/2025) và cấp tỉnh",
      tokenLabel: "Mã truy cập (token)",
      remember: "Ghi nhớ trên máy này",
      signIn: "Đăng nhập",
      signOut: "Đăng xuất",
      tokenHint: "Mã do quản trị hệ thống cấp (vai trò dashboard hoặc auditor). Mã chỉ được lưu trong trình duyệt này.",
      province: "Tỉnh/thành phố",
      unit: "Đơn vị",
      allProvinces: "Tất cả tỉnh/thành phố",
      allUnits: "Tất cả đơn vị",
      todayUnits: "Đơn vị hiện nay (từ 1/7/2025)",
      formerUnits: "Đơn vị cũ (đến 30/6/2025)",
      frame: "Tính số liệu",
      frameCurrent: "theo đơn vị hiện nay",
      frameAsReported: "theo đơn vị tại thời điểm báo cáo",
      frameNoteCurrent:
        "Số liệu của các tỉnh cũ và đơn vị cấp huyện cũ (đến 30/6/2025) được tính vào tỉnh, thành phố hiện nay.",
      frameNoteAsReported:
        "Số liệu được tính cho tỉnh và đơn vị tồn tại vào ngày báo cáo: trước 1/7/2025 là các tỉnh cũ và đơn vị cấp huyện.",
      period: "Kỳ báo cáo",
      thisYear: "Năm nay",
      lastYear: "Năm trước",
      thisQuarter: "Quý này",
      last12: "12 tháng gần đây",
      last24: "24 tháng gần đây",
      allTime: "Toàn bộ",
      custom: "Tùy chọn",
      from: "Từ ngày",
      to: "Đến ngày",
      granularity: "Chia theo",
      month: "Tháng",
      quarter: "Quý",
      year: "Năm",
      overTime: "Theo thời gian",
      byUnit: "Theo đơn vị",
      byProvince: "Theo tỉnh/thành phố",
      figure: "Chỉ tiêu",
      tableTitle: "Số liệu theo đơn vị",
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
      reform: `Sắp xếp đơn vị hành chính ${viDay(REFORM_DAY)}`,
      incl: (names) => `gồm ${names.join(", ")} cũ`,
      until: (d) => `đến ${viDay(d)}`,
      nowIn: (name) => `nay thuộc ${name}`,
      formerDistrict: (d) => `cấp huyện cũ, đến ${viDay(d)}`,
      formerProvince: (d) => `cấp tỉnh cũ, đến ${viDay(d)}`,
      provincialLevel: "cấp tỉnh",
      formerShort: "cũ",
      groupToday: "Đơn vị hiện nay",
      groupFormer: `Đơn vị cũ (đến ${viDay(LEGACY_LAST_DAY)})`,
      groupTodayProvinces: "Tỉnh, thành phố hiện nay",
      groupFormerProvinces: `Tỉnh, thành phố cũ (đến ${viDay(LEGACY_LAST_DAY)})`,
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
        reported_province: "Tỉnh/thành phố khi báo cáo",
        unit: "Đơn vị",
        province: "Tỉnh/thành phố",
      },
    },
    en: {
      title: "Mass-mobilization and police coordination ledger",
      subtitle: "Figures reported by communes (since 1 Jul 2025), districts (until 30 Jun 2025) and provincial offices",
      tokenLabel: "Access token",
      remember: "Remember on this computer",
      signIn: "Sign in",
      signOut: "Sign out",
      tokenHint: "Issued by your administrator (dashboard or auditor role). It is kept only in this browser.",
      province: "Province",
      unit: "Unit",
      allProvinces: "All provinces",
      allUnits: "All units",
      todayUnits: "Today's units (since 1 Jul 2025)",
      formerUnits: "Former units (until 30 Jun 2025)",
      frame: "Count figures",
      frameCurrent: "by today's units",
      frameAsReported: "by units at the time of reporting",
      frameNoteCurrent:
        "Figures of the former provinces and districts (until 30 Jun 2025) count under today's provinces.",
      frameNoteAsReported:
        "Figures count under the province and unit in force on the report's date: before 1 Jul 2025 the former provinces and districts.",
      period: "Period",
      thisYear: "This year",
      lastYear: "Last year",
      thisQuarter: "This quarter",
      last12: "Last 12 months",
      last24: "Last 24 months",
      allTime: "All time",
      custom: "Custom",
      from: "From",
      to: "To",
      granularity: "Group by",
      month: "Month",
      quarter: "Quarter",
      year: "Year",
      overTime: "Over time",
      byUnit: "By unit",
      byProvince: "By province",
      figure: "Figure",
      tableTitle: "Figures by unit",
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
      reform: `Reorganization ${enDay(REFORM_DAY)}`,
      incl: (names) => `incl. former ${names.join(", ")}`,
      until: (d) => `until ${enDay(d)}`,
      nowIn: (name) => `now in ${name}`,
      formerDistrict: (d) => `former district, until ${enDay(d)}`,
      formerProvince: (d) => `former province, until ${enDay(d)}`,
      provincialLevel: "provincial office",
      formerShort: "former",
      groupToday: "Today's units",
      groupFormer: `Former units (until ${enDay(LEGACY_LAST_DAY)})`,
      groupTodayProvinces: "Today's provinces",
      groupFormerProvinces: `Former provinces (until ${enDay(LEGACY_LAST_DAY)})`,
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
        held_on: "Date", resolved_on: "Date", signed_on: "Signed", unit_name: "Unit", title: "Title",
        kind: "Kind", attendees: "Attendees", online: "Online", case_id: "Case", category: "Category",
        resolution: "Resolution", hotspot_prevented: "Hotspot prevented", period: "Period", content_items: "Items",
        reported_province: "Province when reported",
        unit: "Unit",
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
  // The as_reported series of one province's territory: the old provinces first, in grey-blues,
  // then today's province in the page's blue.
  const SERIES_COLOURS = { current: "#1f5f99", legacy: ["#8fa3b8", "#5d7590", "#b7c4d2", "#41566e", "#a0aebf"] };

  // ---- state ---------------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const state = {
    lang: localStorage.getItem("ledger.lang") === "en" ? "en" : "vi",
    token: null,
    me: null,
    provinces: [], // the province options: today's 34, or the one the token is bound to
    provinceIndex: new Map(), // every province of both editions by key ("33", "legacy:34")
    units: [], // the chosen province's units: today's, then the former ones
    unitIndex: new Map(),
    fixedProvince: null, // the token's province, when it may read only one
    fixedUnit: null, // a commune's or district's reporter token: its unit row
    frame: "current",
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
  const isLegacy = (key) => String(key).startsWith("legacy:");
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
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // ---- names of units over time ----------------------------------------------------------------
  // "Hưng Yên" from "Tỉnh Hưng Yên": how a merged province names its predecessors.
  function bare(name) {
    for (const word of ["Thành phố", "Tỉnh"]) if (name.startsWith(`${word} `)) return name.slice(word.length + 1);
    return name;
  }

  // A province as the province list shows it: a merged one names its predecessors, a former one
  // says until when it existed and where its territory is now.
  function provinceLabel(code, { full = true } = {}) {
    const p = state.provinceIndex.get(code);
    if (!p) return code;
    if (p.edition === "legacy") {
      const successor = state.provinceIndex.get(p.successor);
      const now = full && successor && successor.name !== p.name ? `; ${t("nowIn")(successor.name)}` : "";
      return `${p.name} (${t("until")(p.valid_to || LEGACY_LAST_DAY)}${now})`;
    }
    const predecessors = (p.predecessors || []).map((key) => state.provinceIndex.get(key)).filter(Boolean);
    if (full && predecessors.length > 1) return `${p.name} (${t("incl")(predecessors.map((q) => bare(q.name)))})`;
    return p.name;
  }

  // What a unit is beside its name: a former district or province with its last day, or today's
  // provincial office (whose name is the province's); a commune needs no note.
  function unitNote(code, level, edition) {
    const known = state.unitIndex.get(code);
    const last = (known && known.valid_to) || LEGACY_LAST_DAY;
    if (edition === "legacy") return level === "province" ? t("formerProvince")(last) : t("formerDistrict")(last);
    if (level === "province") return t("provincialLevel");
    return null;
  }

  function unitLabel(code, name, level, edition) {
    const note = unitNote(code, level, edition);
    return note ? `${name} (${note})` : name;
  }

  // A list row carries the unit's level but not its edition: a district or a legacy: key is old.
  const listEdition = (row) => (row.unit_level === "district" || isLegacy(row.unit_code) ? "legacy" : "2025");

  // Short chart labels: the notes would squeeze a horizontal bar chart to nothing.
  function shortUnitLabel(row) {
    if (row.unit_edition === "legacy") return `${row.unit_name} (${t("formerShort")})`;
    if (row.unit_level === "province") return `${row.unit_name} (${t("provincialLevel")})`;
    return row.unit_name;
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
      case "last-24": return [iso(new Date(y, m - 23, 1)), iso(new Date(y, m + 1, 0))];
      case "all": return ["", ""];
      default: return null;
    }
  }

  const periodLabel = (granularity, y, m) =>
    granularity === "year" ? `${y}` :
    granularity === "quarter" ? `${y}-Q${Math.floor((m - 1) / 3) + 1}` :
    `${y}-${String(m).padStart(2, "0")}`;

  // Every period label from..to, so a chart shows empty months as zero instead of skipping them.
  function periodsBetween(from, to, granularity) {
    if (!from || !to) return null;
    const labels = [];
    let y = Number(from.slice(0, 4));
    let m = Number(from.slice(5, 7));
    const endY = Number(to.slice(0, 4));
    const endM = Number(to.slice(5, 7));
    while ((y < endY || (y === endY && m <= endM)) && labels.length < 400) {
      const label = periodLabel(granularity, y, m);
      if (labels[labels.length - 1] !== label) labels.push(label);
      m += 1;
      if (m > 12) { m = 1; y += 1; }
    }
    return labels;
  }

  // The first day of a period label ("2025-07", "2025-Q3", "2025").
  function periodStart(label) {
    const quarter = /^(\d{4})-Q(\d)$/.exec(label);
    if (quarter) return `${quarter[1]}-${String((Number(quarter[2]) - 1) * 3 + 1).padStart(2, "0")}-01`;
    return label.length === 4 ? `${label}-01-01` : `${label}-01`;
  }

  // Where the chart marks the reorganization: between June and July 2025 (or Q2 and Q3); in a
  // yearly chart through the middle of 2025's bar, which is where 1 July falls.
  const REFORM_AT = { month: "2025-07", quarter: "2025-Q3", year: "2025" };

  function filters() {
    return {
      province: $("province").value,
      unit: $("unit").value,
      frame: state.frame,
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
    fillUnitOptions();
    showFrame();
    showWho();
  }

  function showWho() {
    if (!state.me) return;
    let place = t("everywhere");
    if (state.fixedUnit) {
      const u = state.fixedUnit;
      place = unitLabel(u.code, u.name, u.level, u.edition);
    } else if (state.fixedProvince) {
      place = provinceLabel(state.fixedProvince, { full: false });
    }
    $("who-text").textContent = `${t("who")[state.me.role] || state.me.role} · ${place}`;
  }

  function showFrame() {
    for (const input of document.querySelectorAll("input[name=frame]")) input.checked = input.value === state.frame;
    $("frame-note").textContent = t(state.frame === "current" ? "frameNoteCurrent" : "frameNoteAsReported");
    document.body.dataset.frame = state.frame;
  }

  function fillProvinceOptions() {
    const select = $("province");
    const chosen = select.value;
    const options = state.fixedProvince ? [] : [el("option", { value: "" }, t("allProvinces"))];
    for (const p of state.provinces) {
      options.push(el("option", { value: p.code, "data-edition": p.edition }, provinceLabel(p.code)));
    }
    select.replaceChildren(...options);
    select.value = state.fixedProvince || chosen;
    if (select.selectedIndex < 0) select.selectedIndex = 0; // a choice of an earlier sign-in
    select.disabled = Boolean(state.fixedProvince);
  }

  function unitOption(u) {
    return el("option", { value: u.code, "data-level": u.level, "data-edition": u.edition }, unitLabel(u.code, u.name, u.level, u.edition));
  }

  function fillUnitOptions() {
    const select = $("unit");
    const chosen = select.value;
    if (state.fixedUnit) {
      select.replaceChildren(unitOption(state.fixedUnit));
      select.value = state.fixedUnit.code;
      select.disabled = true;
      return;
    }
    const today = state.units.filter((u) => u.edition === "2025");
    const former = state.units.filter((u) => u.edition === "legacy");
    const options = [el("option", { value: "" }, t("allUnits"))];
    if (today.length) options.push(el("optgroup", { label: t("todayUnits"), "data-edition": "2025" }, ...today.map(unitOption)));
    if (former.length) options.push(el("optgroup", { label: t("formerUnits"), "data-edition": "legacy" }, ...former.map(unitOption)));
    select.replaceChildren(...options);
    select.value = state.unitIndex.has(chosen) ? chosen : "";
    select.disabled = false;
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

  // The reorganization's marker: a dashed line where 1 July 2025 falls on the time chart, with
  // its name above the plot. The canvas says what it drew (data-reform-*), for people's tools
  // and the tests alike.
  const reformMarker = {
    id: "reformMarker",
    afterDatasetsDraw(c) {
      const canvas = c.canvas;
      const opts = c.options.plugins.reformMarker;
      delete canvas.dataset.reformMarker;
      delete canvas.dataset.reformLabel;
      if (!opts || !opts.at) return;
      const i = c.data.labels.indexOf(opts.at);
      const scale = c.scales.x;
      let x;
      if (opts.middle) {
        if (i < 0) return;
        x = scale.getPixelForValue(i);
      } else {
        if (i <= 0) return; // the chart does not show both sides of the reform
        x = (scale.getPixelForValue(i - 1) + scale.getPixelForValue(i)) / 2;
      }
      const { top, bottom, right, left } = c.chartArea;
      const ctx = c.ctx;
      ctx.save();
      ctx.strokeStyle = opts.colour;
      ctx.fillStyle = opts.colour;
      ctx.lineWidth = 1.5;
      ctx.setLineDash([6, 4]);
      ctx.beginPath();
      ctx.moveTo(x, top - 4);
      ctx.lineTo(x, bottom);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.font = `600 12px ${getComputedStyle(document.documentElement).fontFamily}`;
      const width = ctx.measureText(opts.label).width;
      const fitsRight = x + 6 + width <= right;
      ctx.textAlign = fitsRight ? "left" : "right";
      ctx.textBaseline = "bottom";
      ctx.fillText(opts.label, fitsRight ? x + 6 : Math.max(x - 6, left + width), top - 2);
      ctx.restore();
      canvas.dataset.reformMarker = opts.at;
      canvas.dataset.reformLabel = opts.label;
    },
  };

  function chart(id, config) {
    if (!window.Chart) return; // the library is missing (not installed): the numbers still show
    if (charts[id]) charts[id].destroy();
    charts[id] = new window.Chart($(id), config);
  }

  // The time axis: every period of the range asked, or of the data when the range is open.
  function timeLabels(series, f) {
    const asked = periodsBetween(f.from, f.to, f.granularity);
    if (asked) return asked;
    const seen = series.flatMap((s) => s.rows.map((r) => r.period)).sort();
    if (!seen.length) return [];
    return periodsBetween(periodStart(seen[0]), periodStart(seen[seen.length - 1]), f.granularity);
  }

  function drawCharts(series, byUnit, f, perUnit) {
    const name = state.figure;
    const ticks = UNEVEN_FIGURES.has(name) ? {} : { precision: 0 };
    const labels = timeLabels(series, f);
    const several = series.length > 1;
    const stacked = several && name !== "mean_reduction_percent"; // means do not add up
    let legacyColour = 0;
    const datasets = series.map((s) => {
      const value = Object.fromEntries(s.rows.map((r) => [r.period, r[name]]));
      const colour = isLegacy(s.code) ? SERIES_COLOURS.legacy[legacyColour++ % SERIES_COLOURS.legacy.length] : SERIES_COLOURS.current;
      return {
        label: s.code ? provinceLabel(s.code, { full: false }) : figureLabel(name),
        code: s.code, // the series' province, for tools reading the chart
        data: labels.map((l) => value[l] || 0),
        backgroundColor: colour,
        stack: stacked ? "territory" : undefined,
      };
    });
    const common = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: false } },
    };
    chart("chart-time", {
      type: "bar",
      data: { labels, datasets },
      plugins: [reformMarker],
      options: {
        ...common,
        layout: { padding: { top: 20 } },
        plugins: {
          legend: { display: several, position: "bottom" },
          reformMarker: {
            at: REFORM_AT[f.granularity],
            middle: f.granularity === "year",
            label: t("reform"),
            colour: "#b3261e",
          },
        },
        scales: { x: { stacked }, y: { beginAtZero: true, stacked, ticks } },
      },
    });
    const ranked = [...byUnit].sort((a, b) => b[name] - a[name]).slice(0, TOP_UNITS);
    $("unit-chart-title").textContent = t(perUnit ? "byUnit" : "byProvince");
    chart("chart-unit", {
      type: "bar",
      data: {
        labels: ranked.map((r) => (perUnit ? shortUnitLabel(r) : provinceLabel(r.province_code, { full: false }))),
        datasets: [
          {
            label: figureLabel(name),
            codes: ranked.map((r) => (perUnit ? r.unit_code : r.province_code)),
            data: ranked.map((r) => r[name]),
            backgroundColor: ranked.map((r) => ((perUnit ? r.unit_edition === "legacy" : isLegacy(r.province_code)) ? "#c98a85" : "#b3261e")),
          },
        ],
      },
      options: { ...common, indexAxis: "y", scales: { x: { beginAtZero: true, ticks } } },
    });
  }

  // The table's groups: in the as_reported frame by the province of the reports' dates
  // ("Tỉnh Thái Bình (đến 30/6/2025)"), otherwise today's units before the former ones.
  function tableGroups(rows, perUnit, frame) {
    const groups = new Map();
    const add = (key, label, row) => {
      if (!groups.has(key)) groups.set(key, { key, label, rows: [] });
      groups.get(key).rows.push(row);
    };
    for (const row of rows) {
      if (perUnit && frame === "as_reported") add(row.province_code, provinceLabel(row.province_code, { full: false }), row);
      else if (perUnit) add(row.unit_edition === "legacy" ? "legacy" : "2025", t(row.unit_edition === "legacy" ? "groupFormer" : "groupToday"), row);
      else add(isLegacy(row.province_code) ? "legacy" : "2025", t(isLegacy(row.province_code) ? "groupFormerProvinces" : "groupTodayProvinces"), row);
    }
    // Today's first, then the former ones (as reported: old provinces by code).
    const old = (g) => (g.key === "legacy" || isLegacy(g.key) ? 1 : 0);
    return [...groups.values()].sort((a, b) => old(a) - old(b) || a.key.localeCompare(b.key));
  }

  function unitRank(row) {
    // Within a group: the provincial office first, then communes or districts by code.
    return [row.unit_level === "province" ? 0 : 1, row.unit_code];
  }

  function drawTable(byUnit, total, perUnit, frame) {
    const table = $("by-unit");
    $("table-title").textContent = t(perUnit ? "tableTitle" : "tableTitleProvinces");
    const width = TABLE_FIGURES.length + 1;
    table.tHead.replaceChildren(
      el("tr", {}, el("th", { class: "text" }, t("columns")[perUnit ? "unit" : "province"]), ...TABLE_FIGURES.map((n) => el("th", {}, figureLabel(n)))),
    );
    const cells = (row) =>
      TABLE_FIGURES.map((n) => el("td", { "data-figure": n, "data-value": row[n] }, number(row[n])));
    const nameCell = (row) => {
      if (!perUnit) {
        const p = state.provinceIndex.get(row.province_code);
        // As reported, today's province holds only its own reports: no "incl. former …".
        const full = frame === "current" || isLegacy(row.province_code);
        const label = p ? provinceLabel(row.province_code, { full }) : row.province_name;
        const name = p ? p.name : row.province_name;
        return el("td", { class: "text" }, name, label !== name ? el("span", { class: "note" }, label.slice(name.length)) : null);
      }
      const note = unitNote(row.unit_code, row.unit_level, row.unit_edition);
      return el("td", { class: "text" }, row.unit_name, note ? el("span", { class: "note" }, ` (${note})`) : null);
    };
    const body = [];
    if (!byUnit.length) body.push(el("tr", {}, el("td", { class: "empty", colSpan: width }, t("noData"))));
    const groups = tableGroups(byUnit, perUnit, frame);
    for (const group of groups) {
      if (groups.length > 1 || frame === "as_reported" || group.key === "legacy") {
        body.push(el("tr", { class: "group", "data-group": group.key }, el("th", { class: "text", colSpan: width, scope: "colgroup" }, group.label)));
      }
      const rows = perUnit
        ? [...group.rows].sort((a, b) => {
            const [x, y] = [unitRank(a), unitRank(b)];
            return x[0] - y[0] || x[1].localeCompare(y[1], undefined, { numeric: true });
          })
        : group.rows;
      for (const row of rows) {
        body.push(
          el(
            "tr",
            { "data-unit": perUnit ? row.unit_code : row.province_code, "data-province": row.province_code, "data-edition": perUnit ? row.unit_edition : null },
            nameCell(row),
            ...cells(row),
          ),
        );
      }
    }
    table.tBodies[0].replaceChildren(...body);
    table.tFoot.replaceChildren(el("tr", { "data-total": "" }, el("td", {}, t("total")), ...cells(total)));
  }

  function drawAll() {
    if (!state.data) return;
    const { total, series, byUnit, filters: f, perUnit } = state.data;
    drawKpis(total);
    drawCharts(series, byUnit, f, perUnit);
    drawTable(byUnit, total, perUnit, f.frame);
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
      case "unit_name": return unitLabel(row.unit_code, row.unit_name, row.unit_level, listEdition(row));
      case "reported_province": return provinceLabel(row.reported_province, { full: false });
      default: return row[name] ?? "";
    }
  }

  function listColumns() {
    const columns = [...LISTS[state.list].columns];
    // As reported, each report also names the province of its date.
    if (state.frame === "as_reported") columns.splice(columns.indexOf("unit_name") + 1, 0, "reported_province");
    return columns;
  }

  function drawList(loading = false) {
    const columns = listColumns();
    for (const tab of document.querySelectorAll(".tabs button")) {
      tab.setAttribute("aria-selected", String(tab.dataset.list === state.list));
    }
    const table = $("list");
    table.tHead.replaceChildren(el("tr", {}, ...columns.map((c) => el("th", { class: "text" }, t("columns")[c]))));
    const rows = state.listRows.length
      ? state.listRows.map((row) =>
          el("tr", { "data-event": row.event_id }, ...columns.map((c) => el("td", { class: c === "title" ? "text wrap" : "text" }, listCell(c, row)))),
        )
      : [el("tr", {}, el("td", { class: "empty", colSpan: columns.length }, t(loading ? "loading" : "noData")))];
    table.tBodies[0].replaceChildren(...rows);
    $("more").hidden = !state.listCursor;
  }

  // ---- loading -------------------------------------------------------------------------------
  // What the figures are asked for, in today's frame: a 2025 province is its whole territory's
  // history, a legacy one (legacy:34) only that old province's own reports.
  function scopeParams(f) {
    return { province: f.province, unit: f.unit, from: f.from, to: f.to };
  }

  // As reported, one territory is several provinces of the reports' dates: today's Hưng Yên is
  // old Hưng Yên and old Thái Bình until 2025-06-30, then itself. The API answers a territory
  // (province= or unit=) grouped so in one request (null: nationwide, no territory chosen).
  function reportedTerritory(f) {
    if (f.unit) return { unit: f.unit };
    return f.province ? { province: f.province } : null;
  }

  // The provinces of the reports' dates that make up the chosen territory, for the legend.
  function reportedProvinces(f) {
    if (f.unit || !f.province) return [];
    const p = state.provinceIndex.get(f.province);
    return p && p.edition === "2025" ? [...(p.predecessors || []), p.code] : [f.province];
  }

  // The summaries one view draws: { total, series: [{code, rows}], byUnit, perUnit, freshness }.
  async function fetchSummaries(f) {
    const base = scopeParams(f);
    const perUnit = Boolean(f.province || f.unit || state.fixedUnit);
    const grouping = perUnit ? "unit" : "province";
    // The frames only regroup the figures: a territory's totals are the same in both.
    const totalAsked = call("/v1/summary", base);
    const territory = f.frame === "as_reported" ? reportedTerritory(f) : null;
    let series;
    let byUnit;
    if (!territory) {
      const frame = f.frame === "as_reported" ? "as_reported" : null;
      const [byPeriod, units] = await Promise.all([
        call("/v1/summary", { ...base, frame, group_by: f.granularity }),
        call("/v1/summary", { ...base, frame, group_by: grouping }),
      ]);
      series = [{ code: null, rows: byPeriod.rows }];
      byUnit = units.rows;
    } else {
      const asked = { ...territory, from: f.from, to: f.to, frame: "as_reported" };
      const [periods, units] = await Promise.all([
        call("/v1/summary", { ...asked, group_by: `province,${f.granularity}` }),
        call("/v1/summary", { ...asked, group_by: "unit" }),
      ]);
      const byProvince = new Map();
      // Every province of the territory is a series even without figures, so the legend names
      // the whole territory.
      for (const code of reportedProvinces(f)) byProvince.set(code, []);
      for (const row of periods.rows) {
        if (!byProvince.has(row.province_code)) byProvince.set(row.province_code, []);
        byProvince.get(row.province_code).push(row);
      }
      series = [...byProvince.entries()]
        .sort(([a], [b]) => (isLegacy(b) - isLegacy(a)) || a.localeCompare(b))
        .map(([code, rows]) => ({ code, rows }));
      byUnit = units.rows;
    }
    const total = await totalAsked;
    return { total: total.rows[0], series, byUnit, perUnit, freshness: total.freshness };
  }

  async function loadAll() {
    const load = ++state.load;
    const f = filters();
    document.body.dataset.state = "loading";
    try {
      const [data, list] = await Promise.all([
        fetchSummaries(f),
        call(`/v1/${state.list}`, { ...listParams(f), limit: 25 }),
      ]);
      if (load !== state.load) return; // a newer load started meanwhile
      state.data = { ...data, filters: f };
      state.listRows = list.rows;
      state.listCursor = list.next_cursor;
      showError(null);
      drawAll();
      document.body.dataset.query = queryString(f);
      document.body.dataset.state = "ready";
    } catch (error) {
      if (load !== state.load) return;
      failed(error);
    }
  }

  // What the page shows, as a query string (the frame only when it is not the default).
  function queryString(f) {
    const shown = [
      ["province", f.province],
      ["unit", f.unit],
      ["frame", f.frame === "current" ? "" : f.frame],
      ["from", f.from],
      ["to", f.to],
    ];
    return new URLSearchParams(shown.filter(([, v]) => v)).toString();
  }

  // The lists are asked for in today's frame, which holds the territory's whole history; each
  // row carries the province of its date too, shown in the as_reported frame.
  function listParams(f) {
    return { province: f.province, unit: f.unit, ...LISTS[state.list].params(f) };
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

  // The drill-down: today's units of the province (its office and communes), then those in
  // force on 2025-06-30 within its territory (the old provinces' offices and their districts).
  async function loadUnits() {
    const province = $("province").value;
    let rows = [];
    if (state.fixedUnit) rows = [state.fixedUnit];
    else if (province) {
      const today = isLegacy(province) ? Promise.resolve({ rows: [] }) : call("/v1/units", { province });
      const former = call("/v1/units", { province, on: LEGACY_LAST_DAY });
      rows = [...(await today).rows, ...(await former).rows];
    }
    state.units = rows;
    state.unitIndex = new Map(rows.map((u) => [u.code, u]));
    fillUnitOptions();
  }

  // A reporter token's own unit when it is not a province: a commune (today's units) or a
  // legacy district (those of 2025-06-30).
  async function findUnit(code) {
    const params = /^\d{3}$/.test(code) ? { on: LEGACY_LAST_DAY, level: "district" } : { level: "commune" };
    return (await call("/v1/units", params)).rows.find((u) => u.code === code) || null;
  }

  // CSV comes from the API itself (with its BOM, so spreadsheets read Vietnamese right); a
  // list is followed page by page through its cursor and joined under one header.
  async function downloadCsv(path, paramSets, filename) {
    let text = "";
    let first = true;
    for (const params of paramSets) {
      let cursor = null;
      for (let page = 0; page < 200; page += 1) {
        const response = await call(path, { ...params, cursor, format: "csv" }, "text/csv");
        // text() drops the byte-order mark; it is put back once, in front of the whole file.
        let chunk = (await response.text()).replace(/^\ufeff/, "");
        if (!first) chunk = chunk.slice(chunk.indexOf("\n") + 1); // the header again
        first = false;
        text += chunk;
        cursor = response.headers.get("X-Next-Cursor");
        if (!cursor) break;
      }
    }
    const link = el("a", { href: URL.createObjectURL(new Blob(["\ufeff" + text], { type: "text/csv;charset=utf-8" })), download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  function csvName(kind, f) {
    const where = (f.unit || f.province || "all").replace(":", "-");
    const frame = f.frame === "current" ? "" : `-${f.frame}`;
    return `${kind}-${where}${frame}-${f.from || "start"}-${f.to || "now"}.csv`;
  }

  function summaryCsvParams(f) {
    const grouping = f.province || f.unit || state.fixedUnit ? "unit" : "province";
    const range = { from: f.from, to: f.to, group_by: grouping };
    if (f.frame !== "as_reported") return [{ ...scopeParams(f), ...range }];
    return [{ ...(reportedTerritory(f) || {}), ...range, frame: "as_reported" }];
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
      const [today, legacy] = await Promise.all([
        call("/v1/provinces"),
        call("/v1/provinces", { edition: "legacy" }),
      ]);
      state.provinceIndex = new Map([...today.rows, ...legacy.rows].map((p) => [p.code, p]));
      state.provinces = today.rows;
      // What the token may read: a province (a dashboard's scope, or a provincial office's own),
      // or one commune or district (its reporter).
      const me = state.me;
      state.fixedProvince = null;
      state.fixedUnit = null;
      if (me.unit_code && !state.provinceIndex.has(me.unit_code)) {
        state.fixedUnit = await findUnit(me.unit_code);
        state.fixedProvince = state.fixedUnit ? state.fixedUnit.province_code : null;
      } else {
        state.fixedProvince = me.unit_code || me.province_code || null;
      }
      if (state.fixedProvince) {
        const own = state.provinceIndex.get(state.fixedProvince);
        state.provinces = own ? [own] : [];
      }
    } catch (error) {
      showSignedOut();
      return failed(error);
    }
    $("sign-in").hidden = true;
    $("main").hidden = false;
    $("who").hidden = false;
    fillProvinceOptions();
    try {
      await loadUnits();
    } catch (error) {
      return failed(error);
    }
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
      $("unit").value = "";
      document.body.dataset.state = "loading";
      try {
        await loadUnits();
      } catch (error) {
        return failed(error);
      }
      loadAll();
    });
    $("unit").addEventListener("change", loadAll);
    for (const input of document.querySelectorAll("input[name=frame]")) {
      input.addEventListener("change", () => {
        if (!input.checked) return;
        state.frame = input.value;
        showFrame();
        loadAll();
      });
    }
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
      if (state.data) drawCharts(state.data.series, state.data.byUnit, state.data.filters, state.data.perUnit);
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
      downloadCsv("/v1/summary", summaryCsvParams(f), csvName("summary", f)).catch(failed);
    });
    $("csv-list").addEventListener("click", () => {
      const f = filters();
      downloadCsv(`/v1/${state.list}`, [{ ...listParams(f), limit: 1000 }], csvName(state.list, f)).catch(failed);
    });
  }

  wire();
  translatePage();
  start();
})();
