// The CRM demo page in a real browser (Debian's Chromium, headless) against
// the local stack of scripts/run-local.sh with the DocuSign simulator in
// interactive mode. Run it with scripts/browser-test.sh, which starts and
// stops the stack and sets:
//   DEMO_URL       the demo page, e.g. http://127.0.0.1:8080/demo/
//   SIM_URL        the simulator, e.g. http://127.0.0.1:9100 (its /_sim/ API)
//   ARTIFACTS_DIR  where the screenshots go (default target/browser-artifacts)
//   CHROMIUM       the browser (default /usr/bin/chromium)
//
// Connecting (issue 12): the callback page only posts the consent's result to
// the window that opened it, at CRM_ORIGIN; the demo page then redeems the
// confirmation with POST /docusign/consent/confirm. Besides the whole flow,
// these tests complete a consent in a browser that has no opener and send
// forged results from another origin (a small server of this file on its own
// loopback port): neither connects the tenant.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const DEMO_URL = process.env.DEMO_URL;
const SIM_URL = process.env.SIM_URL;
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.resolve(here, "../../target/browser-artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP = 30_000;
const CONFIRM_PATH = "/docusign/consent/confirm";
// Long enough for a message posted by another window to have arrived.
const SETTLE_MS = 1_500;

let browser;
let context;
let page;
let otherSite; // {server, origin}: a site on another origin
const problems = [];
const consoleTexts = []; // every console message of every page, to look for secrets
const requestUrls = []; // every URL any page asked for
const confirmRequests = []; // every POST /docusign/consent/confirm, from any page

const FORGED_APPROVED = {
  type: "docusign-consent",
  status: "approved",
  confirmation: "x",
  user_name: "Mallory",
  account_name: "Mallory Holdings",
};
const FORGED_FAILED = { type: "docusign-consent", status: "failed", code: "declined", message: "forged" };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function watchForProblems(p, name) {
  p.on("pageerror", (e) => problems.push(`${name}: uncaught ${e.message}`));
  p.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) {
      problems.push(`${name}: ${m.text()}`);
    }
  });
}

function watchContext(ctx) {
  ctx.on("console", (m) => consoleTexts.push(m.text()));
  ctx.on("request", (r) => {
    requestUrls.push(r.url());
    if (r.method() === "POST" && new URL(r.url()).pathname === CONFIRM_PATH) confirmRequests.push(r);
  });
}

// Disconnect asks first: every page of every context answers as the admin
// would, and the question is recorded.
const dialogs = [];

async function newContext() {
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  ctx.setDefaultTimeout(STEP);
  watchContext(ctx);
  ctx.on("page", (p) =>
    p.on("dialog", (dialog) => {
      dialogs.push(dialog.message());
      dialog.accept();
    }),
  );
  return ctx;
}

async function shot(p, name) {
  const file = path.join(ARTIFACTS, name);
  await p.screenshot({ path: file, fullPage: true });
  console.log(`screenshot ${file}`);
}

// Clicks Connect on a demo page and returns the consent pop-up, loaded.
async function openConsent(demo = page) {
  const [popup] = await Promise.all([demo.waitForEvent("popup", { timeout: STEP }), demo.click("#connect")]);
  watchForProblems(popup, "pop-up");
  await popup.waitForLoadState("domcontentloaded");
  return popup;
}

// The result message the callback page embeds (the contract's
// `<script type="application/json" id="docusign-consent-result">`). Holds the
// confirmation: never print it.
async function consentResult(p) {
  const element = p.locator("#docusign-consent-result");
  await element.waitFor({ state: "attached" });
  return JSON.parse(await element.textContent());
}

async function waitClosed(popup) {
  if (!popup.isClosed()) await popup.waitForEvent("close", { timeout: 15_000 });
}

async function status(p = page) {
  return p.locator("#status").getAttribute("data-state");
}

