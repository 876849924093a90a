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
  // Narrower than the graph, so the page scrolls sideways.
  const page = await browser.newPage({ viewport: { width: 640, height: 720 } });
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
  // Each box's rate is records through it per second: the generator sends 300/s, so no box
  // may show much more (in plus out would show about twice that).
  const rates = await page.$$eval('text[data-counter="records"]',
    ts => ts.map(t => [t.closest("g").dataset.streamlet, Number(/ (\d+)\/s$/.exec(t.textContent)[1])]));
  for (const [name, rate] of rates) {
    // The evaluator takes two 300/s streams: the predictions and the sale prices.
    const limit = name === "quality" ? 900 : 450;
    if (rate > limit) throw new Error(`${name} shows ${rate}/s for a 300/s stream`);
  }
  const check = rates.find(([n]) => n === "check")[1];
  if (!(check > 150)) throw new Error(`the validator shows ${check}/s for a 300/s stream`);
  // The scorer's box names the version serving.
  const serving = await page.$eval('g[data-streamlet="price"] text[data-serving]', t => t.dataset.serving);
  if (!/^house-price v\d+$/.test(serving)) throw new Error(`the scorer's box says it serves "${serving}"`);
  // The evaluator's box names the version it judges with its error over the window.
  await page.waitForFunction(() => /^v\d+ mae [\d,]+$/.test(
    document.querySelector('g[data-streamlet="quality"] text[data-quality]')?.dataset.quality || ""), null,
    { timeout: 20000 });
  const quality = await page.$eval('g[data-streamlet="quality"] text[data-quality]', t => t.dataset.quality);
  // The evaluator's table gives each version it judges its figures over the window.
  await page.waitForFunction(() => [...document.querySelectorAll('table[data-quality="quality"] tr[data-version]')]
    .some(r => Number(r.dataset.labelled) > 0 && /^[\d,]+$/.test(r.children[2].textContent)), null, { timeout: 20000 });
  // The header bar spans the page, however wide the graph.
  const widths = await page.evaluate(() => [document.querySelector("header").getBoundingClientRect().width,
    document.documentElement.scrollWidth]);
  if (Math.abs(widths[0] - widths[1]) > 1) throw new Error(`the header is ${widths[0]}px of a ${widths[1]}px page`);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ streamlets: shown, before, after, rates, serving, quality, widths }));
} finally {
  await browser.close();
}
