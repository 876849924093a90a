// Loads sluice's admin page in Debian's headless Chromium and checks its charts as a person
// watching would: a chart gets new points while records flow, a drifting field's PSI line
// crosses its threshold, a model version swapped in while the page is open appears on the
// scorer's timeline, a streamlet turning warning is listed with its time, and the scorer's
// strategy shows what each model answered and how its shadow compares.
//   node tests/browser/cockpit.mjs http://127.0.0.1:9900/ screenshot.png
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(url);
  const line = 'svg[data-chart="records-in"] path[data-series="check"]';
  const points = () => page.$eval(line, p => Number(p.dataset.points)).catch(() => 0);
  await page.waitForFunction(l => Number(document.querySelector(l)?.dataset.points || 0) >= 2, line, { timeout: 20000 });
  const before = await points();
  await page.waitForTimeout(2500);
  const after = await points();
  if (!(after > before)) throw new Error(`the records/s chart did not grow: ${before} then ${after} points`);
  // v1 serves when the page opens; v2 arrives while it is open and appears on the timeline.
  const v1 = await page.$$eval('svg[data-timeline="price"] circle[data-event="serving"]', cs => cs.map(c => c.dataset.version));
  if (!v1.includes("1")) throw new Error(`the scorer's timeline shows no v1 serving: ${v1}`);
  await page.waitForSelector('svg[data-timeline="price"] circle[data-event="serving"][data-version="2"][data-arm="newest"]',
    { timeout: 30000 });
  // The shadow pinned to v1 serves on: its band is still open; the primary's v1 band closed.
  const bands = await page.$$eval('svg[data-timeline="price"] rect.span',
    rs => rs.map(r => [r.dataset.arm, r.dataset.version, r.dataset.open]));
  const open = b => bands.some(([a, v, o]) => a === b[0] && v === b[1] && o === String(b[2]));
  if (!(open(["first", "1", true]) && open(["newest", "1", false]) && open(["newest", "2", true])))
    throw new Error(`the timeline's bands: ${JSON.stringify(bands)}`);
  // The market shifts: the living area's PSI crosses the line drawn at its threshold.
  await page.waitForSelector('svg[data-chart="drift check sqft_living"] path[data-crossed="true"]', { timeout: 40000 });
  const threshold = await page.$eval('svg[data-chart="drift check sqft_living"] line.threshold', l => Number(l.dataset.threshold));
  // Its out-of-range share has a chart of its own, with its own threshold.
  const outside = await page.$eval('svg[data-chart="out-of-range check sqft_living"] line.threshold',
    l => Number(l.dataset.threshold));
  if (!(outside > 0 && outside !== threshold)) throw new Error(`the out-of-range threshold drawn is ${outside}`);
  if (!(threshold > 0)) throw new Error(`no threshold drawn: ${threshold}`);
  // The validator's rejects turned it to warning, listed with when.
  const event = await page.waitForSelector('#health-events tr[data-streamlet="check"][data-to="warning"]', { timeout: 20000 });
  const at = await event.$eval("td", td => td.textContent);
  if (!/^\d{4}-\d\d-\d\dT/.test(at)) throw new Error(`the health event has no time: ${at}`);
  // The strategy's live figures: the primary answers every record, the shadow is compared.
  const answered = await page.$$eval('table[data-strategy="price"] tr[data-model]',
    rs => rs.map(r => [r.dataset.model, Number(r.children[1].textContent)]));
  const newest = answered.find(([m]) => m === "newest");
  if (!newest || !(newest[1] > 0)) throw new Error(`the strategy table shows ${JSON.stringify(answered)}`);
  await page.waitForFunction(() => Number(document.querySelector('tr[data-shadow="first"]')?.dataset.compared || 0) > 0,
    null, { timeout: 20000 });
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ before, after, threshold, at }));
} finally {
  await browser.close();
}