// The connector's API from here, as the demo tenant's admin (the JWTs the
// local gateway serves to the demo page).
async function api(method, apiPath, body) {
  const config = await (await fetch(new URL("/demo/config.json", DEMO_URL))).json();
  const headers = { Authorization: `Bearer ${config.tokens.admin}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(new URL(apiPath, DEMO_URL), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, data: text ? JSON.parse(text) : null };
}

// The claims of "Bearer <JWT>" (not verified: only to see whose token it is).
function jwtClaims(authorization) {
  const match = /^Bearer [^.]+\.([^.]+)\./.exec(authorization || "");
  assert.ok(match, "a bearer JWT");
  return JSON.parse(Buffer.from(match[1], "base64url").toString("utf8"));
}

async function connection() {
  const res = await api("GET", "/docusign/connection");
  assert.equal(res.status, 200);
  return res.data;
}

// A site on another origin (another loopback port): a page that records the
// messages it receives, and one that posts forged consent results to its
// opener.
function startOtherSite() {
  const pages = {
    "/": `<!doctype html><title>Another site</title><h1>Another site</h1>
<script>
  window.received = [];
  window.addEventListener("message", (e) => {
    window.received.push({ origin: e.origin, type: e.data && e.data.type, status: e.data && e.data.status });
  });
</script>`,
    "/post-to-opener": `<!doctype html><title>posting</title><h1>Another site, in the consent window</h1>
<script>
  const messages = ${JSON.stringify([FORGED_APPROVED, FORGED_FAILED])};
  if (window.opener) {
    for (const m of messages) window.opener.postMessage(m, "*");
    document.title = "posted";
  } else {
    document.title = "no opener";
  }
</script>`,
  };
  const server = http.createServer((req, res) => {
    const body = pages[new URL(req.url, "http://x").pathname];
    res.writeHead(body ? 200 : 404, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
    res.end(body || "not found");
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      resolve({ server, origin: `http://127.0.0.1:${server.address().port}` });
    });
  });
}

before(async () => {
  assert.ok(DEMO_URL, "DEMO_URL is not set: run scripts/browser-test.sh");
  mkdirSync(ARTIFACTS, { recursive: true });
  otherSite = await startOtherSite();
  assert.notEqual(otherSite.origin, new URL(DEMO_URL).origin);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
    ],
  });
  context = await newContext();
  page = await context.newPage();
  watchForProblems(page, "demo page");
});

after(async () => {
  await browser?.close();
  otherSite?.server.close();
});

test("the demo page loads and shows the connection status", async () => {
  await page.goto(DEMO_URL);
  await page.locator('#status:not([data-state="loading"])').waitFor();
  if ((await status()) === "connected") {
    await page.click("#disconnect");
    await page.locator('#status[data-state="disconnected"]').waitFor();
  }
  assert.equal(await status(), "disconnected");
  assert.match(await page.textContent("#dev-banner"), /DEVELOPMENT ONLY/);
});

test("Connect: consent page, Accept, the callback tab posts, the demo confirms, the status names the DocuSign user", async () => {
  const confirmsBefore = confirmRequests.length;
  const popup = await openConsent();
  assert.ok(popup.url().startsWith(`${SIM_URL}/oauth/auth?`), "the pop-up shows the simulator's consent page");
  await popup.locator("#accept").waitFor();
  assert.match(await popup.textContent("#app-name"), /DocuSign Connector/);
  await shot(popup, "consent-page.png");

  await popup.click("#accept");
  const result = await consentResult(popup);
  assert.equal(result.type, "docusign-consent");
  assert.equal(result.status, "approved", `callback: ${result.code} ${result.message}`);
  assert.equal(result.user_name, "Sim Signer");
  assert.equal(typeof result.confirmation, "string");
  assert.ok(result.confirmation.length >= 22, "the confirmation carries at least 128 bits");
  assert.match(await popup.textContent("body"), /Sim Signer/);
  await shot(popup, "callback-page.png");
  await waitClosed(popup); // the callback page closes itself

  await page.locator('#status[data-state="connected"]').waitFor();
  assert.match(await page.textContent("#connect-result"), /Connected to DocuSign as Sim Signer/);
  assert.match(await page.textContent("#status-user"), /Sim Signer <signer@example\.com>/);
  assert.match(await page.textContent("#status-account"), /Sim Default Account \(acc-default-1\)/);
  assert.match(await page.textContent("#status-environment"), /^sandbox/);
  assert.notEqual(await page.textContent("#status-access-expires"), "");
  assert.notEqual(await page.textContent("#status-refresh-expires"), "");
  await shot(page, "demo-connected.png");

  // One confirm, with the admin's token and the callback's confirmation in
  // its body; the confirmation nowhere else.
  assert.equal(confirmRequests.length, confirmsBefore + 1);
  const confirm = confirmRequests.at(-1);
  assert.deepEqual(confirm.postDataJSON(), { confirmation: result.confirmation });
  const claims = jwtClaims(confirm.headers().authorization);
  assert.deepEqual([claims.tenant, claims.sub, claims.role], ["demo-tenant", "demo-admin", "admin"]);
  assert.equal((await confirm.response()).status(), 200);
  const secret = result.confirmation;
  assert.ok(!(await page.textContent("body")).includes(secret), "the confirmation is not on the demo page");
  assert.ok(!consoleTexts.some((t) => t.includes(secret)), "the confirmation is not in the console");
  assert.ok(!requestUrls.some((u) => u.includes(secret)), "the confirmation is in no URL");
  assert.equal((await connection()).connected, true);
});

