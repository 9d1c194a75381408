// Live preview for the compose page: after a pause in typing, the form is
// posted to the preview address and the page that would print is shown,
// with its length. At most one request is in flight; the latest input
// wins. Without JavaScript the form still prints.
(function () {
  var form = document.getElementById("compose");
  var img = document.getElementById("preview");
  var length = document.getElementById("preview-length");
  if (!form || !img || !window.fetch || !window.FormData) return;
  var url = form.getAttribute("data-preview");
  var timer = null, busy = false, again = false, shown = null;
  function update() {
    if (busy) { again = true; return; }
    busy = true; again = false;
    fetch(url, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) return r.text().then(function (t) { throw new Error(t); });
        var cm = r.headers.get("X-Page-Length-Cm");
        return r.blob().then(function (b) { return [b, cm]; });
      })
      .then(function (x) {
        if (shown) URL.revokeObjectURL(shown);
        shown = URL.createObjectURL(x[0]);
        img.src = shown; img.hidden = false;
        length.textContent = "About " + x[1] + " cm of paper.";
      })
      .catch(function (e) { length.textContent = "No preview: " + e.message; })
      .then(function () { busy = false; if (again) update(); });
  }
  function soon() { clearTimeout(timer); timer = setTimeout(update, 400); }
  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
  // A picture dropped anywhere on the form is the picture to print.
  form.addEventListener("dragover", function (e) {
    e.preventDefault(); form.classList.add("dropping");
  });
  form.addEventListener("dragleave", function () { form.classList.remove("dropping"); });
  form.addEventListener("drop", function (e) {
    e.preventDefault(); form.classList.remove("dropping");
    if (e.dataTransfer && e.dataTransfer.files.length) {
      form.image.files = e.dataTransfer.files;
      update();
    }
  });
  // The preview shows here; the no-JavaScript preview button is not needed.
  var button = document.getElementById("preview-button");
  if (button) button.hidden = true;
  if (form.message.value.trim()) update();
})();
