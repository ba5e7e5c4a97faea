// Copy buttons: <button data-copy="ID"> copies the text of the element #ID (the AWS trust
// policy, say). A static file, as the Content-Security-Policy forbids inline scripts.
(function () {
  "use strict";
  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "copy-scratch";
    document.body.appendChild(area);
    area.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    document.body.removeChild(area);
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.textContent;
    var copied = navigator.clipboard && window.isSecureContext ? navigator.clipboard.writeText(text) : fallback(text);
    var label = button.textContent;
    copied.then(function () {
      button.textContent = "Copied";
    }, function () {
      button.textContent = "Select and copy";
    }).then(function () {
      window.setTimeout(function () { button.textContent = label; }, 2000);
    });
  });
})();
