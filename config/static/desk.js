// The staff desk keeps typed work (issue 19): a draft saved as the person types, the
// session kept alive while they are active, and the screening result shown as
// indicators are ticked. Everything here is optional: with script off the forms post as
// usual and the server keeps a submit that arrives after the session has ended.
(function () {
  "use strict";
  var token = function () {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };
  var lastActivity = Date.now();
  var activity = function () { lastActivity = Date.now(); };
  ["keydown", "input", "pointerdown", "change"].forEach(function (name) {
    document.addEventListener(name, activity, true);
  });

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": token() }
    });
  }

  function status(form, text) {
    var line = form.querySelector(".draft-status");
    if (line) { line.textContent = text; }
  }

  function watchDraft(form) {
    var timer = null;
    var save = function () {
      timer = null;
      post("/desk/drafts", new FormData(form)).then(function (answer) {
        if (answer.ok) {
          status(form, "Draft saved " + new Date().toLocaleTimeString() + ".");
          form.dataset.draftSaved = String(Date.now());
        } else if (answer.status === 401 || answer.status === 400) {
          status(form, "Your session has ended: keep typing, what you save is kept.");
        }
      }).catch(function () { status(form, "Draft not saved (offline)."); });
    };
    form.addEventListener("input", function () {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(save, 700);
    });
    form.addEventListener("change", function () {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(save, 700);
    });
    form.addEventListener("submit", function () {
      if (timer) { clearTimeout(timer); }  // the submit itself keeps the work now
    });
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  function watchPreview(form) {
    var target = document.getElementById(form.dataset.preview);
    if (!target) { return; }
    var timer = null;
    var show = function () {
      timer = null;
      post(form.dataset.previewUrl, new FormData(form)).then(function (answer) {
        return answer.ok ? answer.json() : null;
      }).then(function (result) {
        if (!result) { return; }
        clear(target);
        var line = document.createElement("p");
        line.id = "preview-level";
        line.textContent = "Screening: " + result.level + " · priority " + result.priority;
        target.appendChild(line);
        var list = document.createElement("ul");
        list.id = "preview-referrals";
        (result.recommended.length ? result.recommended : ["No referral recommended"]).forEach(
          function (text) {
            var item = document.createElement("li");
            item.textContent = text;
            list.appendChild(item);
          });
        target.appendChild(list);
      }).catch(function () { /* the result also shows after saving */ });
    };
    form.addEventListener("change", function () {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(show, 300);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-draft]"), watchDraft);
    Array.prototype.forEach.call(document.querySelectorAll("form[data-preview]"), watchPreview);
    var seconds = parseInt(document.body.dataset.keepalive || "0", 10);
    if (seconds > 0 && document.querySelector("form[data-draft]")) {
      // Only while a form is open and the person has been active since the last beat.
      var beat = Date.now();
      setInterval(function () {
        if (lastActivity > beat) { post("/desk/alive", new FormData()); }
        beat = Date.now();
      }, seconds * 1000);
    }
  });
})();
