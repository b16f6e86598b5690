// Quick exit (SPEC §9): leave for a neutral site and replace this page in the history,
// so the back button does not return here. Escape does the same. Works without it too:
// the button is a plain link.
(function () {
  "use strict";
  function leave(event) {
    var link = document.getElementById("quick-exit");
    if (!link) { return; }
    if (event) { event.preventDefault(); }
    document.body.textContent = "";
    window.location.replace(link.href);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var link = document.getElementById("quick-exit");
    if (link) { link.addEventListener("click", leave); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { leave(event); }
  });
})();
