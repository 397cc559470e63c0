# table.awk: bench/run's tables from bench/results.csv (bench/merge.awk's
# columns). Variables: reps (target repeats), mreps (repeats of all cases),
# baseline (raw's shape in the table of all cases).
function splitcsv(line, f,    i) {
    i = index(line, ",\"")
    st = substr(line, i + 2)
    sub(/"$/, "", st)
    gsub(/""/, "\"", st)
    return split(substr(line, 1, i - 1), f, ",")
}
function rate(x) {
    if (x == "") return "-"
    if (x >= 1e6) return sprintf("%.2fM", x / 1e6)
    if (x >= 1e3) return sprintf("%.1fk", x / 1e3)
    return sprintf("%.0f", x)
}
function us(x) { return x == "" ? "-" : sprintf("%.1f", x) }
function rat(x) { return x == "" ? "-" : sprintf("%.3f", x) }
function dash(x) { return x == "" ? "-" : x }
function size(s) {
    if (s >= 1048576 && s % 1048576 == 0) return (s / 1048576) " MiB"
    if (s >= 1024 && s % 1024 == 0) return (s / 1024) " KiB"
    return s " B"
}
NR == 1 { next }
{
    splitcsv($0, f)
    if (f[1] ~ /^t-/) {
        nt++
        if (f[2] == "pingpong") {
            name = sprintf("pingpong %s, p50 us", size(f[4]))
            v[1] = us(f[15]); v[2] = us(f[18]); v[3] = us(f[24]); v[4] = us(f[30])
        } else {
            name = sprintf("%s %d->%d %s, msg/s", f[2], f[6], f[7], size(f[4]))
            if (f[1] ~ /-cap[0-9]+$/) {
                c = f[1]
                sub(/.*-cap/, "", c)
                name = sprintf("%s %d->%d %s cap %s, msg/s", f[2], f[6], f[7], size(f[4]), c)
            }
            v[1] = rate(f[10]); v[2] = rate(f[12]); v[3] = rate(f[21]); v[4] = rate(f[27])
        }
        trow[nt] = sprintf("%-36s %-6s | %8s %8s %8s %8s | %9s  %-6s %4s | %9s  %5s", name, f[3], v[1], v[2], v[3],
                           v[4], rat(f[34]), f[35], dash(f[36]), rat(f[37]), dash(f[38]))
        if (f[36] == "yes") tmet++
        if (f[38] == "yes") nmet++
        if (f[37] == "") nnone++
        if (st != "ok") tst[nt] = name " " f[3] ": " st
    } else {
        na++
        is_pp = f[2] == "pingpong"
        arow[na] = sprintf("%-9s %-6s %7s | %8s %8s %8s %8s | %9s %9s %9s | %s", f[2], f[3], size(f[4]), rate(f[10]),
                           rate(f[12]), rate(f[21]), rate(f[27]), rat(f[14]), rat(f[23]), rat(f[29]), st)
        if (is_pp) app[na] = 1
    }
}
END {
    if (nt) {
        printf "\nTargets (issue #6). zchan against raw libzmq in the same run, raw in the direct shape\n"
        printf "(sockets connected to each other, one hop); nng in the same shape; Go in one process.\n"
        printf "Medians of %d runs; zchan, raw and nng alternate within each run. pingpong: p50 round trip.\n\n", reps
        printf "%-36s %-6s | %8s %8s %8s %8s | %9s  %-6s %4s | %9s  %5s\n", "case", "trans", "zchan", "raw", "nng",
               "go", "zchan/raw", "target", "met", "zchan/nng", "ahead"
        for (i = 1; i <= nt; i++)
            print trow[i]
        printf "\nTargets met: %d of %d. Ahead of nng: %d of %d rows", tmet, nt, nmet, nt
        if (nnone) printf " (%d without an nng figure: see the status below)", nnone
        printf ".\n"
        for (i = 1; i <= nt; i++)
            if (i in tst) printf "  status, %s\n", tst[i]
    }
    if (na) {
        printf "\nAll cases: 1 sender, 2 receivers; raw baseline %s; nng in the same shape; Go in one process.\n", baseline
        printf "Medians of %d runs. msg/s (pingpong: round trips/s); ratios are zchan's rate over the other's.\n\n", mreps
        printf "%-9s %-6s %7s | %8s %8s %8s %8s | %9s %9s %9s | %s\n", "workload", "trans", "size", "zchan", "raw",
               "nng", "go", "zchan/raw", "zchan/nng", "zchan/go", "status"
        for (i = 1; i <= na; i++)
            print arow[i]
    }
}
