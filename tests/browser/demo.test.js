// The CRM demo page in a real browser (Debian's Chromium, headless) against
// the local stack of scripts/run-local.sh with the DocuSign simulator in
// interactive mode. Run it with scripts/browser-test.sh, which starts and
// stops the stack and sets:
//   DEMO_URL       the demo page, e.g. http://127.0.0.1:8080/demo/
//   SIM_URL        the simulator, e.g. http://127.0.0.1:9100 (its /_sim/ API)
//   ARTIFACTS_DIR  where the screenshots go (default target/browser-artifacts)
//   CHROMIUM       the browser (default /usr/bin/chromium)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const DEMO_URL = process.env.DEMO_URL;
const SIM_URL = process.env.SIM_URL;
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.resolve(here, "../../target/browser-artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP = 30_000;

let browser;
let page;
const problems = [];

function watchForProblems(p, name) {
  p.on("pageerror", (e) => problems.push(`${name}: uncaught ${e.message}`));
  p.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) {
      problems.push(`${name}: ${m.text()}`);
    }
  });
}

async function shot(p, name) {
  const file = path.join(ARTIFACTS, name);
  await p.screenshot({ path: file, fullPage: true });
  console.log(`screenshot ${file}`);
}

// Clicks Connect and returns the consent pop-up, loaded.
async function openConsent() {
  const [popup] = await Promise.all([page.waitForEvent("popup", { timeout: STEP }), page.click("#connect")]);
  watchForProblems(popup, "pop-up");
  await popup.waitForLoadState("domcontentloaded");
  return popup;
}

async function waitClosed(popup) {
  if (!popup.isClosed()) await popup.waitForEvent("close", { timeout: 15_000 });
}

async function status() {
  return page.locator("#status").getAttribute("data-state");
}

before(async () => {
  assert.ok(DEMO_URL, "DEMO_URL is not set: run scripts/browser-test.sh");
  mkdirSync(ARTIFACTS, { recursive: true });
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
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  context.setDefaultTimeout(STEP);
  page = await context.newPage();
  watchForProblems(page, "demo page");
});

after(async () => {
  await browser?.close();
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

test("Connect: the consent pop-up, Accept, the pop-up closes, the status names the DocuSign user", async () => {
  const popup = await openConsent();
  assert.ok(popup.url().startsWith(`${SIM_URL}/oauth/auth?`), `pop-up at ${popup.url()}`);
  await popup.locator("#accept").waitFor();
  assert.match(await popup.textContent("#app-name"), /DocuSign Connector/);
  await shot(popup, "consent-page.png");

  await popup.click("#accept");
  await popup.locator('#result[data-result="connected"]').waitFor();
  assert.equal(await popup.textContent("#user-name"), "Sim Signer");
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
  await page.click("#disconnect");
  await page.locator('#status[data-state="disconnected"]').waitFor();
  assert.equal(await page.textContent("#status-state"), "Not connected");
});

test("Connect and Cancel: the demo page shows that the consent was declined", async () => {
  const popup = await openConsent();
  await popup.locator("#cancel").waitFor();
  await popup.click("#cancel");
  await popup.locator('#result[data-result="failed"]').waitFor();
  assert.match(await popup.textContent("#reason"), /declined/);
  await shot(popup, "declined-callback-page.png");

  await page.locator('#connect-result[data-reason="declined"]').waitFor();
  assert.match(await page.textContent("#connect-result"), /not connected: The DocuSign consent was declined/);
  assert.equal(await status(), "disconnected");
  await shot(page, "declined.png");
  await popup.close();
});

test("Pop-up blocked: the page shows the link, which still reports back", async () => {
  await page.evaluate(() => {
    window.open = () => null; // what a pop-up blocker does
  });
  await page.click("#connect");
  await page.locator("#consent-link-box").waitFor({ state: "visible" });
  const [popup] = await Promise.all([page.waitForEvent("popup"), page.click("#consent-link")]);
  watchForProblems(popup, "linked pop-up");
  await popup.locator("#accept").click();
  await popup.locator('#result[data-result="connected"]').waitFor();
  await waitClosed(popup);
  await page.locator('#status[data-state="connected"]').waitFor();

  await page.click("#disconnect");
  await page.locator('#status[data-state="disconnected"]').waitFor();
});

test("no script errors or Content-Security-Policy violations on any page", () => {
  assert.deepEqual(problems, []);
});
