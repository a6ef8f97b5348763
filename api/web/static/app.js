// Shared behaviour of every page. No inline scripts anywhere (the Content-Security-Policy forbids them).
"use strict";
(function () {
  // The CSRF token for scripts that call the API with the session cookie (upload, export).
  window.evidenceCsrf = function () {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  };
  // Buttons that need a second confirmation carry data-confirm="question".
  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-confirm]") : null;
    if (target && !window.confirm(target.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);
})();
