// The records forms: after a refused submit the page opens on its error summary (a screen reader reads it, the
// keyboard starts there), and each of its links moves the focus into the field it names.
"use strict";
(function () {
  var summary = document.getElementById("error-summary");
  if (!summary) {
    return;
  }
  summary.focus();
  summary.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href^='#']") : null;
    var target = link ? document.getElementById(link.getAttribute("href").slice(1)) : null;
    if (!target) {
      return;
    }
    event.preventDefault();
    var control = target.matches("fieldset") ? target.querySelector("input, select, textarea") || target : target;
    control.focus();
    control.scrollIntoView({ block: "center" });
  });
})();
