// Live chat, the tipster's page: poll for new messages every few seconds and add them
// below. Nothing else: sending and ending are plain form posts, so the page works with
// script off too (refresh to see new messages). Each message is numbered; asking for
// "after the last number seen" means a reconnect shows nothing twice and loses nothing.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("chat");
    if (!root) { return; }
    var list = document.getElementById("messages");
    var status = document.getElementById("chat-status");
    var offer = document.getElementById("chat-offer");
    var seconds = parseInt(root.dataset.poll || "3", 10);
    var last = 0;
    Array.prototype.forEach.call(list.querySelectorAll("li[data-seq]"), function (li) {
      last = Math.max(last, parseInt(li.dataset.seq, 10));
    });
    var name = { tipster: root.dataset.you, operator: root.dataset.advocate, system: "—" };
    function add(message) {
      if (message.seq <= last) { return; }
      last = message.seq;
      var item = document.createElement("li");
      item.className = message.sender === "tipster" ? "in" : "out";
      item.dataset.seq = String(message.seq);
      var who = document.createElement("strong");
      who.textContent = name[message.sender] || message.sender;
      var body = document.createElement("span");
      body.className = "chat-body";
      body.textContent = message.body;
      item.appendChild(who);
      item.appendChild(document.createTextNode(" "));
      item.appendChild(body);
      list.appendChild(item);
    }
    function poll() {
      fetch("/chat/" + root.dataset.chatId + "/messages?after=" + last, {
        credentials: "same-origin", headers: { "Accept": "application/json" }
      }).then(function (answer) {
        return answer.ok ? answer.json() : null;
      }).then(function (state) {
        if (!state) { return; }
        state.messages.forEach(add);
        if (state.state === "waiting") {
          status.textContent = root.dataset.waiting.replace("{place}", state.place_in_line);
        } else if (state.state === "active") {
          status.textContent = root.dataset.active;
        } else {
          status.textContent = root.dataset.over;
        }
        if (state.offer_message) { offer.textContent = state.offer_message; offer.hidden = false; }
      }).catch(function () { /* offline for a moment: the next poll catches up */ })
        .then(function () { setTimeout(poll, seconds * 1000); });
    }
    setTimeout(poll, seconds * 1000);
  });
})();
