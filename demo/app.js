// The CRM demo page: what a CRM's settings page does with the connector.
// Plain JS, no build step, no outside resources. The API is on this page's
// origin (the local gateway), so no CORS is involved.
//
// Connecting (issue 12): the callback page does not connect. It posts
// {"type": "docusign-consent", "status": "approved", "confirmation", ...} to
// the window that opened the consent tab, and this page redeems the
// confirmation with POST /docusign/consent/confirm under the admin's own
// token. The confirmation is a secret: it is never shown, logged or put in a
// URL, only sent in that request's body.
//
// DEVELOPMENT ONLY: the CRM JWTs come from /demo/config.json, which only the
// local tooling serves. A real CRM has its own session and signs its own JWTs.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let config = null;
  let samplePdfBase64 = null;
  let popupWatch = null;
  // The consent this page started and has not heard back about:
  // {window, callbackOrigin, role, deadline}, or null. Only a message from
  // that window, from the callback's origin, before the deadline, counts.
  let pending = null;

  // ---- helpers ---------------------------------------------------------------

  function log(text) {
    const li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString() + "  " + text;
    $("log").prepend(li);
  }

  function show(el, text, kind) {
    el.textContent = text;
    el.className = kind || "";
  }

  function role() {
    return $("role").value;
  }

  async function loadConfig() {
    const res = await fetch("/demo/config.json", { cache: "no-store" });
    if (!res.ok) throw new Error("cannot load /demo/config.json (HTTP " + res.status + ")");
    config = await res.json();
    $("tenant").textContent = config.tenant;
    $("docusign-target").textContent = config.docusign ? "DocuSign here is the " + config.docusign : "";
  }

  // Calls the connector with the JWT of the selected CRM user (or of asRole).
  // Returns {status, data, headers}; data is the parsed JSON body or null.
  async function api(method, path, body, headers, asRole, retried) {
    const who = asRole || role();
    const h = Object.assign({ Authorization: "Bearer " + config.tokens[who] }, headers || {});
    if (body !== undefined) h["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, {
        method: method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (e) {
      return { status: 0, data: { error: { code: "network_error", message: String(e) } }, headers: new Headers() };
    }
    if (res.status === 401 && !retried) {
      // The demo tokens expire after some hours: fetch fresh ones once.
      await loadConfig();
      return api(method, path, body, headers, who, true);
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { raw: text }; }
    }
    return { status: res.status, data: data, headers: res.headers };
  }

  // The API's messages quote names in Markdown backticks (`Idempotency-Key`);
  // on the page they read better as plain quotes.
  function plain(text) {
    return String(text).replace(/`([^`]*)`/g, "\u201c$1\u201d");
  }

  function errorText(res) {
    const e = res.data && res.data.error;
    if (!e) return "HTTP " + res.status;
    let text = plain(e.message) + " (" + e.code + ", HTTP " + res.status + ")";
    if (e.docusign_error_code) text += " DocuSign: " + e.docusign_error_code + " " + plain(e.docusign_message || "");
    const retry = res.headers.get("Retry-After");
    if (retry) text += " Retry after " + retry + " s.";
    return text;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString() + " (" + iso + ")";
  }

  // ---- status ----------------------------------------------------------------

  async function refreshStatus() {
    const res = await api("GET", "/docusign/connection");
    if (res.status !== 200) {
      $("status").dataset.state = "error";
      $("status-details").hidden = true;
      $("reauth-note").hidden = true;
      $("disconnect").disabled = false; // the state is unknown: let the admin try
      show($("status-state"), "Status unavailable: " + errorText(res), "state error");
      log("GET /docusign/connection → " + res.status);
      return;
    }
    log("GET /docusign/connection → 200 " + (res.data.connected ? res.data.status : "not connected"));
    renderConnection(res.data);
  }

  // Shows a connection as GET /docusign/connection (and the confirm) answer it.
  function renderConnection(c) {
    const status = $("status");
    const details = $("status-details");
    $("reauth-note").hidden = true;
    $("disconnect").disabled = !c.connected;
    if (!c.connected) {
      status.dataset.state = "disconnected";
      details.hidden = true;
      show($("status-state"), "Not connected", "state");
      return;
    }
    // An error from before the connection (e.g. a send refused as not
    // connected) no longer applies.
    if ($("envelope-result").className === "error") show($("envelope-result"), "");
    status.dataset.state = c.status === "active" ? "connected" : c.status;
    show($("status-state"), c.status === "active" ? "Connected" : "Re-authorization required", "state");
    $("reauth-note").hidden = c.status !== "reauth_required";
    $("status-user").textContent = c.user_name + " <" + c.user_email + ">";
    $("status-account").textContent = c.account_name + " (" + c.account_id + ")";
    $("status-environment").textContent = c.environment + " · " + c.base_uri;
    $("status-connected-at").textContent = when(c.connected_at);
    $("status-last-refreshed").textContent = when(c.last_refreshed_at);
    $("status-access-expires").textContent = when(c.access_token_expires_at);
    $("status-refresh-expires").textContent = when(c.refresh_token_expires_at);
    details.hidden = false;
  }

  // ---- connect ---------------------------------------------------------------

  // How long after the consent's expiry a late answer still counts (clock
  // skew between this browser and the connector).
  const CONSENT_SLACK_MS = 2 * 60 * 1000;

  // The origin the callback page posts from: the redirect URI's, which the
  // authorization URL names. Without one, the API's origin (this page's: the
  // demo calls the API with relative paths).
  function callbackOriginOf(authorizationUrl) {
    try {
      const redirect = new URL(authorizationUrl).searchParams.get("redirect_uri");
      if (redirect) return new URL(redirect).origin;
    } catch (e) {
      // fall through
    }
    return window.location.origin;
  }

  async function connect() {
    const button = $("connect");
    button.disabled = true;
    $("consent-link-box").hidden = true;
    show($("connect-result"), "");
    $("connect-result").dataset.reason = "";
    pending = null; // a new Connect supersedes any consent still outstanding
    try {
      const startedAs = role();
      const res = await api("POST", "/docusign/consent");
      log("POST /docusign/consent → " + res.status);
      if (res.status !== 200) {
        show($("connect-result"), "Could not start the connection: " + errorText(res), "error");
        return;
      }
      const url = res.data.authorization_url;
      const expires = Date.parse(res.data.expires_at);
      pending = {
        window: null,
        url: url,
        callbackOrigin: callbackOriginOf(url),
        role: startedAs,
        deadline: (isNaN(expires) ? Date.now() + 10 * 60 * 1000 : expires) + CONSENT_SLACK_MS,
      };
      const popup = openConsentWindow();
      if (!popup) {
        $("consent-link-box").hidden = false;
        show($("connect-result"), "Waiting for DocuSign…", "muted");
        return;
      }
      show($("connect-result"), "Waiting for DocuSign in the pop-up…", "muted");
    } finally {
      button.disabled = false;
    }
  }

  // Opens the pending consent's URL. Not "noopener": the callback page answers
  // through window.opener. Called from Connect and from the link shown when
  // the pop-up was blocked (a click handler, so the tab keeps its opener; a
  // plain link could also be copied or opened without one).
  function openConsentWindow() {
    if (!pending) return null;
    const popup = window.open(pending.url, "docusign-consent", "popup,width=640,height=760");
    if (popup) {
      pending.window = popup;
      watchPopup(popup);
    }
    return popup;
  }

  function openFromLink(event) {
    event.preventDefault();
    if (!pending || Date.now() > pending.deadline) {
      $("consent-link-box").hidden = true;
      show($("connect-result"), "That consent has expired: click Connect DocuSign again.", "error");
      pending = null;
      return;
    }
    if (openConsentWindow()) {
      $("consent-link-box").hidden = true;
      show($("connect-result"), "Waiting for DocuSign in the new tab…", "muted");
    } else {
      show($("connect-result"), "The browser blocked the tab again: allow pop-ups for this page.", "error");
    }
  }

  // If the pop-up is closed without an answer (closed by hand), the consent is
  // over: forget it and refresh.
  function watchPopup(popup) {
    clearInterval(popupWatch);
    popupWatch = setInterval(function () {
      if (popup.closed) {
        clearInterval(popupWatch);
        if (pending && pending.window === popup) {
          pending = null;
          log("consent pop-up closed without an answer");
          refreshStatus();
        }
      }
    }, 500);
  }

  function onMessage(event) {
    const msg = event.data;
    if (!msg || typeof msg !== "object" || msg.type !== "docusign-consent") return;
    // Only the callback page, in the consent window this page opened, for a
    // consent it is waiting for. Anything else (another origin, another
    // window, no consent outstanding) is ignored: nothing of it is shown or
    // sent.
    if (!pending || pending.window === null || event.source !== pending.window ||
        event.origin !== pending.callbackOrigin) {
      log("ignored a docusign-consent message from " + event.origin + " (not the consent window this page opened)");
      return;
    }
    if (Date.now() > pending.deadline) {
      pending = null;
      log("ignored a docusign-consent message: the consent has expired");
      return;
    }
    const consent = pending;
    pending = null; // one answer per consent
    clearInterval(popupWatch);
    $("consent-link-box").hidden = true;
    const result = $("connect-result");
    if (msg.status === "approved" && typeof msg.confirmation === "string" && msg.confirmation) {
      log("message docusign-consent: approved");
      result.dataset.reason = "";
      const who = [msg.user_name, msg.account_name].filter((x) => typeof x === "string" && x).join(", ");
      show(result, "DocuSign approved" + (who ? " (" + who + ")" : "") + "; confirming the connection…", "muted");
      confirm(msg.confirmation, consent.role);
    } else if (msg.status === "failed") {
      const code = typeof msg.code === "string" ? msg.code : "unknown";
      log("message docusign-consent: failed (" + code + ")");
      result.dataset.reason = code;
      show(result, "DocuSign was not connected: " + (msg.message || "") + " (" + code + ")", "error");
      refreshStatus();
    } else {
      log("message docusign-consent: unusable answer");
      result.dataset.reason = "unusable_answer";
      show(result, "DocuSign was not connected: the callback's answer was unusable.", "error");
    }
  }

  // Redeems the confirmation with the token of the admin who started the
  // consent. The confirmation goes only into this request's body.
  async function confirm(confirmation, asRole) {
    const result = $("connect-result");
    const res = await api("POST", "/docusign/consent/confirm", { confirmation: confirmation }, undefined, asRole);
    log("POST /docusign/consent/confirm → " + res.status);
    if (res.status === 200 && res.data && res.data.connected) {
      const c = res.data;
      result.dataset.reason = "";
      show(result, "Connected to DocuSign as " + c.user_name + " (" + c.user_email + "), account " +
        c.account_name + " (" + c.account_id + "), " + c.environment + ".", "ok");
      renderConnection(c);
    } else {
      const code = (res.data && res.data.error && res.data.error.code) || "http_" + res.status;
      result.dataset.reason = code;
      show(result, "DocuSign was not connected: the confirmation was refused: " + errorText(res), "error");
      await refreshStatus();
    }
  }

  // ---- disconnect ------------------------------------------------------------

  // Asks first (the browser test answers the dialog as a user would).
  function confirmDisconnect() {
    const account = $("status-account").textContent;
    return window.confirm("Disconnect DocuSign" + (account ? " (" + account + ")" : "") +
      "? The CRM stops sending documents until an admin connects again.");
  }

  async function disconnect() {
    if (!confirmDisconnect()) return;
    const res = await api("DELETE", "/docusign/connection");
    log("DELETE /docusign/connection → " + res.status);
    if (res.status === 204) {
      show($("connect-result"), "Disconnected.", "muted");
    } else {
      show($("connect-result"), "Could not disconnect: " + errorText(res), "error");
    }
    await refreshStatus();
  }

  // ---- send ------------------------------------------------------------------

  async function samplePdf() {
    if (samplePdfBase64) return samplePdfBase64;
    const res = await fetch("sample.pdf");
    if (!res.ok) throw new Error("cannot load sample.pdf (HTTP " + res.status + ")");
    const bytes = new Uint8Array(await res.arrayBuffer());
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    samplePdfBase64 = btoa(binary);
    return samplePdfBase64;
  }

  function idempotencyKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  async function send(event) {
    event.preventDefault();
    const button = $("send");
    const result = $("envelope-result");
    button.disabled = true;
    show(result, "Sending…", "muted");
    try {
      const envelope = {
        emailSubject: $("email-subject").value || "Please sign the sample agreement",
        status: "sent",
        documents: [{
          documentBase64: await samplePdf(),
          name: "Sample agreement.pdf",
          fileExtension: "pdf",
          documentId: "1",
        }],
        recipients: {
          signers: [{
            name: $("signer-name").value,
            email: $("signer-email").value,
            recipientId: "1",
            routingOrder: "1",
            tabs: {
              signHereTabs: [{
                anchorString: "/sn1/",
                anchorUnits: "pixels",
                anchorXOffset: "0",
                anchorYOffset: "0",
              }],
            },
          }],
        },
      };
      const res = await api("POST", "/docusign/envelopes", envelope, { "Idempotency-Key": idempotencyKey() });
      log("POST /docusign/envelopes → " + res.status);
      if (res.status === 201) {
        result.textContent = "";
        result.className = "ok";
        result.append("Envelope sent: ");
        const id = document.createElement("code");
        id.id = "envelope-id";
        id.textContent = res.data.envelopeId;
        result.append(id, " (" + res.data.status + ", " + res.data.statusDateTime + ")");
      } else {
        show(result, "Not sent: " + errorText(res), "error");
      }
    } catch (e) {
      show(result, "Not sent: " + e.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  // ---- start -----------------------------------------------------------------

  async function start() {
    window.addEventListener("message", onMessage);
    $("connect").addEventListener("click", connect);
    $("consent-link").addEventListener("click", openFromLink);
    $("disconnect").addEventListener("click", disconnect);
    $("refresh-status").addEventListener("click", refreshStatus);
    $("role").addEventListener("change", refreshStatus);
    $("send-form").addEventListener("submit", send);
    try {
      await loadConfig();
    } catch (e) {
      show($("status-state"), e.message, "state error");
      $("status").dataset.state = "error";
      return;
    }
    await refreshStatus();
  }

  start();
})();
