// The soak's report: one block per target, then a verdict line per target.

const mib = (kib) => (kib === undefined || kib === null ? '?' : (kib / 1024).toFixed(1));

function figuresLines(f) {
    if (!f) return ['  (no figures: the run stopped before the baseline)'];
    const end = f.end ?? {};
    return [
        `  descriptors  baseline ${f.baseline.fds}, peak ${f.peak.fds}, after ${end.fds ?? '?'}`,
        `  threads      baseline ${f.baseline.threads}, peak ${f.peak.threads}, after ${end.threads ?? '?'}`,
        `  RSS MiB      baseline ${mib(f.baseline.rssKiB)}, peak ${mib(f.peak.rssKiB)}, after ${mib(end.rssKiB)}` +
            (end.rssKiB ? ` (${(((end.rssKiB - f.baseline.rssKiB) / f.baseline.rssKiB) * 100).toFixed(1)}%)` : ''),
        `  back to the baseline ${f.settled ? `after ${f.settleMs} ms` : f.end ? `NOT within ${f.settleMs} ms` : 'not checked (the server is gone)'}`,
    ];
}

function logLines(log) {
    // Phases are "kind #round"; sum the rounds per kind, keep the other phases as they are.
    const byKind = new Map();
    for (const [phase, count] of log) {
        const kind = phase.replace(/ #\d+$/, '');
        byKind.set(kind, (byKind.get(kind) ?? 0) + count);
    }
    if (byKind.size === 0) return '  server log lines: none';
    return `  server log lines: ${[...byKind.entries()].map(([k, n]) => `${k} ${n}`).join(', ')}`;
}

export function formatTarget(r) {
    const lines = [`== ${r.name}: ${r.problems.length ? 'FAIL' : 'pass'} (${r.seconds ?? '?'} s, open-file limit ${r.fdLimit ?? '?'})`];
    if (r.good) {
        const g = r.good;
        const published = g.published !== undefined ? `, ${g.published} published` : '';
        lines.push(`  good clients: ${g.checked} messages checked${published}, ${g.failures} failures`);
    }
    const kinds = Object.entries(r.abuse);
    if (kinds.length) {
        lines.push(`  abusive connections: ${kinds.reduce((n, [, a]) => n + a.made, 0)}`);
        for (const [kind, a] of kinds) {
            const outcomes = Object.entries(a.outcomes).sort((x, y) => y[1] - x[1]).map(([o, n]) => `${n} ${o}`).join('; ');
            lines.push(`    ${kind.padEnd(20)} ${String(a.made).padStart(4)}  ${outcomes}`);
        }
    }
    lines.push(...figuresLines(r.figures));
    if (r.afterWaves.length) lines.push(`  RSS MiB after each wave: ${r.afterWaves.map((w) => `${w.phase} ${mib(w.rssKiB)}`).join(', ')}`);
    lines.push(logLines(r.log));
    for (const [phase, common] of r.logExamples ?? [])
        for (const [line, n] of common) lines.push(`    ${phase}: ${String(n).padStart(5)} x ${line.slice(0, 150)}`);
    if (r.timings?.length) lines.push(`  seconds: ${r.timings.map(([p, s]) => `${p} ${s.toFixed(1)}`).join(', ')}`);
    if (r.exit) lines.push(`  exit after SIGTERM: ${r.exit.signal ? `signal ${r.exit.signal}` : `status ${r.exit.code}`}`);
    for (const note of r.notes ?? []) lines.push(`  note: ${note}`);
    for (const p of r.problems) lines.push(`  PROBLEM: ${p}`);
    if (r.lastLines?.length) lines.push('  server stderr (last lines):', ...r.lastLines.map((l) => `    | ${l.slice(0, 300)}`));
    return lines.join('\n');
}

export function formatSummary(results) {
    return ['== soak summary', ...results.map((r) => `  ${r.problems.length ? 'FAIL' : 'pass'}  ${r.name}${r.problems.length ? `: ${r.problems[0]}` : ''}`)].join('\n');
}
