import { readFileSync } from 'node:fs';
const anon = () => { const s = readFileSync('/proc/self/status', 'utf8'); const g = (k) => Number(s.match(new RegExp(k + ':\\s+(\\d+)'))[1]) / 1000; return { anon: g('RssAnon'), rss: g('VmRSS') }; };
const mods = process.argv.slice(2);
for (const m of mods) await import(m);
globalThis.gc(); await new Promise(r => setTimeout(r, 200)); globalThis.gc();
const h = process.memoryUsage();
console.log(mods.join('+') || 'bare', JSON.stringify(anon()), 'heapUsed', (h.heapUsed/1e6).toFixed(1), 'heapTotal', (h.heapTotal/1e6).toFixed(1));
