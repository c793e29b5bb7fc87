/** Semantic-version precedence (semver.org §11) for the `x.y.z[-pre]` versions Cairn uses. */
export function compareSemVer(a: string, b: string): number {
  const [coreA = '', preA] = splitBuild(a);
  const [coreB = '', preB] = splitBuild(b);
  const na = coreA.split('.').map(Number);
  const nb = coreB.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (na[i] ?? 0) - (nb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  if (preA === undefined || preB === undefined) return preA === preB ? 0 : preA === undefined ? 1 : -1;
  const pa = preA.split('.');
  const pb = preB.split('.');
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const xn = /^\d+$/.test(x);
    const yn = /^\d+$/.test(y);
    if (xn && yn && Number(x) !== Number(y)) return Math.sign(Number(x) - Number(y));
    if (xn !== yn) return xn ? -1 : 1;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function splitBuild(version: string): [string, string | undefined] {
  const core = version.split('+')[0] ?? '';
  const dash = core.indexOf('-');
  return dash < 0 ? [core, undefined] : [core.slice(0, dash), core.slice(dash + 1)];
}
