#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# plot.sh: the PNG plots of a bench/run-service.sh run, next to
# bench/README.md (gnuplot; Debian gnuplot-nox).
#
#   bench/plot.sh RESULTS.tsv [BEFORE.tsv]
#
# With BEFORE.tsv (a run of an older goshm with the same harness), its goshm
# is drawn too, as "goshm (before)": times relative to its own run's peers,
# and W2 memory ratios (W3 and R, absolute times, are not mixed). Writes:
#   bench/service-alloc.png   W1, W2, W4a, W4b: each allocator's median time
#                             over the geometric mean of the malloc peers'
#                             medians in the same run (whiskers: min–max);
#                             a BEFORE goshm against its own run's peers
#   bench/service-w2mem.png   W2 peak RSS / requested, and RSS kept once the
#                             scavenger ran (% of the peak)
#   bench/service-w3.png      W3 ns/message, median and min–max
#   bench/service-r.png       R p50 and p99 (log scale)
#   bench/service-ipc.png     W5 and W6: ns per message (per buffer fanned
#                             out to 4), median and min-max, and the
#                             cache-line ping-pong measured before the runs
# A plot whose workloads are not in RESULTS.tsv is not drawn (a run of
# WORKLOADS="W5 W6" draws service-ipc.png only).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
AFTER=${1:?usage: plot.sh RESULTS.tsv [BEFORE.tsv]}
BEFORE=${2:-}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not installed (Debian gnuplot-nox)" >&2; exit 2; }
T=$(mktemp -d /tmp/goshm-plot.XXXXXX)
trap 'rm -rf "$T"' EXIT

# all.tsv: workload config metric value; of the BEFORE run only goshm's W2
# memory ratios (not times: those are compared within their own run, below).
awk -F'\t' 'NR > 1 { print $4 "\t" $5 "\t" $6 "\t" $7 }' "$AFTER" >"$T/all.tsv"
if [ -n "$BEFORE" ]; then
    awk -F'\t' 'NR > 1 && $5 == "goshm" && $4 == "W2" && $6 != "ns" { print $4 "\tgoshm (before)\t" $6 "\t" $7 }' \
        "$BEFORE" >>"$T/all.tsv"
fi
TITLE=$(awk -F'\t' 'NR == 2 { print "goshm " $2 (($1 != "-") ? " (" $1 ")" : "") }' "$AFTER")

# stats WORKLOAD METRIC: "config median min max" lines, configs in order of appearance.
stats() { awk -f "$HERE/stats.awk" -v w="$1" -v m="$2" "$T/all.tsv"; }

# 1. time relative to the malloc peers of the SAME run (the geometric mean of
# glibc's, jemalloc's, mimalloc's, tcmalloc's and tbbmalloc's medians), so a
# BEFORE run's goshm is compared with its own run's peers, never with another
# run's absolute times. One block per workload.
# rel FILE WORKLOAD [RENAME]: "config rel lo hi" lines.
rel() {
    awk -F'\t' -v w="$2" -v ren="${3:-}" '
        NR > 1 && $4 == w && $6 == "ns" { if (!($5 in n)) order[++nc] = $5; v[$5, ++n[$5]] = $7 }
        function med(c,    a, b, t, k, s) {
            k = n[c]; for (a = 1; a <= k; a++) s[a] = v[c, a]
            for (a = 2; a <= k; a++) { t = s[a]; for (b = a - 1; b >= 1 && s[b] > t; b--) s[b + 1] = s[b]; s[b + 1] = t }
            LO = s[1]; HI = s[k]
            return (k % 2) ? s[(k + 1) / 2] : (s[k / 2] + s[k / 2 + 1]) / 2
        }
        END {
            lg = 0; np = 0
            for (i = 1; i <= nc; i++) if (order[i] ~ /^(glibc|jemalloc|mimalloc|tcmalloc|tbbmalloc)$/) { lg += log(med(order[i])); np++ }
            if (np == 0) exit
            g = exp(lg / np)
            for (i = 1; i <= nc; i++) {
                c = order[i]
                if (ren != "" && c != "goshm") continue
                m = med(c)
                printf "\"%s\"\t%g\t%g\t%g\n", (ren != "" ? ren : c), m / g, LO / g, HI / g
            }
        }' "$1"
}
: >"$T/rel.dat"
WS=""
for w in W1 W2 W4a W4b; do
    [ -n "$(rel "$AFTER" "$w")" ] || continue
    WS="$WS $w"
    { echo "# $w"; rel "$AFTER" "$w"; [ -n "$BEFORE" ] && rel "$BEFORE" "$w" "goshm (before)"; echo; echo; } >>"$T/rel.dat"
done
# shellcheck disable=SC2086  # a word list
set -- $WS
NW=$#
WROTE=""
[ "$NW" -gt 0 ] && WROTE="$WROTE service-alloc.png" && gnuplot <<EOF
set terminal pngcairo size 1400,560 font ",10" noenhanced
set output "$HERE/service-alloc.png"

