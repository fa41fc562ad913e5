// The Mail Server page: show only the fields of the chosen options, suggest the
// usual port, reveal the Azure environment selector, preview an uploaded key.
// Without JavaScript every section stays visible and the server decides.
(function () {
  "use strict";
  const form = document.getElementById("mail-server-form");
  if (!form) return;

  function value(name) {
    const checked = form.querySelector(`input[name="${name}"]:checked`);
    if (checked) return checked.value;
    const field = form.elements.namedItem(name);
    return field && "value" in field ? field.value : "";
  }

  // data-show-if="a=x&b=y|c=z": any alternative whose conditions all hold.
  function matches(rule) {
    return rule.split("|").some((alternative) =>
      alternative.split("&").every((condition) => {
        const [name, expected] = condition.split("=");
        return value(name.trim()) === expected.trim();
      })
    );
  }

  function refresh() {
    form.querySelectorAll("[data-show-if]").forEach((section) => {
      section.hidden = !matches(section.dataset.showIf);
    });
  }

  // Suggest the usual port when the security changes, unless the admin typed one.
  const defaultPorts = JSON.parse(form.dataset.defaultPorts || "{}");
  const usual = Object.values(defaultPorts).map(String);
  const port = form.elements.namedItem("port");
  if (port) {
    // A saved custom port (2525) was chosen by someone: treat it as typed, never replace it.
    port.dataset.edited = port.value !== "" && !usual.includes(port.value) ? "true" : "false";
    port.addEventListener("input", () => { port.dataset.edited = "true"; });
  }
  function suggestPort() {
    if (!port) return;
    const untouched = port.dataset.edited !== "true" || port.value === "" || usual.includes(port.value);
    const suggestion = defaultPorts[value("security")];
    if (untouched && suggestion) {
      port.value = suggestion;
      port.dataset.edited = "false";
    }
  }

  // Basic auth against Microsoft 365 stops at the end of December 2026: warn as the admin
  // types (the host list is the server's, settings_app/microsoft_365.py).
  const sunsetWarning = form.querySelector("[data-basic-auth-sunset]");
  const microsoft365 = JSON.parse(form.dataset.m365Hosts || '{"hosts":[],"suffixes":[]}');
  function isMicrosoft365(host) {
    const name = host.trim().toLowerCase().replace(/\.$/, "");
    return name !== "" && (microsoft365.hosts.includes(name) ||
      microsoft365.suffixes.some((suffix) => name.endsWith(suffix)));
  }
  function refreshSunset() {
    if (!sunsetWarning) return;
    sunsetWarning.hidden = !(value("mode") === "smtp" && value("auth") === "basic" &&
      value("username").trim() !== "" && isMicrosoft365(value("server_name")));
  }

  // The app-only scope shown follows the Azure environment chosen.
  const appScope = form.querySelector("[data-app-only-scope]");
  function refreshAppScope() {
    if (!appScope) return;
    const scopes = JSON.parse(appScope.dataset.appOnlyScope || "{}");
    const scope = scopes[value("oauth_azure_environment")];
    if (scope) appScope.textContent = scope;
  }

  form.addEventListener("change", (event) => {
    if (event.target.name === "security") suggestPort();
    refresh();
    refreshSunset();
    refreshAppScope();
  });
  form.addEventListener("input", refreshSunset);

  // "Choose the appropriate Azure environment" reveals the selector.
  form.querySelectorAll("[data-azure-env]").forEach((box) => {
    const select = box.querySelector("select");
    const label = box.querySelector("[data-azure-label]");
    box.querySelector("[data-azure-choose]").addEventListener("click", (event) => {
      event.preventDefault();
      box.querySelector("[data-azure-select]").classList.add("revealed");
      select.focus();
    });
    select.addEventListener("change", () => {
      label.textContent = select.options[select.selectedIndex].text;
    });
    if (select.classList.contains("is-invalid")) box.querySelector("[data-azure-select]").classList.add("revealed");
  });

  // Buttons that switch options in one click (Basic auth -> OAuth or Graph). Only the
  // choices change: every typed value (From, Admin Mail Address, Username) stays. Then
  // the guide names the new fields, marks them and puts the cursor in the first empty one.
  document.querySelectorAll("[data-switch-to]").forEach((link) => {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      link.dataset.switchTo.split(",").forEach((pair) => {
        const [name, wanted] = pair.split("=");
        const radio = form.querySelector(`input[name="${name}"][value="${wanted}"]`);
        if (radio) radio.checked = true;
      });
      refresh();
      refreshSunset();
      form.querySelectorAll("[data-switch-guide]").forEach((guide) => {
        guide.hidden = guide.dataset.switchGuide !== link.dataset.switchMethod;
      });
      const fields = (link.dataset.switchFields || "").split(",").filter(Boolean)
        .map((name) => form.elements.namedItem(name))
        .filter((field) => field && "focus" in field);
      fields.forEach((field) => {
        field.classList.add("switch-new-field");
        field.addEventListener("input", () => field.classList.remove("switch-new-field"), { once: true });
      });
      const guide = form.querySelector(`[data-switch-guide="${link.dataset.switchMethod}"]`);
      const first = fields.find((field) => field.value === "") || fields[0];
      if (guide) guide.scrollIntoView({ behavior: "smooth", block: "start" });
      if (first) first.focus({ preventScroll: true });
    });
  });

  // Show whose key was chosen before uploading it (nothing leaves the browser here).
  const keyInput = form.querySelector("[data-key-input]");
  const keyPreview = form.querySelector("[data-key-preview]");
  if (keyInput && keyPreview) {
    keyInput.addEventListener("change", () => {
      const file = keyInput.files[0];
      keyPreview.textContent = "";
      if (!file) return;
      if (file.size > 64 * 1024) {
        keyPreview.textContent = "This file is larger than 64 KiB; it is not a service account key.";
        return;
      }
      file.text().then((text) => {
        let info;
        try { info = JSON.parse(text); } catch (e) { info = null; }
        if (!info || info.type !== "service_account" || !info.client_email) {
          keyPreview.textContent = "This file does not look like a service account JSON key.";
          return;
        }
        keyPreview.textContent = `Service account ${info.client_email} · client ID ${info.client_id || "?"} ` +
          "(press Save Settings to store it)";
      });
    });
  }

  document.querySelectorAll('[data-bs-toggle="tooltip"]').forEach((el) => {
    if (window.bootstrap) new window.bootstrap.Tooltip(el);
  });

  refresh();
  refreshSunset();
})();