test("Send a sample envelope: the envelope id appears and DocuSign got the PDF and the signer", async () => {
  await page.fill("#signer-name", "Browser Test Signer");
  await page.fill("#signer-email", "browser.test@example.com");
  await page.click("#send");
  // The answer, an envelope id or an error, then the screenshot either way.
  await page.waitForFunction(() => {
    const text = document.getElementById("envelope-result").textContent;
    return text && text !== "Sending…";
  });
  await shot(page, "after-send.png");
  const idLocator = page.locator("#envelope-id");
  assert.equal(await idLocator.count(), 1, `no envelope id: ${await page.textContent("#envelope-result")}`);
  const envelopeId = (await idLocator.textContent()).trim();
  assert.match(envelopeId, /^[0-9a-f-]{16,}$/i);

  if (SIM_URL) {
    const envelopes = await (await fetch(`${SIM_URL}/_sim/envelopes`)).json();
    const sent = envelopes.find((e) => e.envelope_id === envelopeId);
    assert.ok(sent, "the simulator received the envelope");
    assert.equal(sent.account_id, "acc-default-1");
    const signer = sent.body.recipients.signers[0];
    assert.equal(signer.name, "Browser Test Signer");
    assert.equal(signer.email, "browser.test@example.com");
    assert.equal(signer.tabs.signHereTabs[0].anchorString, "/sn1/");
    const pdf = Buffer.from(sent.body.documents[0].documentBase64, "base64");
    assert.equal(pdf.subarray(0, 5).toString(), "%PDF-");
    assert.ok(pdf.includes("/sn1/"), "the PDF carries the anchor text");
  }
});

test("Disconnect: the status shows not connected", async () => {
  const asked = dialogs.length;
  await page.click("#disconnect");
  await page.locator('#status[data-state="disconnected"]').waitFor();
  assert.ok(dialogs.slice(asked).some((m) => m.startsWith("Disconnect DocuSign")), "Disconnect asks first");
  assert.equal(await page.textContent("#status-state"), "Not connected");
});

test("Connect and Cancel: the demo page shows that the consent was declined", async () => {
  const confirmsBefore = confirmRequests.length;
  const popup = await openConsent();
  await popup.locator("#cancel").waitFor();
  await popup.click("#cancel");
  const result = await consentResult(popup);
  assert.equal(result.status, "failed");
  assert.equal(result.code, "declined");
  assert.equal(result.confirmation, undefined);
  await shot(popup, "declined-callback-page.png");

  await page.locator('#connect-result[data-reason="declined"]').waitFor();
  const text = await page.textContent("#connect-result");
  assert.match(text, /DocuSign was not connected: .*\(declined\)/);
  assert.ok(text.includes(result.message), "the demo shows the callback's words");
  assert.equal(await status(), "disconnected");
  assert.equal(confirmRequests.length, confirmsBefore, "nothing to confirm");
  await shot(page, "declined.png");
  await popup.close();
});

test("a consent completed in another browser, with no opener, leaves the tenant unconnected", async () => {
  const confirmsBefore = confirmRequests.length;
  // The demo starts a consent; its URL is forwarded and the pop-up closed.
  const closedNotes = () => page.locator("#log li", { hasText: "consent pop-up closed" }).count();
  const closedBefore = await closedNotes();
  const popup = await openConsent();
  const authorizationUrl = popup.url();
  assert.ok(authorizationUrl.startsWith(`${SIM_URL}/oauth/auth?`));
  await popup.close();
  await page.waitForFunction(
    (n) => [...document.querySelectorAll("#log li")].filter((li) => li.textContent.includes("consent pop-up closed")).length > n,
    closedBefore,
  );

  // Someone else's browser: a fresh context, no opener, no CRM session.
  const elsewhere = await newContext();
  try {
    const stranger = await elsewhere.newPage();
    watchForProblems(stranger, "other browser");
    await stranger.goto(authorizationUrl);
    await stranger.locator("#accept").click();
    const result = await consentResult(stranger);
    assert.equal(result.status, "approved", "DocuSign's part of the consent succeeded");
    assert.equal(await stranger.evaluate(() => window.opener), null);
    await shot(stranger, "callback-no-opener.png");
    await sleep(SETTLE_MS);
  } finally {
    await elsewhere.close();
  }

  assert.deepEqual(await connection(), { connected: false });
  await page.click("#refresh-status");
  await page.locator('#status[data-state="disconnected"]').waitFor();
  assert.equal(confirmRequests.length, confirmsBefore, "the demo confirmed nothing");
});

