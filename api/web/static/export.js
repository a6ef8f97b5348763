// The export page: after htmx swaps in the review (or the form with its messages), move the focus there, so a
// keyboard or screen-reader user lands on what changed: the first field in error, else the review's heading.
"use strict";
(function () {
  document.body.addEventListener("htmx:afterSwap", function (event) {
    var area = document.getElementById("export-area");
    if (!area || !area.contains(event.detail.elt) && event.detail.elt !== area) {
      return;
    }
    var invalid = area.querySelector('[aria-invalid="true"]');
    var plan = document.getElementById("export-plan");
    var target = invalid || plan;
    if (target) {
      target.focus();
    }
  });
})();
