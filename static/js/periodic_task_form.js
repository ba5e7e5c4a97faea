/* Django admin → Periodic tasks → change form: show the chosen crontab in words under the
 * field, as django-celery-beat's inline script does (inline scripts are not allowed by the
 * Content-Security-Policy). The descriptions come from the json_script block "readable-crontabs".
 */
(function () {
  "use strict";

  function start() {
    var data = document.getElementById("readable-crontabs");
    var select = document.getElementById("id_crontab");
    var help = document.querySelector(".field-crontab .help");
    var translation = document.querySelector(".field-crontab_translation");
    if (translation) { translation.style.display = "none"; }  // CSSOM, which the policy allows
    if (!data || !select || !help) { return; }
    var readable = JSON.parse(data.textContent);
    var original = help.textContent;

    function show() {
      var words = readable[select.value];
      help.textContent = original;
      if (words) {
        help.appendChild(document.createElement("br"));
        help.appendChild(document.createTextNode("Translation: " + words));
      }
    }
    select.addEventListener("change", show);
    show();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
