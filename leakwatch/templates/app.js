// Keyboard coding: the keys shown on the page pick labels, u unsure, s skip, z undo, Enter submit.
// Submissions go through fetch so a locked warehouse can be retried without losing the choice; the
// page moves on only after the server said the annotation is stored.
(function () {
  "use strict";
  const form = document.getElementById("coding");
  if (!form) return;
  const keys = JSON.parse(form.dataset.keys || "{}");
  const status = document.getElementById("status");
  const show = (text, kind) => { status.textContent = text; status.className = "status " + (kind || ""); };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  let sending = false;

  function pick(target, label) {
    const input = form.querySelector('input[type=radio][name="label_' + target + '"][value="' + label + '"]');
    if (input) input.checked = true;
  }

  function targets() {
    return Array.from(new Set(Array.from(form.querySelectorAll("input[type=radio]")).map((r) => r.name)));
  }

  async function submit() {
    if (sending) return;
    const open = targets().filter((name) => !form.querySelector('input[name="' + name + '"]:checked'));
    if (open.length && !form.elements.unsure.checked) {
      show("choose a label for " + open.map((n) => n.replace("label_", "")).join(", ") + " or mark unsure (u)", "error");
      return;
    }
    sending = true;
    const body = new FormData(form);
    for (;;) {
      let response;
      try {
        response = await fetch(form.action, { method: "POST", body: body, credentials: "same-origin",
          headers: { "Accept": "application/json", "X-CSRF-Token": body.get("csrf") } });
      } catch (error) {
        show("connection lost, retrying…", "busy");
        await sleep(1000);
        continue;
      }
      if (response.status === 503) {
        show("warehouse busy, retrying…", "busy");
        await sleep(700);
        continue;
      }
      let data = {};
      try { data = await response.json(); } catch (error) { data = { error: "unexpected answer " + response.status }; }
      if (!response.ok) {
        show(data.error || "not saved (" + response.status + ")", "error");
        sending = false;
        return;
      }
      show("saved", "saved");
      window.location.assign(data.next);
      return;
    }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); submit(); });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || sending) return;
    const tag = (event.target.tagName || "").toLowerCase();
    if (tag === "textarea" || (tag === "input" && !["radio", "checkbox"].includes(event.target.type))) return;
    const key = event.key === "Enter" ? "enter" : event.key.toLowerCase();
    if (keys[key]) {
      pick(keys[key][0], keys[key][1]);
    } else if (key === "u") {
      form.elements.unsure.checked = !form.elements.unsure.checked;
    } else if (key === "s") {
      window.location.assign(form.dataset.skip);
    } else if (key === "z") {
      if (form.dataset.undo) window.location.assign(form.dataset.undo);
      else show("nothing to undo yet", "error");
    } else if (key === "enter") {
      submit();
    } else {
      return;
    }
    event.preventDefault();
  });
})();
