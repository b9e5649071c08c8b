// Minimal hand-written SVG line charts (no chart dependency): a few series, linear or log axes.

export interface Series {
  name: string;
  points: [number, number][];
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  logX?: boolean;
  logY?: boolean;
  width?: number;
  height?: number;
  /** Vertical dashed lines at x, labelled at the top (events: "replicas added" …). */
  markers?: Marker[];
}

export interface Marker {
  x: number;
  label: string;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf'];

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(1);
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(a >= 10 ? 1 : 2).replace(/\.?0+$/, '');
  return v.toPrecision(2);
}

function ticks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    const out: number[] = [];
    for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) out.push(e);
    return out;
  }
  const span = hi - lo || 1;
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((x) => span / x <= 6) ?? mag * 10;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(v);
  return out;
}

/** An SVG document for the chart. Non-positive values are dropped on log axes. */
export function lineChart(spec: ChartSpec): string {
  const W = spec.width ?? 720;
  const H = spec.height ?? 420;
  const m = { l: 70, r: 160, t: 40, b: 50 };
  const tx = (v: number) => (spec.logX ? Math.log10(v) : v);
  const ty = (v: number) => (spec.logY ? Math.log10(v) : v);
  const ok = ([x, y]: [number, number]) =>
    Number.isFinite(x) && Number.isFinite(y) && (!spec.logX || x > 0) && (!spec.logY || y > 0);
  const series = spec.series.map((s) => ({ ...s, points: s.points.filter(ok) }));
  const all = series.flatMap((s) => s.points);
  const markers = (spec.markers ?? []).filter(
    (mk) => Number.isFinite(mk.x) && (!spec.logX || mk.x > 0),
  );
  let [x0, x1, y0, y1] = [0, 1, 0, 1];
  if (all.length > 0) {
    const xs = [...all.map((p) => tx(p[0])), ...markers.map((mk) => tx(mk.x))];
    const ys = all.map((p) => ty(p[1]));
    x0 = Math.min(...xs);
    x1 = Math.max(...xs);
    y0 = spec.logY ? Math.min(...ys) : Math.min(0, ...ys);
    y1 = Math.max(...ys);
  }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) y1 = y0 + 1;
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const px = (v: number) => m.l + ((tx(v) - x0) / (x1 - x0)) * pw;
  const py = (v: number) => m.t + ph - ((ty(v) - y0) / (y1 - y0)) * ph;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(spec.title)}</text>`,
  );
  for (const t of ticks(x0, x1, !!spec.logX)) {
    const v = spec.logX ? 10 ** t : t;
    const x = m.l + ((t - x0) / (x1 - x0)) * pw;
    if (x < m.l - 0.5 || x > m.l + pw + 0.5) continue;
    out.push(
      `<line x1="${x.toFixed(1)}" y1="${m.t}" x2="${x.toFixed(1)}" y2="${m.t + ph}" stroke="#eee"/>`,
      `<text x="${x.toFixed(1)}" y="${m.t + ph + 16}" text-anchor="middle">${fmt(v)}</text>`,
    );
  }
  for (const t of ticks(y0, y1, !!spec.logY)) {
    const v = spec.logY ? 10 ** t : t;
    const y = m.t + ph - ((t - y0) / (y1 - y0)) * ph;
    if (y < m.t - 0.5 || y > m.t + ph + 0.5) continue;
    out.push(
      `<line x1="${m.l}" y1="${y.toFixed(1)}" x2="${m.l + pw}" y2="${y.toFixed(1)}" stroke="#eee"/>`,
      `<text x="${m.l - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`,
    );
  }
  out.push(
    `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`,
    `<text x="${m.l + pw / 2}" y="${H - 12}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`,
    `<text x="16" y="${m.t + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${m.t + ph / 2})">${escapeXml(spec.yLabel)}</text>`,
  );
  markers.forEach((mk, i) => {
    const x = px(mk.x).toFixed(1);
    // Labels step down so that markers close together stay readable.
    const ly = m.t + 12 + (i % 4) * 13;
    out.push(
      `<line x1="${x}" y1="${m.t}" x2="${x}" y2="${m.t + ph}" stroke="#555" stroke-dasharray="4 3"/>`,
      `<text x="${(px(mk.x) + 3).toFixed(1)}" y="${ly}" font-size="10" fill="#333">${escapeXml(mk.label)}</text>`,
    );
  });
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    if (s.points.length > 0) {
      const d = s.points.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' ');
      out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.5" points="${d}"/>`);
      if (s.points.length <= 12) {
        for (const p of s.points) {
          out.push(
            `<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="3" fill="${c}"/>`,
          );
        }
      }
    }
    const ly = m.t + 10 + i * 18;
    out.push(
      `<line x1="${m.l + pw + 10}" y1="${ly}" x2="${m.l + pw + 30}" y2="${ly}" stroke="${c}" stroke-width="2"/>`,
      `<text x="${m.l + pw + 34}" y="${ly + 4}">${escapeXml(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
