# plot.gp: bench/results.png from bench/plotdata.awk's data. Called by
# bench/run as: gnuplot -e "datafile='...'; outfile='...'; plottitle='...'" bench/plot.gp
set terminal pngcairo size 1500,1100 font "sans,11"
set output outfile
set datafile missing "?"
set multiplot layout 2,1 title plottitle font "sans,13"

set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set format y "10^{%L}"
set grid ytics
set key top right horizontal
set xtics rotate by -25 scale 0 font "sans,10"
set ylabel "messages per second (log)"
set title "Rates: msg/s received; pingpong: round trips/s at the median (10^6 / p50 us). Higher is better."
plot datafile using 2:xticlabels(1) title "zchan" lc rgb "#1f77b4", \
     '' using 3 title "raw libzmq (direct)" lc rgb "#7f7f7f", \
     '' using 4 title "nng" lc rgb "#ff7f0e", \
     '' using 5 title "Go channel (in-process)" lc rgb "#2ca02c", \
     '' using 8 title "C queue (in-process)" lc rgb "#9467bd"

reset
set datafile missing "?"
set style fill solid 0.85 border -1
set logscale y
set grid ytics
set key top right horizontal
set xtics rotate by -25 scale 0 font "sans,10"
set boxwidth 0.6
set yrange [0.005:5]
set format y "%g"
set ytics (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
set ylabel "zchan / raw (log)"
set offsets 0.7, 0.7, 0, 0
set title "zchan relative to raw libzmq in the same run (pingpong: raw p50 / zchan p50); red bar: the target where it is against raw"
plot datafile using 0:6:xticlabels(1) with boxes title "zchan / raw" lc rgb "#1f77b4", \
     '' using ($0-0.4):7:(0.8):(0) with vectors nohead lw 4 lc rgb "#d62728" title "target", \
     1 with lines dt 2 lc rgb "black" title "= raw"
unset multiplot
