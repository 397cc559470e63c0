# table.awk: bench/run's tables from bench/results.csv (bench/merge.awk's
# columns): the targets (t- suites, the one-hop shape), the relay shape (r-
# suites) and every case. Variables: reps (target repeats), mreps (repeats
# of all cases), baseline (raw's shape in the table of all cases).
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
# A target or relay row, into the table of its kind (t or r).
function trow_add(kind, name,    k) {
    k = ++nrow[kind]
    ref = f[33] ~ /go/ ? "go" : f[2] == "pingpong" ? "p50" : "raw"
    rows[kind, k] = sprintf("%-40s %-6s | %8s %8s %8s %8s %8s | %9s %8s %8s | %6s %-10s %4s | %9s  %5s", name,
                            f[3], v[1], v[2], v[3], v[4], v[5], f[2] == "pingpong" ? "-" : rat(f[14]), rat(f[29]), rat(f[40]), rat(f[34]),
                            f[35] == "" ? "-" : ref " " f[35], dash(f[36]), rat(f[37]), dash(f[38]))
    if (f[36] == "yes") met[kind]++
    if (f[38] == "yes") ahead[kind]++
    if (f[37] == "") nonng[kind]++
    if (st != "ok") rst[kind, k] = name " " f[3] ": " st
}
function tprint(kind, title1, title2,    i) {
    if (!nrow[kind]) return
    printf "\n%s\n%s\n", title1, title2
    printf "Medians of %d runs; zchan, raw and nng alternate within each run. pingpong: p50 round trip.\n\n", reps
    printf "%-40s %-6s | %8s %8s %8s %8s %8s | %9s %8s %8s | %6s %-10s %4s | %9s  %5s\n", "case", "trans", "zchan",
           "raw", "nng", "go", "cq", "zchan/raw", "zchan/go", "zchan/cq", "value", "target", "met", "zchan/nng", "ahead"
    for (i = 1; i <= nrow[kind]; i++)
        print rows[kind, i]
    printf "\nTargets met: %d of %d.", met[kind], nrow[kind]
    if (nonng[kind] == nrow[kind])
        printf " nng did not run on these rows.\n"
    else {
        printf " Ahead of nng: %d of %d rows", ahead[kind], nrow[kind]
        if (nonng[kind]) printf " (%d without an nng figure: not run, or see the status below)", nonng[kind]
        printf ".\n"
    }
    for (i = 1; i <= nrow[kind]; i++)
        if ((kind, i) in rst) printf "  status, %s\n", rst[kind, i]
}
{
    splitcsv($0, f)
    if (f[1] ~ /^[tr]-/) {
        if (f[2] == "pingpong") {
            name = sprintf("pingpong %s, p50 us", size(f[4]))
            v[1] = us(f[15]); v[2] = us(f[18]); v[3] = us(f[24]); v[4] = us(f[30]); v[5] = "-"
        } else {
            name = sprintf("%s %d->%d %s", f[2], f[6], f[7], size(f[4]))
            if (f[1] ~ /-cap[0-9]+$/) {
                c = f[1]
                sub(/.*-cap/, "", c)
                name = name " cap " c
            }
            if (f[1] ~ /select/) name = name ", rx in select"
            name = name ", msg/s"
            v[1] = rate(f[10]); v[2] = rate(f[12]); v[3] = rate(f[21]); v[4] = rate(f[27]); v[5] = rate(f[39])
        }
        trow_add(substr(f[1], 1, 1), name)
    } else {
        na++
        arow[na] = sprintf("%-9s %-6s %7s | %8s %8s %8s %8s %8s | %9s %9s %9s %9s | %s", f[2], f[3], size(f[4]),
                           rate(f[10]), rate(f[12]), rate(f[21]), rate(f[27]), rate(f[39]), rat(f[14]), rat(f[23]),
                           rat(f[29]), rat(f[40]), st)
    }
}
END {
    tprint("t", "Targets (issue #14), the one-hop shape: the channel in the receiving process (anycast) or the sending one",
           "(broadcast), each side of ping-pong hosting its own; raw and nng connected directly (one hop); go: Go's channel\n" \
           "and cq: the plain C queue (mutex + 2 condvars), both capacity 10 in one process (cq has no select: the select\n" \
           "row shows its plain figure). Anycast capacity 10 in one process is measured against Go, the rest against raw.")
    tprint("r", "The relay shape: the channel in a third process (the coordinator's hub; inproc: a third context), against",
           "raw libzmq and nng through a proxy in the coordinator (the same two hops); go and cq as above.")
    if (na) {
        printf "\nAll cases: 1 sender, 2 receivers; zchan in the relay shape; raw baseline %s; nng in the same shape;\n", baseline
        printf "Go and the C queue (cq) in one process. Medians of %d runs. msg/s (pingpong: round trips/s); ratios\n", mreps
        printf "are zchan's rate over the other's.\n\n"
        printf "%-9s %-6s %7s | %8s %8s %8s %8s %8s | %9s %9s %9s %9s | %s\n", "workload", "trans", "size", "zchan", "raw",
               "nng", "go", "cq", "zchan/raw", "zchan/nng", "zchan/go", "zchan/cq", "status"
        for (i = 1; i <= na; i++)
            print arow[i]
    }
}
