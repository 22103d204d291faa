#include "qkv/inspect/attention_html.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "qkv/inspect/svg_text.h"

namespace qkv::inspect {

namespace {

// Invalid UTF-8 is replaced rather than thrown on: a byte tokenizer's token may be part of a
// character, and the page should still open.
std::string JsonString(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string JsonStrings(const std::vector<std::string>& texts) {
  std::string out = "[";
  for (size_t i = 0; i < texts.size(); ++i) out += (i ? "," : "") + JsonString(texts[i]);
  return out + "]";
}

// The text with invalid UTF-8 replaced by U+FFFD.
std::string ValidUtf8(const std::string& text) {
  return nlohmann::json::parse(JsonString(text)).get<std::string>();
}

// %.4g keeps tiny weights non-zero (1e-30 stays 1e-30), so "exactly 0" still means masked.
std::string JsonWeight(float value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.4g", static_cast<double>(value));
  return buffer;
}

void CheckKind(const AttentionKind& kind) {
  const std::string what = "attention explorer: kind \"" + kind.name + "\": ";
  if (kind.query_tokens.empty() || kind.key_tokens.empty()) {
    throw std::invalid_argument(what + "no query or key tokens");
  }
  if (kind.weights.empty() || kind.weights[0].empty()) {
    throw std::invalid_argument(what + "no layers or heads");
  }
  const size_t heads = kind.weights[0].size();
  for (size_t l = 0; l < kind.weights.size(); ++l) {
    if (kind.weights[l].size() != heads) {
      throw std::invalid_argument(what + "layer " + std::to_string(l) + " has " +
                                  std::to_string(kind.weights[l].size()) + " heads, layer 0 has " +
                                  std::to_string(heads));
    }
    for (size_t h = 0; h < heads; ++h) {
      const auto& matrix = kind.weights[l][h];
      bool shaped = matrix.size() == kind.query_tokens.size();
      for (size_t i = 0; shaped && i < matrix.size(); ++i) {
        shaped = matrix[i].size() == kind.key_tokens.size();
      }
      if (!shaped) {
        throw std::invalid_argument(what + "layer " + std::to_string(l) + " head " +
                                    std::to_string(h) + " is not " +
                                    std::to_string(kind.query_tokens.size()) + " x " +
                                    std::to_string(kind.key_tokens.size()));
      }
      for (const auto& row : matrix) {
        for (float w : row) {
          if (!std::isfinite(w)) throw std::invalid_argument(what + "a weight is not finite");
        }
      }
    }
  }
}

// Only JSON string contents can hold these characters, and an escape there means the same
// text, so the replacement is valid anywhere in the document. "</script" and "<!--" cannot
// appear afterwards; U+2028/2029 are escaped for older JavaScript parsers.
std::string EscapeForScript(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xe2' && i + 2 < json.size() && json[i + 1] == '\x80' &&
               (json[i + 2] == '\xa8' || json[i + 2] == '\xa9')) {
      out += json[i + 2] == '\xa8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

constexpr const char* kStyle = R"css(
:root { font-family: system-ui, sans-serif; color: #222; background: #fafafa; }
body { margin: 16px 20px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 15px; margin: 0 0 8px; }
.meta { margin: 2px 0; font-size: 13px; color: #555; }
.meta .text { white-space: pre-wrap; color: #222; font-family: ui-monospace, monospace; }
#controls { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; margin: 12px 0;
  font-size: 13px; }
#controls select, #controls button { font-size: 13px; }
#legend { display: flex; gap: 14px; align-items: center; font-size: 12px; color: #444; }
#legend canvas { vertical-align: middle; border: 1px solid #999; }
.swatch { display: inline-block; width: 14px; height: 14px; vertical-align: middle;
  border: 1px solid #999; }
.hatched { background: repeating-linear-gradient(135deg, #9a9a9a 0 1.5px, #e4e4e4 1.5px 4.2px); }
main { display: flex; gap: 28px; align-items: flex-start; flex-wrap: wrap; }
section { background: white; border: 1px solid #ddd; border-radius: 6px; padding: 12px; }
.hv { display: flex; align-items: flex-start; }
.col { display: flex; flex-direction: column; font-family: ui-monospace, monospace;
  font-size: 12px; }
.col.q { align-items: flex-end; }
.tok { height: 17px; line-height: 17px; padding: 0 5px; border-radius: 3px; cursor: default;
  white-space: pre; }
.tok.src { outline: 2px solid #e4572e; }
.tok.masked { color: #777;
  background: repeating-linear-gradient(135deg, #c4c4c4 0 1.5px, #eee 1.5px 4.2px); }

#lines.focus line { visibility: hidden; }
#lines.focus line.hl { visibility: visible; }
#readout, #zoom-readout { font-size: 12px; color: #444; min-height: 32px; max-width: 460px;
  margin-top: 6px; }
#grid table { border-collapse: collapse; font-size: 11px; color: #555; }
#grid th { font-weight: normal; padding: 2px 4px; }
#grid td { padding: 3px; }
canvas.thumb { display: block; cursor: zoom-in; image-rendering: pixelated;
  outline: 1px solid #ccc; }
canvas.thumb.selected { outline: 3px solid #e4572e; }
.overlay { position: fixed; inset: 0; background: rgba(0, 0, 0, 0.45); display: flex;
  align-items: center; justify-content: center; }
.overlay[hidden] { display: none; }
.panel { background: white; border-radius: 8px; padding: 14px 16px; max-width: 95vw;
  max-height: 95vh; overflow: auto; box-shadow: 0 8px 30px rgba(0, 0, 0, 0.3); }
.panel header { display: flex; justify-content: space-between; align-items: center; gap: 20px; }
#zoom-canvas { display: block; margin-top: 8px; cursor: crosshair; }
)css";

constexpr const char* kScript = R"js(
(function () {
  'use strict';
  const D = JSON.parse(document.getElementById('qkv-data').textContent);
  const $ = (id) => document.getElementById(id);
  const SVGNS = 'http://www.w3.org/2000/svg';
  const ROW = 17, LINES_WIDTH = 160, THUMB = 96;
  const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
  const S = { kind: 0, layer: 0, head: 0, hover: null, rowScale: false };

  function viridis(v) {
    const p = Math.min(Math.max(v, 0), 1) * 8, lo = Math.min(7, Math.floor(p)), t = p - lo;
    return VIRIDIS[lo].map((c, k) => Math.round(c * (1 - t) + VIRIDIS[lo + 1][k] * t));
  }
  function visible(tok) {
    if (tok === '') return '\u2205';
    // Line and paragraph separators, zero-width and direction marks would move or hide the
    // label: they are shown by code point.
    return tok.replace(/ /g, '\u2423').replace(/\n/g, '\u23ce').replace(/\t/g, '\u21e5')
      .replace(/[\u0000-\u001f\u007f]/g, '?')
      .replace(/[\u0085\u00a0\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g,
        (c) => '\u27e8U+' + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0') + '\u27e9');
  }
  function short(tok) {
    const v = visible(tok);
    return v.length > 12 ? v.slice(0, 11) + '\u2026' : v;
  }
  function headHue(h) { return (210 + 360 * h / kind().heads) % 360; }
  function kind() { return D.kinds[S.kind]; }
  function matrix() { return kind().weights[S.layer][S.head]; }
  function fmt(w) { return w === 0 ? 'masked (exactly 0)' : w.toPrecision(3); }

  // Grey stripes: never a viridis colour, so masked cells read apart from tiny weights.
  function hatch(ctx) {
    const p = document.createElement('canvas');
    p.width = p.height = 6;
    const c = p.getContext('2d');
    c.fillStyle = '#e4e4e4';
    c.fillRect(0, 0, 6, 6);
    c.strokeStyle = '#9a9a9a';
    c.lineWidth = 1.5;
    c.beginPath();
    c.moveTo(0, 6); c.lineTo(6, 0); c.moveTo(-1, 1); c.lineTo(1, -1); c.moveTo(5, 7); c.lineTo(7, 5);
    c.stroke();
    return ctx.createPattern(p, 'repeat');
  }
  // Weights as drawn: a query that spreads its attention over many keys has only small
  // weights, so its pattern is invisible on the 0..1 scale; per-row scaling shows it.
  function shade(row, j) {
    if (!S.rowScale) return row[j];
    return row[j] / Math.max.apply(null, row);
  }
  function drawCells(ctx, m, cell, x0, y0) {
    const masked = [];
    for (let i = 0; i < m.length; ++i) {
      for (let j = 0; j < m[i].length; ++j) {
        if (m[i][j] === 0) { masked.push([i, j]); continue; }
        ctx.fillStyle = 'rgb(' + viridis(shade(m[i], j)).join(',') + ')';
        ctx.fillRect(x0 + j * cell, y0 + i * cell, cell, cell);
      }
    }
    ctx.fillStyle = hatch(ctx);
    for (const [i, j] of masked) ctx.fillRect(x0 + j * cell, y0 + i * cell, cell, cell);
  }

  function fillSelect(select, count, label) {
    select.textContent = '';
    for (let k = 0; k < count; ++k) {
      const o = document.createElement('option');
      o.value = k;
      o.textContent = label(k);
      select.appendChild(o);
    }
  }

  function buildGrid() {
    const K = kind(), grid = $('grid');
    grid.textContent = '';
    const table = document.createElement('table'), head = table.insertRow();
    head.appendChild(document.createElement('th'));
    for (let h = 0; h < K.heads; ++h) {
      const th = document.createElement('th');
      th.textContent = 'head ' + h;
      head.appendChild(th);
    }
    const cell = Math.max(1, Math.floor(THUMB / Math.max(K.queries.length, K.keys.length)));
    for (let l = 0; l < K.layers; ++l) {
      const row = table.insertRow(), th = document.createElement('th');
      th.textContent = 'layer ' + l;
      row.appendChild(th);
      for (let h = 0; h < K.heads; ++h) {
        const c = document.createElement('canvas');
        c.className = 'thumb';
        c.dataset.layer = l;
        c.dataset.head = h;
        c.dataset.cell = cell;
        c.width = K.keys.length * cell;
        c.height = K.queries.length * cell;
        c.title = 'layer ' + l + ', head ' + h + ': click to enlarge';
        drawCells(c.getContext('2d'), K.weights[l][h], cell, 0, 0);
        c.addEventListener('click', () => { select(l, h); openZoom(); });
        row.insertCell().appendChild(c);
      }
    }
    grid.appendChild(table);
  }

  function token(text, side, index) {
    const d = document.createElement('div');
    d.className = 'tok';
    d.dataset.side = side;
    d.dataset.i = index;
    d.tabIndex = 0;
    d.textContent = visible(text);
    const enter = () => { S.hover = { side: side, index: index }; applyHover(); };
    d.addEventListener('mouseenter', enter);
    d.addEventListener('focus', enter);
    return d;
  }

  function buildHeadView() {
    const K = kind(), m = matrix(), q = $('qcol'), k = $('kcol'), svg = $('lines');
    q.textContent = '';
    k.textContent = '';
    svg.textContent = '';
    K.queries.forEach((t, i) => q.appendChild(token(t, 'q', i)));
    K.keys.forEach((t, j) => k.appendChild(token(t, 'k', j)));
    svg.setAttribute('width', LINES_WIDTH);
    svg.setAttribute('height', Math.max(K.queries.length, K.keys.length) * ROW);
    const colour = 'hsl(' + headHue(S.head) + ', 70%, 42%)';
    for (let i = 0; i < m.length; ++i) {
      for (let j = 0; j < m[i].length; ++j) {
        if (m[i][j] === 0) continue;
        const line = document.createElementNS(SVGNS, 'line');
        line.setAttribute('x1', 2);
        line.setAttribute('y1', (i + 0.5) * ROW);
        line.setAttribute('x2', LINES_WIDTH - 2);
        line.setAttribute('y2', (j + 0.5) * ROW);
        line.setAttribute('stroke', colour);
        const v = shade(m[i], j);
        line.setAttribute('stroke-opacity', Math.max(v, 0.02));
        line.setAttribute('stroke-width', 1 + 2.5 * v);
        line.dataset.i = i;
        line.dataset.j = j;
        svg.appendChild(line);
      }
    }
    $('hv-title').textContent = 'Head view: ' + K.name + ', layer ' + S.layer + ', head ' + S.head;
    applyHover();
  }

  function top(weights, labels) {
    return weights.map((w, k) => [w, k]).filter((p) => p[0] > 0).sort((a, b) => b[0] - a[0])
      .slice(0, 4)
      .map((p) => '\u201c' + short(labels[p[1]]) + '\u201d (' + p[1] + ') ' + p[0].toFixed(3))
      .join(' \u00b7 ');
  }

  function applyHover() {
    const K = kind(), m = matrix(), svg = $('lines');
    for (const t of document.querySelectorAll('.hv .tok')) {
      t.classList.remove('src', 'masked');
      t.style.background = '';
    }
    for (const l of svg.querySelectorAll('line.hl')) l.classList.remove('hl');
    const h = S.hover;
    if (!h) {
      svg.classList.remove('focus');
      $('readout').textContent = 'Hover a token: on the left to see where it attends, on the ' +
        'right to see which tokens attend to it.';
      return;
    }
    svg.classList.add('focus');
    const here = h.side === 'q' ? 'qcol' : 'kcol', there = h.side === 'q' ? 'kcol' : 'qcol';
    $(here).children[h.index].classList.add('src');
    const weights = h.side === 'q' ? m[h.index] : m.map((row) => row[h.index]);
    const others = $(there).children, hue = headHue(S.head);
    weights.forEach((w, k) => {
      if (w === 0) others[k].classList.add('masked');
      else {
        const v = h.side === 'q' ? shade(m[h.index], k) : shade(m[k], h.index);
        others[k].style.background = 'hsla(' + hue + ', 70%, 50%, ' + (v * 0.9 + 0.05) + ')';
      }
    });
    const attr = h.side === 'q' ? 'data-i' : 'data-j';
    for (const l of svg.querySelectorAll('line[' + attr + '="' + h.index + '"]')) l.classList.add('hl');
    const label = '\u201c' + short(h.side === 'q' ? K.queries[h.index] : K.keys[h.index]) + '\u201d';
    $('readout').textContent = h.side === 'q'
      ? label + ' (query ' + h.index + ') attends most to ' + top(weights, K.keys)
      : label + ' (key ' + h.index + ') is attended most by ' + top(weights, K.queries);
  }

  let zoomGeometry = null;
  function openZoom() {
    const K = kind(), m = matrix(), c = $('zoom-canvas'), ctx = c.getContext('2d');
    const n = Math.max(K.queries.length, K.keys.length);
    const cell = Math.max(4, Math.min(32, Math.floor(560 / n)));
    const font = Math.max(8, Math.min(13, Math.round(cell * 0.8))) + 'px ui-monospace, monospace';
    ctx.font = font;
    let label = 0;
    for (const t of K.queries.concat(K.keys)) label = Math.max(label, ctx.measureText(short(t)).width);
    const x0 = Math.ceil(label) + 8, y0 = x0;
    c.width = x0 + K.keys.length * cell + 4;
    c.height = y0 + K.queries.length * cell + 4;
    ctx.font = font;  // resizing the canvas resets its state
    ctx.fillStyle = '#222';
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    K.queries.forEach((t, i) => ctx.fillText(short(t), x0 - 4, y0 + (i + 0.5) * cell));
    K.keys.forEach((t, j) => {
      ctx.save();
      ctx.translate(x0 + (j + 0.5) * cell, y0 - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = 'left';
      ctx.fillText(short(t), 0, 0);
      ctx.restore();
    });
    drawCells(ctx, m, cell, x0, y0);
    zoomGeometry = { x0: x0, y0: y0, cell: cell };
    c.dataset.x0 = x0;
    c.dataset.y0 = y0;
    c.dataset.cell = cell;
    $('zoom-title').textContent = K.name + ', layer ' + S.layer + ', head ' + S.head +
      ' (rows: queries, columns: keys)';
    $('zoom-readout').textContent = 'Point at a cell to read its weight.';
    $('zoom').hidden = false;
  }
  function closeZoom() { $('zoom').hidden = true; }

  function select(layer, head) {
    S.layer = layer;
    S.head = head;
    $('layer').value = layer;
    $('head').value = head;
    for (const t of document.querySelectorAll('canvas.thumb')) {
      t.classList.toggle('selected', +t.dataset.layer === layer && +t.dataset.head === head);
    }
    buildHeadView();
    if (!$('zoom').hidden) openZoom();
  }
  function step(delta) {
    const K = kind(), count = K.layers * K.heads;
    const k = (S.layer * K.heads + S.head + delta + count) % count;
    select(Math.floor(k / K.heads), k % K.heads);
  }

  function chooseKind(k) {
    S.kind = k;
    S.hover = null;
    const K = kind();
    fillSelect($('layer'), K.layers, (l) => 'layer ' + l);
    fillSelect($('head'), K.heads, (h) => 'head ' + h);
    buildGrid();
    select(Math.min(S.layer, K.layers - 1), Math.min(S.head, K.heads - 1));
  }

  function legend() {
    const bar = $('colourbar'), ctx = bar.getContext('2d');
    for (let x = 0; x < bar.width; ++x) {
      ctx.fillStyle = 'rgb(' + viridis(x / (bar.width - 1)).join(',') + ')';
      ctx.fillRect(x, 0, 1, bar.height);
    }
  }

  fillSelect($('kind'), D.kinds.length, (k) => D.kinds[k].name);
  $('kind').disabled = D.kinds.length < 2;
  $('kind').addEventListener('change', (e) => chooseKind(+e.target.value));
  $('layer').addEventListener('change', (e) => select(+e.target.value, S.head));
  $('head').addEventListener('change', (e) => select(S.layer, +e.target.value));
  $('prev').addEventListener('click', () => step(-1));
  $('next').addEventListener('click', () => step(1));
  $('enlarge').addEventListener('click', openZoom);
  $('scale').addEventListener('change', (e) => {
    S.rowScale = e.target.value === 'row';
    $('scale-top').textContent = S.rowScale ? 'row max' : '1';
    buildGrid();
    select(S.layer, S.head);
  });
  $('zoom-close').addEventListener('click', closeZoom);
  $('zoom').addEventListener('click', (e) => { if (e.target === $('zoom')) closeZoom(); });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeZoom(); });
  $('headview').addEventListener('mouseleave', () => { S.hover = null; applyHover(); });
  $('zoom-canvas').addEventListener('mousemove', (e) => {
    const g = zoomGeometry, K = kind(), r = e.target.getBoundingClientRect();
    const j = Math.floor((e.clientX - r.left - g.x0) / g.cell);
    const i = Math.floor((e.clientY - r.top - g.y0) / g.cell);
    if (i < 0 || j < 0 || i >= K.queries.length || j >= K.keys.length) return;
    $('zoom-readout').textContent = 'query \u201c' + short(K.queries[i]) + '\u201d (' + i +
      ') \u2192 key \u201c' + short(K.keys[j]) + '\u201d (' + j + '): ' + fmt(matrix()[i][j]);
  });
  legend();
  chooseKind(0);
  document.body.dataset.ready = 'true';
})();
)js";

}  // namespace

std::string EscapeHtml(const std::string& text) { return EscapeXml(text); }

std::string AttentionExplorerJson(const AttentionExplorer& explorer) {
  if (explorer.kinds.empty()) throw std::invalid_argument("attention explorer: no attention kinds");
  std::string json = "{\"format\":\"qkv-attention-explorer\",\"version\":1,\"title\":" +
                     JsonString(explorer.title) + ",\"text\":" + JsonString(explorer.text) +
                     ",\"kinds\":[";
  for (size_t k = 0; k < explorer.kinds.size(); ++k) {
    const AttentionKind& kind = explorer.kinds[k];
    CheckKind(kind);
    json += (k ? ",{\"name\":" : "{\"name\":") + JsonString(kind.name) +
            ",\"queries\":" + JsonStrings(kind.query_tokens) +
            ",\"keys\":" + JsonStrings(kind.key_tokens) +
            ",\"layers\":" + std::to_string(kind.weights.size()) +
            ",\"heads\":" + std::to_string(kind.weights[0].size()) + ",\"weights\":[";
    for (size_t l = 0; l < kind.weights.size(); ++l) {
      json += l ? ",[" : "[";
      for (size_t h = 0; h < kind.weights[l].size(); ++h) {
        json += h ? ",[" : "[";
        for (size_t i = 0; i < kind.weights[l][h].size(); ++i) {
          json += i ? ",[" : "[";
          const auto& row = kind.weights[l][h][i];
          for (size_t j = 0; j < row.size(); ++j) json += (j ? "," : "") + JsonWeight(row[j]);
          json += "]";
        }
        json += "]";
      }
      json += "]";
    }
    json += "]}";
  }
  return EscapeForScript(json + "]}");
}

std::string RenderAttentionHtml(const AttentionExplorer& explorer) {
  const std::string data = AttentionExplorerJson(explorer);
  const std::string title = EscapeHtml(ValidUtf8(explorer.title));
  const std::string text = EscapeHtml(ValidUtf8(explorer.text));
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  // Nothing may be fetched: the page must work from a file, offline.
  html +=
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n";
  html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  html += "<title>qkv attention explorer: " + title + "</title>\n<style>" + kStyle +
          "</style>\n</head>\n<body>\n";
  html += "<h1>qkv attention explorer</h1>\n<p class=\"meta\">model: <code id=\"title\">" + title +
          "</code></p>\n<p class=\"meta\">text: <span class=\"text\" id=\"text\">" + text +
          "</span></p>\n";
  html +=
      R"html(<noscript><p>The explorer needs JavaScript; the data is in the page as JSON.</p></noscript>
<div id="controls">
  <label>attention <select id="kind"></select></label>
  <label><select id="layer"></select></label>
  <label><select id="head"></select></label>
  <button id="prev" title="previous head">&#9664;</button>
  <button id="next" title="next head">&#9654;</button>
  <button id="enlarge">enlarge</button>
  <div id="legend">
    <label>colours <select id="scale">
      <option value="absolute">0 to 1</option>
      <option value="row">0 to each query's largest weight</option>
    </select></label>
    <span>0 <canvas id="colourbar" width="120" height="12"></canvas> <span id="scale-top">1</span></span>
    <span><span class="swatch" style="background: rgb(68,1,84)"></span> small, non-zero</span>
    <span><span class="swatch hatched"></span> masked (exactly 0)</span>
  </div>
</div>
<main>
  <section id="headview">
    <h2 id="hv-title">Head view</h2>
    <div class="hv">
      <div class="col q" id="qcol"></div>
      <svg id="lines" xmlns="http://www.w3.org/2000/svg"></svg>
      <div class="col k" id="kcol"></div>
    </div>
    <div id="readout"></div>
  </section>
  <section>
    <h2>Every layer and head (rows: queries, columns: keys; click to enlarge)</h2>
    <div id="grid"></div>
  </section>
</main>
<div id="zoom" class="overlay" hidden>
  <div class="panel" role="dialog" aria-labelledby="zoom-title">
    <header><strong id="zoom-title"></strong><button id="zoom-close">close</button></header>
    <canvas id="zoom-canvas"></canvas>
    <div id="zoom-readout"></div>
  </div>
</div>
)html";
  html += "<script type=\"application/json\" id=\"qkv-data\">" + data + "</script>\n";
  html += std::string("<script>") + kScript + "</script>\n</body>\n</html>\n";
  return html;
}

}  // namespace qkv::inspect