test("consent results from another origin are never accepted", async () => {
  const confirmsBefore = confirmRequests.length;
  const crmOrigin = new URL(DEMO_URL).origin;

  // A page of another site opens the CRM (so it holds a reference to the
  // CRM's window) while the admin connects.
  const other = await context.newPage();
  watchForProblems(other, "other site");
  await other.goto(`${otherSite.origin}/`);
  const [crm] = await Promise.all([
    other.waitForEvent("popup"),
    other.evaluate((url) => {
      window.crm = window.open(url, "crm");
    }, DEMO_URL),
  ]);
  watchForProblems(crm, "demo page opened by another site");
  await crm.locator('#status[data-state="disconnected"]').waitFor();
  const consent = await openConsent(crm);
  const authorizationUrl = consent.url();
  await crm.locator("#connect-result", { hasText: "Waiting for DocuSign" }).waitFor();

  // 1. The other site posts forged results straight to the CRM window, to
  //    any origin and to the CRM's own.
  await other.evaluate(
    ([messages, origin]) => {
      for (const m of messages) {
        window.crm.postMessage(m, "*");
        window.crm.postMessage(m, origin);
      }
    },
    [[FORGED_APPROVED, FORGED_FAILED], crmOrigin],
  );
  // 2. The consent window itself ends up on the other site (a redirect gone
  //    wrong), which posts to its opener: the right window, the wrong origin.
  await consent.goto(`${otherSite.origin}/post-to-opener`);
  assert.equal(await consent.title(), "posted");
  // 3. A window of the CRM's origin that is not the consent window.
  await crm.evaluate((m) => window.postMessage(m, window.location.origin), FORGED_APPROVED);
  await sleep(SETTLE_MS);

  assert.equal(confirmRequests.length, confirmsBefore, "no forged confirmation was sent");
  assert.match(await crm.textContent("#connect-result"), /Waiting for DocuSign/);
  assert.ok(!(await crm.textContent("body")).includes("Mallory"), "nothing forged is shown");
  assert.ok((await crm.locator("#log li", { hasText: "ignored a docusign-consent message" }).count()) >= 7);
  assert.deepEqual(await connection(), { connected: false });
  await shot(crm, "forged-messages-ignored.png");

  // The genuine answer still counts: back to DocuSign in the same window.
  await consent.goto(authorizationUrl);
  await consent.locator("#accept").click();
  const result = await consentResult(consent);
  assert.equal(result.status, "approved");
  await crm.locator('#status[data-state="connected"]').waitFor();
  assert.equal(confirmRequests.length, confirmsBefore + 1);
  assert.deepEqual(confirmRequests.at(-1).postDataJSON(), { confirmation: result.confirmation });
  await waitClosed(consent);
  await crm.click("#disconnect");
  await crm.locator('#status[data-state="disconnected"]').waitFor();
  await crm.close();
  await other.close();
});

test("the callback page posts its result only to the CRM's origin, not to another site that opened it", async () => {
  const confirmsBefore = confirmRequests.length;
  const started = await api("POST", "/docusign/consent");
  assert.equal(started.status, 200);

  const other = await context.newPage();
  watchForProblems(other, "other site");
  await other.goto(`${otherSite.origin}/`);
  const [tab] = await Promise.all([
    other.waitForEvent("popup"),
    other.evaluate((url) => {
      window.open(url, "consent");
    }, started.data.authorization_url),
  ]);
  watchForProblems(tab, "consent opened by another site");
  await tab.locator("#accept").click();
  const result = await consentResult(tab);
  assert.equal(result.status, "approved");
  assert.equal(await tab.evaluate(() => window.opener !== null), true, "the callback page has an opener");
  await sleep(SETTLE_MS);

  assert.deepEqual(await other.evaluate(() => window.received), [], "the other site received nothing");
  assert.deepEqual(await connection(), { connected: false });
  assert.equal(confirmRequests.length, confirmsBefore);
  if (!tab.isClosed()) await tab.close();
  await other.close();
});

test("Pop-up blocked: the page shows a link whose tab keeps its opener and still connects", async () => {
  await page.evaluate(() => {
    // What a pop-up blocker does to the first, automatic window.open.
    const open = window.open.bind(window);
    let blocked = false;
    window.open = (...args) => {
      if (!blocked) {
        blocked = true;
        return null;
      }
      return open(...args);
    };
  });
  await page.click("#connect");
  await page.locator("#consent-link-box").waitFor({ state: "visible" });
  await shot(page, "popup-blocked.png");
  const [popup] = await Promise.all([page.waitForEvent("popup"), page.click("#consent-link")]);
  watchForProblems(popup, "linked pop-up");
  assert.ok(popup.url().startsWith(`${SIM_URL}/oauth/auth?`));
  assert.equal(await popup.evaluate(() => window.opener !== null), true, "the tab keeps its opener");
  await popup.locator("#accept").click();
  assert.equal((await consentResult(popup)).status, "approved");
  await waitClosed(popup);
  await page.locator('#status[data-state="connected"]').waitFor();

  await page.click("#disconnect");
  await page.locator('#status[data-state="disconnected"]').waitFor();
});

test("no script errors or Content-Security-Policy violations on any page", () => {
  assert.deepEqual(problems, []);
});
