// The demo portal's side of signed-in chat (docs/chat-auth.md 1.4, docs/chat-widget.md): the widget calls
// auth.getAuthenticationToken(callback) and waits up to 10 s for the token. A real portal's server signs the
// token for its signed-in visitor; here /demo/token does, with the demo key of this `switchboard local` run.
window.auth = window.auth || {};
window.auth.getAuthenticationToken = function (callback) {
  fetch("/demo/token", { cache: "no-store" })
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (body) { callback(body && body.token); })
    .catch(function () { callback(null); });
};

// The widget's events, shown on the page so a newcomer sees what a portal can listen to.
(function () {
  var seen = [];
  function show(event) {
    var detail = event.detail || {};
    seen.push(event.type + (detail.code ? " (" + detail.code + ")" : detail.direction ? " (" + detail.direction + ")" : ""));
    var output = document.getElementById("events");
    if (output) output.textContent = seen.slice(-4).join(", ");
  }
  ["switchboard:ready", "switchboard:message", "switchboard:error"].forEach(function (name) {
    window.addEventListener(name, show);
  });
})();