set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.7 border -1
set boxwidth 0.9
set ylabel "median / geometric mean of the malloc peers' medians, same run"
set logscale y
set yrange [0.05:*]
set grid ytics
set xtics rotate by -35 scale 0
set key off
set multiplot layout 1,$NW title "$TITLE: time per operation relative to the malloc peers of the same run (median of runs, whiskers min-max; lower is faster)"
do for [i=0:$NW - 1] {
  set title sprintf("%s", word("$WS", i + 1))
  plot "$T/rel.dat" index i using 2:3:4:xtic(1) lc i + 1, 1 with lines lc rgb "black" dt 2 notitle
}
unset multiplot
EOF

# 2. W2 memory.
stats W2 peak_rss_ratio >"$T/w2peak.dat"
stats W2 kept_settled_pct >"$T/w2kept.dat"
[ -s "$T/w2peak.dat" ] && WROTE="$WROTE service-w2mem.png" && gnuplot <<EOF
set terminal pngcairo size 1000,420 font ",10" noenhanced
set output "$HERE/service-w2mem.png"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.7 border -1
set grid ytics
set xtics rotate by -35 scale 0
set key off
set multiplot layout 1,2 title "$TITLE: W2 memory (1M objects of 8..2048 B)"
set title "peak RSS / requested bytes (aim: <= 1.05)"
set yrange [0:*]
plot "$T/w2peak.dat" using 2:3:4:xtic(1) lc 2, 1.05 with lines lc rgb "black" dt 2 notitle
set title "RSS kept after freeing all, once settled (scavenger ran), % of peak"
plot "$T/w2kept.dat" using 2:3:4:xtic(1) lc 3
unset multiplot
EOF

# 3. W3.
stats W3 ns >"$T/w3.dat"
[ -s "$T/w3.dat" ] && WROTE="$WROTE service-w3.png" && gnuplot <<EOF
set terminal pngcairo size 900,420 font ",10" noenhanced
set output "$HERE/service-w3.png"
set title "$TITLE: W3, two processes, 64..4096 B buffers: ns per message (median, min-max)"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.7 border -1
set logscale y
set grid ytics
set ylabel "ns / message"
set key off
plot "$T/w3.dat" using 2:3:4:xtic(1) lc 4
EOF

# 4. R.
stats R p50_ns >"$T/r50.dat"
stats R p99_ns >"$T/r99.dat"
paste "$T/r50.dat" "$T/r99.dat" | awk -F'\t' '{ print $1 "\t" $2 "\t" $3 "\t" $4 "\t" $6 "\t" $7 "\t" $8 }' >"$T/r.dat"
[ -s "$T/r50.dat" ] && WROTE="$WROTE service-r.png" && gnuplot <<EOF
set terminal pngcairo size 1000,440 font ",10" noenhanced
set output "$HERE/service-r.png"
set title "$TITLE: R, goshm_malloc needing a round trip with goshmd (median of runs, min-max); aim p50 <= 1 us, p99 <= 10 us"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.7 border -1
set logscale y
set grid ytics
set ylabel "ns"
set xtics rotate by -20 scale 0
set key top left
plot "$T/r.dat" using 2:3:4:xtic(1) title "p50" lc 1, "" using 5:6:7 title "p99" lc 7, \
     1000 with lines lc rgb "black" dt 2 notitle, 10000 with lines lc rgb "black" dt 3 notitle
EOF
# 5. W5 and W6: ns per message, and the ping-pong of their runs.
stats W5 ns >"$T/w5.dat"
stats W6 ns >"$T/w6.dat"
stats W5 pp_ns >"$T/w5pp.dat"
stats W6 pp_ns >"$T/w6pp.dat"
if [ -s "$T/w5.dat" ] || [ -s "$T/w6.dat" ]; then
    W6N=$(awk -F'\t' '$1 == "W6" && $3 == "messages" { print $4; exit }' "$T/all.tsv")
    # the highest of the configurations' median ping-pong
    pp() { awk -F'\t' 'BEGIN { m = 0 } { if ($2 > m) m = $2 } END { printf "%.0f", m }' "$1"; }
    for f in w5 w6; do [ -s "$T/$f.dat" ] || printf '"none"\t1\t1\t1\n' >"$T/$f.dat"; done
    WROTE="$WROTE service-ipc.png"
    gnuplot <<EOF
set terminal pngcairo size 1100,460 font ",10" noenhanced
set output "$HERE/service-ipc.png"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.7 border -1
set logscale y
set grid ytics
set ylabel "ns (median of runs, min-max; lower is faster)"
set key off
set multiplot layout 1,2 title "$TITLE: zero-copy handoff between processes, 64..4096 B buffers"
set title "W5, 1 subscriber: ns/message (ping-pong <= $(pp "$T/w5pp.dat") ns)"
plot "$T/w5.dat" using 2:3:4:xtic(1) lc 4
set title "W6, 4 subscribers, ${W6N:-?} buffers: ns/buffer (ping-pong <= $(pp "$T/w6pp.dat") ns)"
plot "$T/w6.dat" using 2:3:4:xtic(1) lc 6
unset multiplot
EOF
fi
echo "plot.sh: wrote in $HERE:${WROTE:- nothing}" >&2
