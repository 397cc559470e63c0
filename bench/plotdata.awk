# plotdata.awk: gnuplot's data from bench/results.csv, the target rows only
# (t- suites: the one-hop shape). Columns: label, zchan, raw, nng and go
# rates (msg/s; pingpong: round trips per second from the p50, 1e6/p50),
# zchan's speed relative to raw (higher is better: the rate ratio, pingpong
# raw p50 / zchan p50), the target in the same sense (when the target is
# against raw; "?" when it is against Go), and the C queue's rate. "?" is
# missing.
function splitcsv(line, f,    i) {
    i = index(line, ",\"")
    return split(substr(line, 1, i - 1), f, ",")
}
function q(x) { return x == "" ? "?" : x }
function inv(x) { return x == "" || x <= 0 ? "?" : 1e6 / x }
function size(s) {
    if (s >= 1048576 && s % 1048576 == 0) return (s / 1048576) "MiB"
    if (s >= 1024 && s % 1024 == 0) return (s / 1024) "KiB"
    return s "B"
}
NR == 1 { next }
{
    splitcsv($0, f)
    if (f[1] !~ /^t-/) next
    if (f[2] == "pingpong") {
        label = sprintf("pingpong %s %s", size(f[4]), f[3])
        z = inv(f[15]); r = inv(f[18]); n = inv(f[24]); g = inv(f[30])
        speed = f[34] == "" || f[34] <= 0 ? "?" : 1 / f[34]
        tgt = 1 / 1.2
    } else {
        label = sprintf("%s %d-%d %s %s", f[2] == "anycast" ? "any" : "bcast", f[6], f[7], size(f[4]), f[3])
        if (f[1] ~ /-cap[0-9]+$/) {
            c = f[1]
            sub(/.*-cap/, "", c)
            label = sprintf("%s %d-%d %s c%s %s", f[2] == "anycast" ? "any" : "bcast", f[6], f[7], size(f[4]), c, f[3])
        }
        if (f[1] ~ /select/)
            label = label " sel"
        z = q(f[10]); r = q(f[12]); n = q(f[21]); g = q(f[27])
        speed = q(f[14])
        tgt = f[35]
        sub(/^>= /, "", tgt)
        if (f[33] ~ /go/ || tgt == "") tgt = "?"
    }
    cq = f[2] == "pingpong" ? "?" : q(f[39])
    printf "\"%s\" %s %s %s %s %s %s %s\n", label, z, r, n, g, speed, tgt, cq
}
