// The web console in a real browser: Debian's Chromium driven by
// playwright-core. Run by crates/fulcrum/tests/browser.rs against a running
// director; exits non-zero with a message on the first thing that is wrong.
//
// Environment: CONSOLE_URL, ADMIN_PASSWORD, STATE_DIR (the external check's
// files: writing "1" to STATE_DIR/ADDR makes that real server fail its
// check), SHOTS (optional: a directory for screenshots).
import { chromium } from "playwright-core";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const url = process.env.CONSOLE_URL;
const password = process.env.ADMIN_PASSWORD;
const state = process.env.STATE_DIR;
const shots = process.env.SHOTS;

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}
function check(ok, msg) {
  if (!ok) fail(msg);
  console.log(`ok: ${msg}`);
}
async function shot(page, name) {
  if (shots) await page.screenshot({ path: join(shots, name), fullPage: true });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  // Not logged in: the login page.
  await page.goto(url + "/");
  check(new URL(page.url()).pathname === "/login", "an anonymous visit lands on the login page");
  await shot(page, "console-login.png");

  // A wrong password is refused.
  await page.fill("input[name=user]", "admin");
  await page.fill("input[name=password]", "not-the-password");
  await page.click("button");
  await page.waitForSelector(".flash.bad");
  const refused = await page.textContent(".flash.bad");
  check(refused.includes("Wrong user name or password"),
    `a wrong password is refused and said so (${refused})`);
  check(new URL(page.url()).pathname === "/login", "and stays on the login page");

  // The right one logs in.
  await page.fill("input[name=user]", "admin");
  await page.fill("input[name=password]", password);
  await page.click("button");
  await page.waitForSelector("#live tr[data-server=rs1]");
  check(new URL(page.url()).pathname === "/", "the right password opens the live view");
  check(await page.isVisible("#live tr[data-server=rs2][data-health=alive]"), "rs2 is alive");

  // A real server goes down and comes back: the page follows by itself.
  writeFileSync(join(state, "127.77.0.12"), "1");
  await page.waitForSelector("#live tr[data-server=rs2][data-health=dead]", { timeout: 20000 });
  check(true, "rs2 shown dead without reloading the page");
  await shot(page, "console-live-down.png");
  writeFileSync(join(state, "127.77.0.12"), "0");
  await page.waitForSelector("#live tr[data-server=rs2][data-health=alive]", { timeout: 20000 });
  check(true, "rs2 shown alive again");

  // Drain with one click.
  await page.click("#live tr[data-server=rs2] button.drain");
  await page.waitForSelector(".flash.good");
  check((await page.textContent("#live tr[data-server=rs2] td.state")).includes("drained by the operator"),
    "one click drains rs2");
  await page.click("#live tr[data-server=rs2] button.enable");
  await page.waitForSelector("#live tr[data-server=rs2] button.drain");

  // CSRF: a change without the page's token is refused.
  const status = await page.evaluate(async () => {
    const r = await fetch("/server", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "virtual=web&server=rs1&action=disable",
    });
    return r.status;
  });
  check(status === 403, `a change without the CSRF token is refused (${status})`);
  check(!(await page.textContent("#live tr[data-server=rs1] td.state")).includes("disabled"),
    "and rs1 is not disabled");

  // Edit a weight and see the table change.
  await page.click("nav a[href='/config']");
  await page.waitForSelector("form.editor");
  await page.fill("input[name='f.s0-0.weight.0']", "heavy");
  await page.click("button.primary");
  await page.waitForSelector(".diag.error[data-for='f.s0-0.weight.0']");
  check((await page.textContent(".diag.error[data-for='f.s0-0.weight.0']")).includes("heavy"),
    "an invalid weight is refused next to its field");
  await shot(page, "console-config-error.png");
  await page.fill("input[name='f.s0-0.weight.0']", "4");
  await page.click("button.primary");
  await page.waitForSelector(".flash.good");
  check((await page.textContent(".flash.good")).includes("Saved"), "the corrected file is saved and applied");
  await page.click("nav a[href='/']");
  await page.waitForSelector("#live tr[data-server=rs1]");
  check((await page.textContent("#live tr[data-server=rs1] td.weight")).trim() === "4",
    "the live table shows rs1 at weight 4");
  if (shots) {
    // Some traffic through the director, so the pictures' charts have lines.
    const until = Date.now() + 16000;
    const vip = process.env.VIP_URL;
    while (vip && Date.now() < until) {
      await Promise.all(Array.from({ length: 8 }, () => fetch(vip).then((r) => r.text()).catch(() => "")));
      await new Promise((r) => setTimeout(r, 40 + Math.random() * 120));
    }
  }
  await page.reload();
  await page.waitForSelector("#live tr[data-server=rs1]");
  await shot(page, "console-live.png");
  await page.click("nav a[href='/config']");
  await page.waitForSelector("form.editor");
  await shot(page, "console-config.png");

  // Log out: the session is over.
  await page.click("header form button");
  await page.waitForURL(/\/login$/);
  await page.goto(url + "/");
  check(new URL(page.url()).pathname === "/login", "after logging out the live view needs a login again");
} catch (e) {
  fail(e.stack || String(e));
} finally {
  await browser.close();
}
console.log("all browser checks passed");
