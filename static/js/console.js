/* mdmportal: small conveniences on top of pages that work without JavaScript. */
(function () {
  "use strict";

  // Show the chosen file's name next to the "Choose file" button.
  function fileNameShow(input) {
    var target = document.querySelector('[data-file-name-for="' + input.id + '"]');
    if (!target) return;
    var file = input.files && input.files[0];
    target.textContent = file ? file.name : "No file chosen";
    target.classList.toggle("has-file", Boolean(file));
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input.matches && input.matches('input[type="file"]')) fileNameShow(input);
  });

  // Ask before actions that change things at Apple.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // Close the user menu with Escape or a click elsewhere.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.user-menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
      menu.querySelector("summary").focus();
    });
  });
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.user-menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });

  // Fill the seat meters; their width is set here because the content security policy allows
  // no inline style attributes.
  function meterFill(bar) {
    bar.style.width = bar.getAttribute("data-meter-percent") + "%";
  }

  document.addEventListener("DOMContentLoaded", function () {
    // A refusal the page was sent back with: bring it into view and to the screen reader.
    var refusal = document.querySelector("[data-focus-on-load]");
    if (refusal) refusal.focus();
    document.querySelectorAll('input[type="file"]').forEach(fileNameShow);
    document.querySelectorAll("[data-meter-percent]").forEach(meterFill);
  });
})();
