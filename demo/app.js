// The CRM demo page: what a CRM's settings page does with the connector.
// Plain JS, no build step, no outside resources. The API is on this page's
// origin (the local gateway), so no CORS is involved.
//
// DEVELOPMENT ONLY: the CRM JWTs come from /demo/config.json, which only the
// local tooling serves. A real CRM has its own session and signs its own JWTs.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let config = null;
  let samplePdfBase64 = null;
  let popupWatch = null;

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

  // Calls the connector with the selected CRM user's JWT. Returns
  // {status, data, headers}; data is the parsed JSON body or null.
  async function api(method, path, body, headers, retried) {
    const h = Object.assign({ Authorization: "Bearer " + config.tokens[role()] }, headers || {});
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
      return api(method, path, body, headers, true);
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { raw: text }; }
    }
    return { status: res.status, data: data, headers: res.headers };
  }

  function errorText(res) {
    const e = res.data && res.data.error;
    if (!e) return "HTTP " + res.status;
    let text = e.message + " (" + e.code + ", HTTP " + res.status + ")";
    if (e.docusign_error_code) text += " DocuSign: " + e.docusign_error_code + " " + (e.docusign_message || "");
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
    const status = $("status");
    const details = $("status-details");
    $("reauth-note").hidden = true;
    if (res.status !== 200) {
      status.dataset.state = "error";
      details.hidden = true;
      show($("status-state"), "Status unavailable: " + errorText(res), "state error");
      log("GET /docusign/connection → " + res.status);
      return;
    }
    const c = res.data;
    log("GET /docusign/connection → 200 " + (c.connected ? c.status : "not connected"));
    if (!c.connected) {
      status.dataset.state = "disconnected";
      details.hidden = true;
      show($("status-state"), "Not connected", "state");
      return;
    }
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

  async function connect() {
    const button = $("connect");
    button.disabled = true;
    $("consent-link-box").hidden = true;
    show($("connect-result"), "");
    try {
      const res = await api("POST", "/docusign/consent");
      log("POST /docusign/consent → " + res.status);
      if (res.status !== 200) {
        show($("connect-result"), "Could not start the connection: " + errorText(res), "error");
        return;
      }
      const url = res.data.authorization_url;
      $("consent-link").href = url;
      // Not "noopener": the callback page tells this page through window.opener.
      const popup = window.open(url, "docusign-consent", "popup,width=640,height=760");
      if (!popup) {
        $("consent-link-box").hidden = false;
        show($("connect-result"), "Waiting for DocuSign…", "muted");
        return;
      }
      show($("connect-result"), "Waiting for DocuSign in the pop-up…", "muted");
      watchPopup(popup);
    } finally {
      button.disabled = false;
    }
  }

  // If the pop-up is closed without a message (closed by hand), refresh anyway.
  function watchPopup(popup) {
    clearInterval(popupWatch);
    popupWatch = setInterval(function () {
      if (popup.closed) {
        clearInterval(popupWatch);
        log("consent pop-up closed");
        refreshStatus();
      }
    }, 500);
  }

  function onMessage(event) {
    // Only the callback page, served from the connector's origin (this page's
    // origin here; CRM_ORIGIN tells the callback page where to post).
    if (event.origin !== window.location.origin) return;
    const msg = event.data;
    if (!msg || typeof msg !== "object") return;
    const result = $("connect-result");
    if (msg.type === "docusign-connected") {
      log("message docusign-connected");
      $("consent-link-box").hidden = true;
      result.dataset.reason = "";
      show(result, "Connected to DocuSign as " + msg.user_name + " (" + msg.user_email + "), account " +
        msg.account_name + " (" + msg.account_id + "), " + msg.environment + ".", "ok");
      refreshStatus();
    } else if (msg.type === "docusign-connect-failed") {
      log("message docusign-connect-failed: " + msg.reason);
      $("consent-link-box").hidden = true;
      result.dataset.reason = msg.reason || "";
      show(result, "DocuSign was not connected: " + (msg.message || "") + " (" + msg.reason + ")", "error");
      refreshStatus();
    }
  }

  // ---- disconnect ------------------------------------------------------------

  async function disconnect() {
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
