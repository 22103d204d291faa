// The attention explorer in a real browser: trains a tiny model with the qkv binary, writes
// the page with `qkv attention --html`, opens it from file:// in headless Chromium (through
// playwright-core) and checks the grid, hovering, the enlarged view and that the page throws
// nothing and fetches nothing. Writes a screenshot to WORK_DIR/explorer.png (and SCREENSHOT).
// Usage: node explorer_test.js QKV PLAYWRIGHT_CORE_DIR CHROMIUM WORK_DIR [SCREENSHOT]
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { pathToFileURL } = require('url');

const [qkv, playwrightDir, chromiumPath, workDir, screenshotCopy] = process.argv.slice(2);
const { chromium } = require(playwrightDir);

let failures = 0;
function check(condition, what) {
  console.log((condition ? 'ok: ' : 'FAIL: ') + what);
  if (!condition) failures += 1;
}

// Markup and the JavaScript line separator in the text: the page must show them as text.
const text = 'Zuko made tea </script><b>x</b> & \u2028 for Iroh.';
const corpus = ('Zuko made his uncle tea. Iroh drinks tea </script><b>x</b> & \u2028 ' +
  'for Iroh. ').repeat(30);

function train() {
  fs.rmSync(workDir, { recursive: true, force: true });
  fs.mkdirSync(workDir, { recursive: true });
  fs.writeFileSync(path.join(workDir, 'data.txt'), corpus);
  const model = path.join(workDir, 'model');
  execFileSync(qkv, ['train', '--data', path.join(workDir, 'data.txt'), '--out', model,
    '--steps', '150', '--layers', '2', '--heads', '4', '--dim', '32', '--context', '64',
    '--batch', '8', '--lr', '1e-2', '--eval-every', '150', '--eval-batches', '1',
    '--threads', '2', '--quiet'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const page = path.join(workDir, 'explorer.html');
  // --out too: the heatmaps' JSON is a second source of the weights, written apart from the page.
  execFileSync(qkv, ['attention', '--model', model, '--text', text, '--html', page,
    '--out', path.join(workDir, 'maps/'), '--threads', '1'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const config = JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8'));
  const maps = JSON.parse(fs.readFileSync(path.join(workDir, 'maps', 'attention.json'), 'utf8'));
  return { page, model, layers: config.n_layer, heads: config.n_head, weights: maps.weights };
}

async function main() {
  const started = Date.now();
  const { page: pagePath, model, layers, heads, weights } = train();
  const n = [...text].length;  // a char tokenizer: one token per code point
  console.log(`trained and rendered in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'qkv-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1180, height: 700 },
    offline: true,
  });
  const errors = [], requests = [];
  try {
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(15000);
    page.on('pageerror', (e) => errors.push('page error: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text()); });
    page.on('request', (r) => {
      if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) requests.push(r.url());
    });
    await page.goto(pathToFileURL(pagePath).href);
    await page.waitForSelector('body[data-ready="true"]');

    // The grid: one heatmap per layer and head, query 0 fully on key 0 (weight 1, the top
    // of the colour map) and its last key masked (grey stripes: red = green = blue).
    const thumbs = await page.$$eval('canvas.thumb', (canvases) => canvases.map((c) => {
      const cell = +c.dataset.cell, ctx = c.getContext('2d');
      const at = (i, j) => Array.from(ctx.getImageData(
        Math.floor((j + 0.5) * cell), Math.floor((i + 0.5) * cell), 1, 1).data);
      return { layer: +c.dataset.layer, head: +c.dataset.head, width: c.width, cell,
        first: at(0, 0), masked: at(0, c.width / cell - 1) };
    }));
    check(thumbs.length === layers * heads,
      `grid has ${layers} x ${heads} heatmaps (found ${thumbs.length})`);
    const seen = new Set(thumbs.map((t) => t.layer + ',' + t.head));
    check(seen.size === layers * heads, 'every (layer, head) pair appears once');
    check(thumbs.every((t) => t.width === n * t.cell), `each heatmap is ${n} tokens wide`);
    const near = (a, b) => a.every((v, k) => Math.abs(v - b[k]) <= 2);
    check(thumbs.every((t) => near(t.first, [253, 231, 37, 255])),
      'query 0 -> key 0 (weight 1) is drawn at the top of the colour map');
    check(thumbs.every((t) => t.masked[0] === t.masked[1] && t.masked[1] === t.masked[2]),
      'masked cells are drawn grey, apart from the colour map');

    // Scaling each query's row to its largest weight brings that weight to the top colour.
    const lastRow = weights[0][0][n - 1], top = lastRow.indexOf(Math.max(...lastRow));
    const pixel = () => page.$eval('canvas.thumb[data-layer="0"][data-head="0"]', (c, at) => {
      const cell = +c.dataset.cell;
      return Array.from(c.getContext('2d').getImageData(Math.floor((at[1] + 0.5) * cell),
        Math.floor((at[0] + 0.5) * cell), 1, 1).data);
    }, [n - 1, top]);
    const before = await pixel();
    await page.selectOption('#scale', 'row');
    const after = await pixel();
    // (Below 0.9 the absolute scale is visibly short of the top colour.)
    check((lastRow[top] >= 0.9 || !near(before, [253, 231, 37, 255])) &&
      near(after, [253, 231, 37, 255]),
      `per-query colours: the largest weight of the last query (${lastRow[top].toFixed(3)}) ` +
      'turns to the top colour');
    check(await page.textContent('#scale-top') === 'row max', 'and the legend says so');

    // The text is shown as text: no element came out of it.
    check(await page.$$eval('b', (b) => b.length) === 0, 'markup in the text creates no element');
    check(await page.textContent('#text') === text, 'the text is shown verbatim');
    check((await page.title()).includes(model), 'the title names the model');

    // Hovering a query token highlights its lines to the keys it sees (0..i under the causal
    // mask, less any weight that underflowed to 0); masked keys are marked.
    const seen5 = weights[0][0][5].filter((w) => w > 0).length;
    const seen12 = weights[0][0][12].filter((w) => w > 0).length;
    const seenBy3 = weights[0][0].filter((row) => row[3] > 0).length;
    const highlighted = () => page.$$eval('#lines line.hl',
      (ls) => ls.map((l) => l.dataset.i + '-' + l.dataset.j).join(' '));
    check(await page.$$eval('#lines line.hl', (l) => l.length) === 0, 'nothing highlighted at first');
    await page.hover('#qcol .tok[data-i="5"]');
    const first = await highlighted();
    check(first.split(' ').length === seen5 && seen5 <= 6, `query 5 highlights ${seen5} lines (${first})`);
    check(await page.$$eval('#kcol .tok.masked', (t) => t.length) === n - seen5,
      `query 5 marks the ${n - seen5} keys it does not see as masked`);
    await page.hover('#qcol .tok[data-i="12"]');
    const second = await highlighted();
    await page.screenshot({ path: path.join(workDir, 'explorer.png'), fullPage: true });
    check(second.split(' ').length === seen12 && second !== first,
      'hovering another query changes the highlight');
    await page.hover('#kcol .tok[data-i="3"]');
    check(await page.$$eval('#lines line.hl', (l) => l.length) === seenBy3 && seenBy3 <= n - 3,
      `key 3 highlights the ${seenBy3} queries that see it`);
    check(/attended most by/.test(await page.textContent('#readout')), 'the readout follows');

    // Choosing a head with the selects redraws the head view.
    await page.selectOption('#head', String(heads - 1));
    check((await page.textContent('#hv-title')).includes(`head ${heads - 1}`),
      'the head select switches the head view');
    check(await page.$eval('canvas.thumb.selected',
      (c) => c.dataset.layer + ',' + c.dataset.head) === `0,${heads - 1}`,
    'the grid marks the selected head');

    // Clicking a heatmap enlarges it, and selects its layer and head.
    const last = `canvas.thumb[data-layer="${layers - 1}"][data-head="${heads - 1}"]`;
    check(await page.isHidden('#zoom'), 'the enlarged view starts closed');
    await page.click(last);
    check(await page.isVisible('#zoom'), 'clicking a heatmap opens the enlarged view');
    check((await page.textContent('#zoom-title')).includes(`layer ${layers - 1}, head ${heads - 1}`),
      'the enlarged view names its layer and head');
    check(await page.inputValue('#layer') === String(layers - 1), 'and selects its layer');
    const zoom = await page.$eval('#zoom-canvas', (c) => ({ x0: +c.dataset.x0,
      y0: +c.dataset.y0, cell: +c.dataset.cell, width: c.width }));
    check(zoom.width > thumbs[0].width, 'the enlarged heatmap is larger');
    const box = await page.locator('#zoom-canvas').boundingBox();
    const point = async (i, j) => {
      await page.mouse.move(box.x + zoom.x0 + (j + 0.5) * zoom.cell,
        box.y + zoom.y0 + (i + 0.5) * zoom.cell);
      return page.textContent('#zoom-readout');
    };
    check(/masked/.test(await point(1, 4)), 'pointing at a future key reads "masked"');
    check(/\(0\): 1\.00/.test(await point(0, 0)), 'pointing at query 0 -> key 0 reads 1.00');
    await point(20, 7);
    await page.screenshot({ path: path.join(workDir, 'explorer_zoom.png') });
    await page.keyboard.press('Escape');
    check(await page.isHidden('#zoom'), 'Escape closes the enlarged view');

    // A second, rectangular kind (as an encoder-decoder's cross-attention would add): the
    // page's own data plus 3 queries over every key, written back into a copy of the page.
    const html = fs.readFileSync(pagePath, 'utf8');
    const open = '<script type="application/json" id="qkv-data">';
    const begin = html.indexOf(open) + open.length, end = html.indexOf('</script>', begin);
    const data = JSON.parse(html.slice(begin, end));
    const keys = data.kinds[0].keys, queries = ['p', 'q', 'r'];
    data.kinds.push({ name: 'cross-attention', queries, keys, layers, heads,
      weights: Array.from({ length: layers }, () => Array.from({ length: heads },
        () => queries.map(() => keys.map(() => 1 / keys.length)))) });
    const crossPath = path.join(workDir, 'explorer_cross.html');
    fs.writeFileSync(crossPath, html.slice(0, begin) +
      JSON.stringify(data).replace(/</g, '\\u003c') + html.slice(end));
    await page.goto(pathToFileURL(crossPath).href);
    await page.waitForSelector('body[data-ready="true"]');
    await page.selectOption('#kind', '1');
    const cross = await page.$$eval('canvas.thumb', (cs) => cs.map((c) => [c.width, c.height,
      +c.dataset.cell]));
    check(cross.length === layers * heads &&
      cross.every(([w, h, cell]) => w === n * cell && h === 3 * cell),
    'a rectangular kind gets a 3-row heatmap per layer and head');
    await page.hover('#qcol .tok[data-i="1"]');
    check(await page.$$eval('#lines line.hl', (l) => l.length) === n,
      `its query 1 highlights all ${n} keys`);
    await page.click('canvas.thumb[data-layer="0"][data-head="0"]');
    check((await page.textContent('#zoom-title')).startsWith('cross-attention'),
      'and enlarges under its own name');
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  check(errors.length === 0, 'no script errors' + (errors.length ? ': ' + errors.join('; ') : ''));
  check(requests.length === 0, 'no network requests' +
    (requests.length ? ': ' + requests.join(' ') : ''));
  if (screenshotCopy) fs.copyFileSync(path.join(workDir, 'explorer.png'), screenshotCopy);
  console.log(`${failures} failed, ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => { console.log('FAIL: ' + (e.stack || e)); process.exit(1); });
