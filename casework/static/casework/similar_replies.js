// 类案参考: copy a similar case's published reply into the draft reply as a starting point.
document.addEventListener("click", function (event) {
  var button = event.target.closest(".cw-insert-reply");
  if (!button) { return; }
  var item = button.closest(".cw-similar-item");
  var target = document.getElementById(button.dataset.target);
  if (!item || !target) { return; }
  var text = item.querySelector(".cw-similar-reply").textContent;
  if (target.value.trim() && !window.confirm(button.dataset.confirm || "替换当前答复草稿?")) { return; }
  target.value = text;
  target.focus();
});
