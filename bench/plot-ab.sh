#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# plot-ab.sh: the PNG of a bench/run-ab.sh TSV (gnuplot; Debian gnuplot-nox).
#
#   bench/plot-ab.sh RESULTS.tsv OUT.png
#
# One panel per workload figure (W1 ns; W3 ns; R's p50 and p99, small and
# large, busy and after 1 ms idle): every configuration's median over B's
# median (W3: over B's at the same K), whiskers min-max over B's median, log
# scale; the panel title gives B's median and says FLAG when some
# configuration's median ping-pong was above PP_FLAG_NS (100), as the summary
# of run-ab.sh does.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
IN=${1:?usage: plot-ab.sh RESULTS.tsv OUT.png}
OUTPNG=${2:?usage: plot-ab.sh RESULTS.tsv OUT.png}
FLAG=${PP_FLAG_NS:-100}
command -v gnuplot >/dev/null || { echo "plot-ab.sh: gnuplot not installed (Debian gnuplot-nox)" >&2; exit 2; }
T=$(mktemp -d /tmp/goshm-plot-ab.XXXXXX)
trap 'rm -rf "$T"' EXIT

awk -F'\t' 'NR > 1 { print $4 "\t" $5 "\t" $6 "\t" $7 }' "$IN" >"$T/all.tsv"
TITLE=$(awk -F'\t' '$5 == "A" || $5 ~ /^A-K/ { a = $2 } $5 == "B" || $5 ~ /^B-K/ { b = $2 }
                    END { printf "A %s vs B %s", a, b }' "$IN")
# colours: one per configuration (its -K suffix dropped), in order of appearance
awk -F'\t' '{ c = $2; sub(/-K[0-9]+$/, "", c); if (!(c in s)) { s[c]; print c "\t" ++n } }' "$T/all.tsv" >"$T/colours"

# the panels: workload and metric in order of appearance, R's small ones first
awk -F'\t' '$3 != "pp_ns" && !(($1, $3) in s) { s[$1, $3]; print ($1 ~ /-large-/) "\t" $1 "\t" $3 }' "$T/all.tsv" |
    sort -s -n -k1,1 | cut -f2- >"$T/groups"
NP=$(wc -l <"$T/groups")
[ "$NP" -gt 0 ] || { echo "plot-ab.sh: no figures in $IN" >&2; exit 1; }
i=0 plots=""
while IFS="$(printf '\t')" read -r w m; do
    awk -f "$HERE/stats.awk" -v w="$w" -v m=pp_ns "$T/all.tsv" >"$T/pp.$i"
    # "x config ratio lo hi colour": over B's median (W3: B-K of the same K)
    awk -f "$HERE/stats.awk" -v w="$w" -v m="$m" "$T/all.tsv" |
        awk -F'\t' -v col="$T/colours" '
            BEGIN { while ((getline l < col) > 0) { split(l, f, "\t"); colour[f[1]] = f[2] } }
            { gsub(/"/, "", $1); c[++n] = $1; med[$1] = $2; lo[$1] = $3; hi[$1] = $4 }
            END {
                for (i = 1; i <= n; i++) {
                    x = c[i]; r = "B"; if (x ~ /-K/) { r = x; sub(/^[^-]*/, "B", r) }
                    if (!(r in med) || med[r] <= 0) continue
                    k = x; sub(/-K[0-9]+$/, "", k)
                    printf "%d\t\"%s\"\t%g\t%g\t%g\t%d\n", i - 1, x, med[x] / med[r], lo[x] / med[r], hi[x] / med[r], colour[k]
                }
            }' >"$T/d.$i"
    bref=$(awk -f "$HERE/stats.awk" -v w="$w" -v m="$m" "$T/all.tsv" |
           awk -F'\t' '$1 ~ /^"B(-K[0-9]+)?"$/ { gsub(/"/, "", $1); printf "%s%s %g", sep, $1, $2; sep = ", " }')
    flag=$(awk -F'\t' -v f="$FLAG" '$2 > f + 0 { print " FLAG (ping-pong)"; exit }' "$T/pp.$i")
    plots="$plots
set title \"$w $m ($bref)$flag\"
plot \"$T/d.$i\" using 1:3:4:5:(0.4):6:xticlabels(2) with boxerrorbars lc variable, 1 with lines lc rgb \"black\" dt 2"
    i=$((i + 1))
done <"$T/groups"
COLS=$(( NP < 4 ? NP : 4 ))
ROWS=$(( (NP + COLS - 1) / COLS ))
gnuplot <<EOF
set terminal pngcairo size $((COLS * 380 < 760 ? 760 : COLS * 380)),$((ROWS * 360 + 40)) font ",9" noenhanced
set output "$OUTPNG"
set style fill solid 0.7 border -1
set offsets 0.5, 0.5, 0, 0
set logscale y
set grid ytics
set xtics rotate by -35 scale 0
set key off
set ylabel "median / B's median"
set multiplot layout $ROWS,$COLS title "$TITLE: median of runs over B's, whiskers min-max (lower is faster)"
$plots
unset multiplot
EOF
echo "plot-ab.sh: wrote $OUTPNG" >&2
