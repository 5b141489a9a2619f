// The live mesh map: every node this page knows of on a circle (this node at the top), its own
// links drawn in their kind's colour, links its neighbours report dashed. Redrawn on every
// change of this node's links and every few seconds (neighbours report theirs periodically).
const SVG = 'http://www.w3.org/2000/svg';
const COLOURS = { webrtc: '#1d5fa8', tcp: '#276738', quic: '#6a3d9a', relay: '#b35900' };

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text; // names from peers are text, never markup
  return e;
}

/** Draws `map` (from `weft.meshMap()`) into the <svg> `svg`. */
export function drawMap(svg, map) {
  const size = 320;
  const centre = size / 2;
  const radius = map.nodes.length > 1 ? size / 2 - 40 : 0;
  const at = new Map(map.nodes.map((n, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / map.nodes.length;
    return [n.peer_id, { x: centre + radius * Math.cos(angle), y: centre + radius * Math.sin(angle), n, i }];
  }));
  svg.setAttribute('viewBox', `0 0 ${size} ${size}`);
  svg.replaceChildren();
  for (const l of map.links) {
    const a = at.get(l.a);
    const b = at.get(l.b);
    if (!a || !b) continue;
    const line = el('line', {
      x1: a.x, y1: a.y, x2: b.x, y2: b.y,
      stroke: COLOURS[l.link] ?? '#999', 'stroke-width': l.link ? 2.5 : 1.5,
      'stroke-dasharray': l.link ? '' : '4 3', 'data-link': l.link ?? 'reported',
    });
    line.append(el('title', {}, l.link ? `${l.link} link` : 'a link a neighbour reports'));
    svg.append(line);
  }
  for (const { x, y, n, i } of at.values()) {
    const g = el('g', { 'data-peer': n.peer_id });
    g.append(el('circle', { cx: x, cy: y, r: i === 0 ? 9 : 7, fill: i === 0 ? '#24323f' : '#fff', stroke: '#24323f', 'stroke-width': 2 }));
    g.append(el('text', { x, y: y + (y > centre ? 22 : -14), 'text-anchor': 'middle', 'font-size': 11 }, i === 0 ? `${n.name} (you)` : n.name));
    svg.append(g);
  }
}

