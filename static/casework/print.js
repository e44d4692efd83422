// The print view's button opens the browser's print dialog (CSP: no inline handlers).
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("cw-print-now");
  if (button) {
    button.addEventListener("click", function () { window.print(); });
  }
});
