/* Leaders' dashboard: draws the charts of #cw-dashboard from its JSON (assessment:dashboard_data).
 * Every chart is followed by a <details> table with the numbers behind it (one click away).
 * The weekly window is the reader's choice (end date, number of weeks, previous/next); the
 * monthly rates are the report's figures for each whole month, with each metric's definition
 * shown below and small denominators marked.
 * All text goes through textContent: topic titles come from citizens' messages. */
(function () {
  "use strict";
  var root = document.getElementById("cw-dashboard");
  if (!root || !window.Chart) { return; }

  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }

  function table(figure, headers, rows) {
    var details = el("details", null, { "class": "cw-dash-numbers" });
    details.appendChild(el("summary", gettext("数据")));
    var t = el("table");
    var tr = el("tr");
    headers.forEach(function (h) { tr.appendChild(el("th", h)); });
    t.appendChild(tr);
    rows.forEach(function (row) {
      var r = el("tr");
      row.forEach(function (cell) {
        var td = el("td");
        if (cell && typeof cell === "object") { var a = el("a", cell.text, { href: cell.href }); td.appendChild(a); }
        else { td.textContent = cell === null || cell === undefined ? "—" : String(cell); }
        r.appendChild(td);
      });
      t.appendChild(r);
    });
    details.appendChild(t);
    figure.appendChild(details);
  }

  function chart(name, config) {
    var figure = root.querySelector('[data-chart="' + name + '"]');
    var canvas = figure.querySelector("canvas");
    var old = window.Chart.getChart ? window.Chart.getChart(canvas) : null;
    if (old) { old.destroy(); }
    figure.querySelectorAll("details.cw-dash-numbers").forEach(function (n) { n.remove(); });
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options || {});
    // The chart gets its own sized box, so the caption and the numbers below it are not squeezed
    // into (and out of) a fixed-height figure.
    var box = canvas.parentNode;
    if (box.tagName === "FIGURE") {
      box = el("div", null, { "class": "cw-dash-chart" });
      canvas.parentNode.insertBefore(box, canvas);
      box.appendChild(canvas);
    }
    box.style.position = "relative";
    box.style.height = "220px";
    return { figure: figure, chart: new window.Chart(canvas, config) };
  }

  var controls = document.getElementById("cw-dash-controls");
  var current = null;

  function load(params) {
    root.removeAttribute("data-ready");
    var query = new URLSearchParams(params || {}).toString();
    return fetch(root.dataset.url + (query ? "?" + query : ""), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(draw)
      .catch(function (err) {
        root.appendChild(el("p", interpolate(gettext("态势数据加载失败:%s"), [err.message]), { "class": "errornote" }));
      });
  }

  function chosen(extra) {
    var p = { end: controls.elements.end.value, weeks: controls.elements.weeks.value };
    Object.assign(p, extra || {});
    if (!p.end) { delete p.end; }
    return p;
  }

  if (controls) {
    // The window controls redraw in place; the form itself is never sent (no inline handler: CSP).
    controls.addEventListener("submit", function (e) { e.preventDefault(); load(chosen()); });
    controls.elements.end.addEventListener("change", function () { load(chosen()); });
    controls.elements.weeks.addEventListener("change", function () { load(chosen()); });
    controls.querySelectorAll("button[data-move]").forEach(function (b) {
      b.addEventListener("click", function () {
        if (!current) { return; }
        var end = current.window[b.getAttribute("data-move")];
        controls.elements.end.value = end;
        load(chosen({ end: end }));
      });
    });
  }

  function draw(d) {
      current = d;
      if (controls) {
        controls.elements.end.value = d.window.end;
        controls.elements.weeks.value = String(d.window.weeks);
      }
      root.querySelector(".cw-dash-window").textContent = interpolate(gettext("留言量统计时段:%(start)s 至 %(end)s(%(weeks)s 周,由上方选择)"), d.window, true);
      var w = chart("volume_by_week", { type: "bar", data: { labels: d.volume_by_week.map(function (x) { return x.week; }),
        datasets: [{ label: gettext("留言数"), data: d.volume_by_week.map(function (x) { return x.count; }), backgroundColor: "#417690" }] } });
      table(w.figure, [gettext("周(周一)"), gettext("留言数")], d.volume_by_week.map(function (x) { return [x.week, x.count]; }));

      var u = chart("volume_by_unit", { type: "bar", data: { labels: d.volume_by_unit.map(function (x) { return x.unit; }),
        datasets: [{ label: gettext("留言数"), data: d.volume_by_unit.map(function (x) { return x.count; }), backgroundColor: "#79aec8" }] },
        options: { indexAxis: "y" } });
      table(u.figure, [gettext("单位"), gettext("留言数")], d.volume_by_unit.map(function (x) { return [x.unit, x.count]; }));

      var labels = d.open_by_state.map(function (x) { return x.label; }).concat([gettext("签收超期"), gettext("答复超期")]);
      var values = d.open_by_state.map(function (x) { return x.count; }).concat([d.overdue.sign_for, d.overdue.reply]);
      var o = chart("open", { type: "bar", data: { labels: labels, datasets: [{ label: gettext("件数"), data: values,
        backgroundColor: labels.map(function (l, i) { return i >= d.open_by_state.length ? "#ba2121" : "#417690"; }) }] } });
      table(o.figure, [gettext("类别"), gettext("件数")], labels.map(function (l, i) { return [l, values[i]]; }));

      var names = { sign_for_on_time: gettext("按时签收率"), handled_on_time: gettext("按时办结率"), satisfaction: gettext("满意率") };
      var allNames = { sign_for_on_time: gettext("按时签收率"), handled_on_time: gettext("按时办结率"), satisfaction: gettext("满意率"),
        return_rate: gettext("回退率"), send_back_rate: gettext("发回重办率"), reply_working_days: gettext("平均答复用时(工作日)") };
      function fig(k, c) {
        if (!c) { return "—"; }
        var text = k === "reply_working_days" ? (c.value === null ? "—" : interpolate(gettext("%(v)s(%(n)s 件)"), {v: c.value.toFixed(1), n: c.den}, true))
          : pct(c.value) + " (" + c.num + "/" + c.den + ")";
        return c.small ? text + " *" : text;
      }
      var colors = { sign_for_on_time: "#417690", handled_on_time: "#e69f00", satisfaction: "#009e73" };
      var ds = Object.keys(names).map(function (k) {
        return { label: names[k], borderColor: colors[k], backgroundColor: colors[k], spanGaps: true,
          data: d.rates_by_month.map(function (m) { return m[k] ? Math.round(m[k].value * 1000) / 10 : null; }) };
      });
      var rt = chart("rates", { type: "line", data: { labels: d.rates_by_month.map(function (m) { return m.month; }), datasets: ds },
        options: { scales: { y: { min: 0, max: 100, ticks: { callback: function (v) { return v + "%"; } } } } } });
      table(rt.figure, [gettext("月份")].concat(Object.keys(allNames).map(function (k) { return allNames[k]; })),
        d.rates_by_month.map(function (m) {
          return [{ text: m.month, href: d.links.report + "?start=" + m.start + "&end=" + m.end }].concat(
            Object.keys(allNames).map(function (k) { return fig(k, m[k]); }));
        }));
      // The 网评办's and the leaders' own rates (issue 13 §5), month by month, each linked to its cases.
      var office = root.querySelector("#cw-dash-office");
      if (office && (d.office_by_month || []).length) {
        var ot = office.querySelector("table");
        ot.textContent = "";
        var cols = [];
        d.office_by_month[0].rows.forEach(function (r) {
          if (r.key === "office" || r.key === "leaders") {
            Object.keys(d.office_labels).forEach(function (k) { if (r[k]) { cols.push([r.key, r.label, k]); } });
          }
        });
        var head = el("tr");
        head.appendChild(el("th", gettext("月份")));
        cols.forEach(function (c) { head.appendChild(el("th", c[1] + " · " + d.office_labels[c[2]])); });
        ot.appendChild(head);
        d.office_by_month.forEach(function (m) {
          var tr = el("tr", null, { "data-month": m.month });
          var mt = el("td", m.month);
          mt.style.whiteSpace = "nowrap";
          tr.appendChild(mt);
          cols.forEach(function (c) {
            var row = m.rows.filter(function (r) { return r.key === c[0]; })[0];
            var cell = row && row[c[2]];
            var td = el("td", null, { "data-who": c[0], "data-metric": c[2] });
            if (cell && cell.den) { td.appendChild(el("a", fig(c[2], cell), { href: cell.href })); }
            else { td.textContent = "—"; }
            tr.appendChild(td);
          });
          ot.appendChild(tr);
        });
        office.hidden = false;
      }
      var dl = root.querySelector("#cw-dash-definitions dl");
      if (dl) {
        dl.textContent = "";
        Object.keys(d.definitions).forEach(function (k) {
          dl.appendChild(el("dt", d.definitions[k].label));
          dl.appendChild(el("dd", d.definitions[k].text));
        });
        root.querySelector(".cw-dash-small-note").textContent = interpolate(gettext("* 分母少于 %s 件,比率仅供参考。"), [d.min_volume]);
      }

      var tp = chart("topics", { type: "bar", data: { labels: d.hot_topics.map(function (t) { return t.title.slice(0, 18); }),
        datasets: [{ label: gettext("热度指数"), data: d.hot_topics.map(function (t) { return t.heat; }), backgroundColor: "#c45850" }] },
        options: { indexAxis: "y", onClick: function (e, items) {
          if (items.length) { window.location.href = d.links.topic + d.hot_topics[items[0].index].id + "/change/"; } } } });
      table(tp.figure, [gettext("主题"), gettext("热度"), gettext("留言数"), gettext("共性问题")], d.hot_topics.map(function (t) {
        return [{ text: (t.alert ? "⚠ " : "") + t.title, href: d.links.topic + t.id + "/change/" }, t.heat, t.count, t.common ? gettext("是") : ""];
      }));
      if ((d.topic_alerts || []).length) {  // 未诉先办: topics in a rise (assessment.alerts)
        var box = el("div", "", { id: "cw-dash-alerts", "class": "errornote" });
        box.appendChild(el("strong", gettext("未诉先办预警:以下主题本周留言量明显高于基线")));
        d.topic_alerts.forEach(function (a) {
          var line = el("p", "");
          line.appendChild(el("a", "⚠ " + a.title, { href: d.links.topic + a.id + "/change/" }));
          line.appendChild(document.createTextNode(interpolate(gettext(" · 自 %(week)s 起 %(count)s 条(基线周均 %(baseline)s)"), a, true)));
          box.appendChild(line);
        });
        root.insertBefore(box, root.querySelector(".cw-dash-grid"));
      }
      root.setAttribute("data-ready", "1");
  }

  load({});
})();
