// Live message states on the printer page: while a message on the page is
// still on its way (waiting or sent), its state is asked for every 2 s and
// shown as it changes: waiting → sent to the printer → printed (or failed).
// Stops when every message is done, after 15 minutes, or when the page is
// hidden for good. Without JavaScript the page reloads itself instead.
(function () {
  var history = document.getElementById("history");
  if (!history || !window.fetch) return;
  var url = history.getAttribute("data-states");
  var online = document.getElementById("online");
  var started = Date.now();
  function pending() { return history.querySelector("[data-pending]") !== null; }
  function show(m) {
    var item = history.querySelector('[data-message="' + m.id + '"] .state');
    if (!item) return;
    var strong = document.createElement("strong");
    strong.className = "state-" + m.state;
    strong.textContent = m.words;
    if (!m.final) strong.setAttribute("data-pending", "");
    item.textContent = "";
    item.appendChild(strong);
    if (m.failure) item.appendChild(document.createTextNode(": " + m.failure));
  }
  function poll() {
    if (!pending() || Date.now() - started > 15 * 60 * 1000) return;
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        if (!d) return;
        d.messages.forEach(show);
        if (online) {
          online.className = "status " + (d.online ? "on" : "off");
          online.lastChild.textContent = d.online ? "online" : "offline";
        }
      })
      .catch(function () {})
      .then(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 2000);
})();