// Test Mail: ask for the recipient, post the form (unsaved values) and show the transcript.
(function () {
  "use strict";
  const form = document.getElementById("mail-server-form");
  const trigger = form && form.querySelector("[data-test-mail]");
  const dialogEl = document.getElementById("test-mail-dialog");
  if (!trigger || !dialogEl || !window.bootstrap) return; // without JS the button submits the form
  const dialog = new window.bootstrap.Modal(dialogEl);
  const recipient = dialogEl.querySelector("#id_test_recipient");
  const send = dialogEl.querySelector("[data-test-send]");
  const progress = dialogEl.querySelector("[data-test-progress]");
  const output = dialogEl.querySelector("[data-test-output]");

  trigger.addEventListener("click", (event) => {
    event.preventDefault();
    if (!recipient.value) recipient.value = form.elements.namedItem("admin_address").value;
    output.innerHTML = "";
    dialog.show();
  });
  dialogEl.addEventListener("shown.bs.modal", () => recipient.focus());
  recipient.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); send.click(); }
  });

  function notice(kind, html) {
    return `<div class="alert alert-${kind} mb-0" role="alert" data-testid="test-mail-problem">${html}</div>`;
  }
  const expired = notice("warning",
    `<strong>Your session has expired:</strong> <a href="${dialogEl.dataset.loginUrl}" target="_blank" rel="noopener">sign in again in another tab</a>, ` +
    "then press Send test mail again (your form is kept).");

  send.addEventListener("click", async () => {
    send.disabled = true;
    trigger.disabled = true;
    progress.hidden = false;
    output.innerHTML = "";
    refreshCsrfToken();
    try {
      // "manual": a signed-out user gets a redirect to the login page, which must not
      // end up inside the dialog (nor replace the page and the admin's typing).
      const response = await fetch(trigger.getAttribute("formaction"), {
        method: "POST",
        body: new FormData(form),
        headers: { "X-Requested-With": "fetch" },
        credentials: "same-origin",
        redirect: "manual",
      });
      if (response.type === "opaqueredirect" || response.redirected) {
        output.innerHTML = expired;
      } else if (response.ok) {
        output.innerHTML = await response.text();
      } else {
        output.innerHTML = notice("danger",
          `The console answered ${response.status}: nothing was sent. Copy anything you typed, reload the page and try again.`);
      }
    } catch (error) {
      output.innerHTML = notice("danger", "The console could not be reached: nothing was sent. Check your connection and press Send test mail again.");
    } finally {
      progress.hidden = true;
      send.disabled = false;
      trigger.disabled = false;
    }
  });
})();

