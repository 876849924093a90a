// Loads sluice's admin page in Debian's headless Chromium and checks that it shows every
// streamlet of the running pipeline and that their counters increase.
//   node tests/browser/page.mjs http://127.0.0.1:9900/ name1,name2,... [screenshot.png]
import { chromium } from "playwright-core";

const [url, names, screenshot] = process.argv.slice(2);
const expected = names.split(",").sort();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForFunction(n => document.querySelectorAll("g[data-streamlet]").length === n, expected.length,
    { timeout: 20000 });
  const shown = (await page.$$eval("g[data-streamlet]", gs => gs.map(g => g.dataset.streamlet))).sort();
  if (JSON.stringify(shown) !== JSON.stringify(expected)) {
    throw new Error(`the page shows ${shown}, the pipeline has ${expected}`);
  }
  const counted = async () => {
    const texts = await page.$$eval('text[data-counter="records"]', ts => ts.map(t => t.textContent));
    return texts.map(t => Number(/in (\d+)/.exec(t)[1])).reduce((a, b) => a + b, 0);
  };
  const before = await counted();
  await page.waitForTimeout(2500);
  const after = await counted();
  if (!(after > before)) throw new Error(`counters did not increase: ${before} then ${after}`);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ streamlets: shown, before, after }));
} finally {
  await browser.close();
}
