#!/usr/bin/awk -f
# SPDX-License-Identifier: MIT
# stats.awk: median, min and max of the values of one workload's metric per
# configuration, from "workload config metric value" lines (tab-separated),
# configurations in order of appearance. Shared by bench/plot.sh and
# bench/plot-ab.sh.
#
#   awk -f bench/stats.awk -v w=W3 -v m=ns FILE   # "config" median min max
#
# The configuration is printed quoted (a gnuplot xtic label). Plain POSIX awk.
BEGIN { FS = "\t" }
$1 == w && $3 == m { if (!($2 in n)) order[++nc] = $2; v[$2, ++n[$2]] = $4 }
END {
    for (i = 1; i <= nc; i++) {
        c = order[i]; k = n[c]
        for (a = 1; a <= k; a++) s[a] = v[c, a]
        for (a = 2; a <= k; a++) { t = s[a]; for (b = a - 1; b >= 1 && s[b] > t; b--) s[b + 1] = s[b]; s[b + 1] = t }
        med = (k % 2) ? s[(k + 1) / 2] : (s[k / 2] + s[k / 2 + 1]) / 2
        printf "\"%s\"\t%.10g\t%.10g\t%.10g\n", c, med, s[1], s[k]
    }
}