// Check permissions: post the form (unsaved values) and show what was found; nothing is sent.
(function () {
  "use strict";
  const form = document.getElementById("mail-server-form");
  const trigger = form && form.querySelector("[data-check-permissions]");
  const dialogEl = document.getElementById("permission-check-dialog");
  if (!trigger || !dialogEl || !window.bootstrap) return; // without JS the button submits the form
  const dialog = new window.bootstrap.Modal(dialogEl);
  const progress = dialogEl.querySelector("[data-check-progress]");
  const output = dialogEl.querySelector("[data-check-output]");

  function notice(kind, html) {
    return `<div class="alert alert-${kind} mb-0" role="alert" data-testid="permission-check-problem">${html}</div>`;
  }

  trigger.addEventListener("click", async (event) => {
    event.preventDefault();
    output.innerHTML = "";
    progress.hidden = false;
    trigger.disabled = true;
    dialog.show();
    refreshCsrfToken();
    try {
      const response = await fetch(trigger.getAttribute("formaction"), {
        method: "POST",
        body: new FormData(form),
        headers: { "X-Requested-With": "fetch" },
        credentials: "same-origin",
        redirect: "manual", // a signed-out user's login redirect must not land in the dialog
      });
      if (response.type === "opaqueredirect" || response.redirected) {
        output.innerHTML = notice("warning",
          `<strong>Your session has expired:</strong> <a href="${dialogEl.dataset.loginUrl}" target="_blank" rel="noopener">sign in again in another tab</a>, ` +
          "then press Check permissions again (your form is kept).");
      } else if (response.ok) {
        output.innerHTML = await response.text();
      } else {
        output.innerHTML = notice("danger",
          `The console answered ${response.status}. Copy anything you typed, reload the page and try again.`);
      }
    } catch (error) {
      output.innerHTML = notice("danger", "The console could not be reached. Check your connection and press Check permissions again.");
    } finally {
      progress.hidden = true;
      trigger.disabled = false;
    }
  });
})();

// Signing in again (in another tab) gives a new CSRF token: send the current one, so the
// form still works without a reload. The cookie is readable by design (not HttpOnly).
function refreshCsrfToken() {
  const form = document.getElementById("mail-server-form");
  const name = form && form.dataset.csrfCookie;
  const field = form && form.elements.namedItem("csrfmiddlewaretoken");
  if (!name || !field) return;
  const cookie = document.cookie.split("; ").find((item) => item.startsWith(name + "="));
  if (cookie) field.value = decodeURIComponent(cookie.slice(name.length + 1));
}
(function () {
  const form = document.getElementById("mail-server-form");
  if (form) form.addEventListener("submit", refreshCsrfToken);
})();

// Copy buttons (the OAuth redirect URI): admins must register the exact string.
document.querySelectorAll("[data-copy-from]").forEach((button) => {
  button.addEventListener("click", async () => {
    const source = document.getElementById(button.dataset.copyFrom);
    source.select();
    try {
      await navigator.clipboard.writeText(source.value);
    } catch {
      document.execCommand("copy"); // non-secure origins have no clipboard API
    }
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});
