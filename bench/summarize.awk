#!/usr/bin/awk -f
# SPDX-License-Identifier: MIT
# summarize.awk: the markdown table of a bench/run-service.sh TSV
# (label, goshm_rev, rep, workload, config, metric, value).
#
#   bench/summarize.awk [-v flag=150] [-v batch=32] RESULTS.tsv
#
# One row per workload figure and configuration: median, min–max, runs, and
# goshm/peer (goshm's median over the peer's; for W3 goshm-K1 is the
# reference of the unbatched peers and of iceoryx, goshm-K<batch> of the
# batched ones; for W5 and W6, goshm). messages/s rows: goshm/peer is
# goshm's messages/s over the peer's, so there above 1 means goshm faster.
# Cross-core rows (W4a, W4b, W3, W5, W6) add the cache-line ping-pong
# measured before each run: median (max), FLAG when any run's exceeds `flag`.
# Plain POSIX awk (mawk works).
BEGIN { FS = "\t"; if (flag == "") flag = 150; if (batch == "") batch = 32 }
NR == 1 { next }
{
    w = $4; c = $5; m = $6; v = $7 + 0
    k = w SUBSEP c SUBSEP m
    if (!(k in n)) n[k] = 0
    vals[k, ++n[k]] = v
    if (!((w, c) in seen)) { seen[w, c] = 1; cfgs[w] = cfgs[w] (cfgs[w] == "" ? "" : "\t") c }
}
function median(k,    i, j, t, a, cnt) {
    cnt = n[k]
    for (i = 1; i <= cnt; i++) a[i] = vals[k, i]
    for (i = 2; i <= cnt; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    LO = a[1]; HI = a[cnt]
    return (cnt % 2) ? a[(cnt + 1) / 2] : (a[cnt / 2] + a[cnt / 2 + 1]) / 2
}
function fmt(x, d) { return sprintf("%." d "f", x) }
function ref(w, c) {
    if (w == "W3") return (c ~ /-K1$/ || c == "iceoryx") ? "goshm-K1" : "goshm-K" batch
    if (w == "R") return ""
    if (w == "W5" || w == "W6") return "goshm"
    return "goshm"
}
function rows(w, m, label, d,    list, nc, i, c, k, med, lo, hi, r, rk, rm, pk, pmax, pflag, j, ppcol) {
    nc = split(cfgs[w], list, "\t")
    for (i = 1; i <= nc; i++) {
        c = list[i]; k = w SUBSEP c SUBSEP m
        if (!(k in n)) continue
        med = median(k); lo = LO; hi = HI
        r = "—"; rk = ref(w, c)
        if (rk != "" && rk != c && ((w SUBSEP rk SUBSEP m) in n)) {
            rm = median(w SUBSEP rk SUBSEP m)
            if (med > 0) r = sprintf("%.2f", rm / med)
        }
        ppcol = ""
        pk = w SUBSEP c SUBSEP "pp_ns"
        if (w == "W3" || w == "W4a" || w == "W4b" || w == "W5" || w == "W6") {
            ppcol = "—"
            if (pk in n) {
                pmax = 0; pflag = ""
                for (j = 1; j <= n[pk]; j++) { if (vals[pk, j] > pmax) pmax = vals[pk, j]; if (vals[pk, j] > flag + 0) pflag = " FLAG" }
                ppcol = fmt(median(pk), 0) " (" fmt(pmax, 0) ")" pflag
            }
        }
        printf "| %s | %s | %s | %s–%s | %d | %s | %s |\n", label, c, fmt(med, d), fmt(lo, d), fmt(hi, d), n[k], r, ppcol
    }
}
END {
    print "| figure | configuration | median | min–max | runs | goshm/peer | pp ns |"
    print "|---|---|---|---|---|---|---|"
    rows("W1", "ns", "W1 ns/pair", 1)
    rows("W2", "ns", "W2 ns/object", 0)
    rows("W2", "peak_rss_ratio", "W2 peak RSS / requested", 3)
    rows("W2", "kept_pct", "W2 RSS kept after freeing all, %", 0)
    rows("W2", "kept_settled_pct", "W2 RSS kept once settled (scavenger ran), %", 1)
    rows("W4a", "ns", "W4a ns/pair (2 threads)", 1)
    rows("W4b", "ns", "W4b ns/object", 0)
    rows("W3", "ns", "W3 ns/message", 0)
    rows("R", "p50_ns", "R p50 ns", 0)
    rows("R", "p99_ns", "R p99 ns", 0)
    rows("W5", "ns", "W5 ns/message (1 subscriber)", 0)
    rows("W5", "msgs_per_s", "W5 messages/s (goshm/peer > 1: goshm faster)", 0)
    rows("W6", "ns", "W6 ns/buffer (4 subscribers)", 0)
    rows("W6", "msgs_per_s", "W6 buffers/s (goshm/peer > 1: goshm faster)", 0)
}
