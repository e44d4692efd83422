// 知识库标准答复: list the standard answers matching the case (or a keyword) and insert one into the
// draft reply at the cursor (its policy basis goes into 政策依据 when that box is empty).
(function () {
  var panel = document.getElementById("cw-standard");
  if (!panel) { return; }
  var list = document.getElementById("cw-standard-list");
  var query = document.getElementById("cw-standard-q");
  var articles = [];

  function render() {
    list.textContent = "";
    if (!articles.length) {
      var empty = document.createElement("p");
      empty.textContent = panel.dataset.empty;
      list.appendChild(empty);
      return;
    }
    articles.forEach(function (a, i) {
      var item = document.createElement("div");
      item.className = "cw-standard-item";
      item.dataset.article = a.id;
      var head = document.createElement("p");
      var title = document.createElement("strong");
      title.textContent = a.title;
      head.appendChild(title);
      head.appendChild(document.createTextNode(" "));
      var button = document.createElement("button");
      button.type = "button";
      button.className = "cw-insert-standard";
      button.dataset.index = i;
      button.textContent = panel.dataset.insert;
      head.appendChild(button);
      item.appendChild(head);
      var body = document.createElement("div");
      body.className = "cw-body";
      body.textContent = a.body;
      item.appendChild(body);
      if (a.policy_basis) {
        var basis = document.createElement("p");
        basis.className = "help";
        basis.textContent = panel.dataset.policy + ":" + a.policy_basis;
        item.appendChild(basis);
      }
      list.appendChild(item);
    });
  }

  function load(q) {
    var url = panel.dataset.url + (q ? "?q=" + encodeURIComponent(q) : "");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) { articles = data.articles || []; render(); })
      .catch(function () { list.textContent = panel.dataset.failed; });
  }

  function insertAt(box, text) {
    var start = box.selectionStart, end = box.selectionEnd;
    if (typeof start !== "number" || document.activeElement !== box && !box.dataset.touched) {
      start = end = box.value.length;
    }
    var before = box.value.slice(0, start), after = box.value.slice(end);
    var sep = before && !/\n$/.test(before) ? "\n" : "";
    box.value = before + sep + text + after;
    var caret = (before + sep + text).length;
    box.focus();
    box.setSelectionRange(caret, caret);
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }

  panel.addEventListener("click", function (event) {
    var button = event.target.closest(".cw-insert-standard");
    if (button) {
      var a = articles[Number(button.dataset.index)];
      var reply = document.getElementById("id_reply_text");
      if (!a || !reply) { return; }
      insertAt(reply, a.body);
      var basis = document.getElementById("id_policy_basis");
      if (basis && a.policy_basis && !basis.value.trim()) { basis.value = a.policy_basis; }
      return;
    }
    if (event.target.id === "cw-standard-search") { load(query.value.trim()); }
  });
  query.addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); load(query.value.trim()); }
  });
  document.addEventListener("focusin", function (event) {
    if (event.target.id === "id_reply_text") { event.target.dataset.touched = "1"; }
  });
  load("");
}());
