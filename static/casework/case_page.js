// Case page: destructive actions ask before they are sent (forms, or the submit button pressed,
// with data-confirm).
document.addEventListener("submit", function (event) {
  var form = event.target;
  var button = event.submitter;
  var question = (button && button.getAttribute && button.getAttribute("data-confirm")) ||
    (form && form.getAttribute && form.getAttribute("data-confirm"));
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
}, true);
