// chanbench: the in-process reference for zchan-perf. Go's buffered channels
// doing zchan-perf's jobs between goroutines of one process:
//
//	anycast:   S goroutines -> one channel of capacity 10 -> R goroutines
//	broadcast: S goroutines -> one channel of capacity 10 per receiver,
//	           every message sent to each -> R goroutines
//	pingpong:  one goroutine sends on "ping" (capacity 10), another echoes
//	           on "pong"; the first times each round trip
//
// With -select, anycast and broadcast receivers wait in a select on their
// channel and a timer that never fires (one time.NewTimer of an hour, made
// before the start), as zchan-perf --select does with zchan_select; the CSV's
// baseline column then says go-select.
//
// Every message is a fresh []byte copy of the payload, as zchan builds one
// message per send; receivers check its size and its first and last byte.
// The clock starts when every goroutine is waiting on the start barrier;
// throughput = messages received / (last receipt - start). With -repeat N,
// values are medians of N runs. Output: CSV (-csv) whose first columns are
// zchan-perf's (workload,transport,size,count,senders,receivers,baseline,
// repeat), then go_msgs_per_s,go_mb_per_s,go_p50_us,go_p99_us,go_max_us,
// status; or a table.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const capacity = 10

type result struct {
	rate, mb        float64
	p50, p99, maxUs float64
}

func payload(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte((i*31 + 7) & 0xff)
	}
	return b
}

func ok(b []byte, size int) bool {
	if len(b) != size {
		return false
	}
	return size == 0 || (b[0] == 7 && b[size-1] == byte(((size-1)*31+7)&0xff))
}

func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

// throughput runs anycast or broadcast once.
func throughput(broadcast, sel bool, size, count, senders, receivers int) (result, error) {
	src := payload(size)
	chans := make([]chan []byte, 1)
	if broadcast {
		chans = make([]chan []byte, receivers)
	}
	for i := range chans {
		chans[i] = make(chan []byte, capacity)
	}
	start := make(chan struct{})
	var ready, sendersDone, receiversDone sync.WaitGroup
	last := make([]time.Time, receivers)
	got := make([]int, receivers)
	bad := make([]int, receivers)
	ready.Add(senders + receivers)
	receiversDone.Add(receivers)
	for r := 0; r < receivers; r++ {
		ch := chans[0]
		if broadcast {
			ch = chans[r]
		}
		go func(r int, ch chan []byte) {
			defer receiversDone.Done()
			take := func(m []byte) {
				t := time.Now()
				if ok(m, size) {
					got[r]++
					last[r] = t
				} else {
					bad[r]++
				}
			}
			if sel {
				idle := time.NewTimer(time.Hour) // never fires during a run
				defer idle.Stop()
				ready.Done()
				<-start
				for {
					select {
					case m, more := <-ch:
						if !more {
							return
						}
						take(m)
					case <-idle.C:
					}
				}
			}
			ready.Done()
			<-start
			for m := range ch {
				take(m)
			}
		}(r, ch)
	}
	sendersDone.Add(senders)
	for s := 0; s < senders; s++ {
		go func(n int) {
			defer sendersDone.Done()
			ready.Done()
			<-start
			for i := 0; i < n; i++ {
				for _, ch := range chans {
					m := make([]byte, size)
					copy(m, src)
					ch <- m
				}
			}
		}(share(count, senders, s))
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	sendersDone.Wait()
	for _, ch := range chans {
		close(ch)
	}
	receiversDone.Wait()
	sum, end := 0, t0
	for r := 0; r < receivers; r++ {
		if bad[r] > 0 {
			return result{}, fmt.Errorf("receiver %d: %d damaged messages", r, bad[r])
		}
		sum += got[r]
		if last[r].After(end) {
			end = last[r]
		}
	}
	want := count
	if broadcast {
		want = count * receivers
	}
	if sum != want {
		return result{}, fmt.Errorf("LOSS: receivers got %d of %d messages", sum, want)
	}
	el := end.Sub(t0).Seconds()
	if el <= 0 {
		el = 1e-9
	}
	return result{rate: float64(sum) / el, mb: float64(sum) * float64(size) / el / 1e6}, nil
}

// pingpong runs warmup+count round trips once.
func pingpong(size, count, warmup int) (result, error) {
	src := payload(size)
	ping := make(chan []byte, capacity)
	pong := make(chan []byte, capacity)
	total := warmup + count
	go func() {
		for m := range ping {
			pong <- m // echo the received message as it is
		}
		close(pong)
	}()
	rtt := make([]float64, 0, count)
	var first, last time.Time
	for i := 0; i < total; i++ {
		t0 := time.Now()
		m := make([]byte, size)
		copy(m, src)
		ping <- m
		r := <-pong
		if !ok(r, size) {
			return result{}, fmt.Errorf("round trip %d: bad payload", i+1)
		}
		t1 := time.Now()
		if i >= warmup {
			if i == warmup {
				first = t0
			}
			last = t1
			rtt = append(rtt, float64(t1.Sub(t0).Nanoseconds())/1e3)
		}
	}
	close(ping)
	sort.Float64s(rtt)
	n := len(rtt)
	k := (n*99+99)/100 - 1 // nearest rank, as zchan-perf
	if k < 0 {
		k = 0
	}
	el := last.Sub(first).Seconds()
	if el <= 0 {
		el = 1e-9
	}
	return result{rate: float64(n) / el, mb: 2 * float64(n) * float64(size) / el / 1e6,
		p50: rtt[n/2], p99: rtt[k], maxUs: rtt[n-1]}, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// defaultCount is zchan-perf's default_count.
func defaultCount(wl string, size int) int {
	if wl == "pingpong" {
		switch {
		case size <= 1024:
			return 2000
		case size <= 65536:
			return 1000
		default:
			return 100
		}
	}
	switch {
	case size <= 64:
		return 40000
	case size <= 1024:
		return 30000
	case size <= 65536:
		return 5000
	case size <= 1048576:
		return 300
	}
	n := (300 << 20) / size
	if n < 20 {
		n = 20
	}
	return n
}

func parseSize(s string) (int, error) {
	mult := 1
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "i")
	if strings.HasSuffix(s, "K") || strings.HasSuffix(s, "k") {
		mult, s = 1024, s[:len(s)-1]
	} else if strings.HasSuffix(s, "M") || strings.HasSuffix(s, "m") {
		mult, s = 1<<20, s[:len(s)-1]
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func main() {
	workloads := flag.String("w", "anycast,broadcast,pingpong", "workloads: comma list of anycast, broadcast, pingpong")
	sizes := flag.String("sizes", "16,1K,64K,1M", "payload sizes, comma list (K, M suffixes)")
	senders := flag.Int("s", 1, "senders (anycast, broadcast)")
	receivers := flag.Int("r", 2, "receivers (anycast, broadcast)")
	count := flag.Int("n", 0, "messages per run, or measured round trips; 0: zchan-perf's default by size")
	repeat := flag.Int("repeat", 1, "runs per case; medians reported")
	csv := flag.Bool("csv", false, "CSV with a header row")
	sel := flag.Bool("select", false, "anycast and broadcast receivers wait in select on the channel and an idle timer")
	flag.Parse()
	if *senders < 1 || *receivers < 1 || *repeat < 1 {
		fmt.Fprintln(os.Stderr, "chanbench: -s, -r and -repeat must be at least 1")
		os.Exit(2)
	}
	var sz []int
	for _, s := range strings.Split(*sizes, ",") {
		v, err := parseSize(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chanbench:", err)
			os.Exit(2)
		}
		sz = append(sz, v)
	}
	if *csv {
		fmt.Println("workload,transport,size,count,senders,receivers,baseline,repeat," +
			"go_msgs_per_s,go_mb_per_s,go_p50_us,go_p99_us,go_max_us,status")
	} else {
		fmt.Printf("%-9s %7s %7s %3s %3s | %10s %10s %8s %8s %8s  %s\n", "workload", "size", "count", "S", "R",
			"go msg/s", "go MB/s", "p50 us", "p99 us", "max us", "status")
	}
	failed := false
	for _, wl := range strings.Split(*workloads, ",") {
		if wl != "anycast" && wl != "broadcast" && wl != "pingpong" {
			fmt.Fprintf(os.Stderr, "chanbench: unknown workload %q\n", wl)
			os.Exit(2)
		}
		for _, size := range sz {
			n := *count
			if n == 0 {
				n = defaultCount(wl, size)
			}
			s, r := *senders, *receivers
			if wl == "pingpong" {
				s, r = 1, 1
			}
			var rates, mbs, p50s, p99s, maxs []float64
			status := "ok"
			for i := 0; i < *repeat; i++ {
				var res result
				var err error
				if wl == "pingpong" {
					warm := n / 10
					if warm < 10 {
						warm = 10
					}
					res, err = pingpong(size, n, warm)
				} else {
					res, err = throughput(wl == "broadcast", *sel, size, n, s, r)
				}
				if err != nil {
					status = "FAILED go: " + err.Error()
					failed = true
					break
				}
				rates = append(rates, res.rate)
				mbs = append(mbs, res.mb)
				p50s = append(p50s, res.p50)
				p99s = append(p99s, res.p99)
				maxs = append(maxs, res.maxUs)
			}
			lat := wl == "pingpong" && status == "ok"
			if *csv {
				base := "go"
				if *sel && wl != "pingpong" {
					base = "go-select"
				}
				line := fmt.Sprintf("%s,inproc,%d,%d,%d,%d,%s,%d", wl, size, n, s, r, base, *repeat)
				if status == "ok" {
					line += fmt.Sprintf(",%.1f,%.3f", median(rates), median(mbs))
				} else {
					line += ",,"
				}
				if lat {
					line += fmt.Sprintf(",%.1f,%.1f,%.1f", median(p50s), median(p99s), median(maxs))
				} else {
					line += ",,,"
				}
				fmt.Printf("%s,\"%s\"\n", line, strings.ReplaceAll(status, "\"", "\"\""))
			} else {
				p := []string{"-", "-", "-"}
				if lat {
					p = []string{fmt.Sprintf("%.1f", median(p50s)), fmt.Sprintf("%.1f", median(p99s)),
						fmt.Sprintf("%.1f", median(maxs))}
				}
				rate, mb := "-", "-"
				if status == "ok" {
					rate, mb = fmtRate(median(rates)), fmt.Sprintf("%.2f", median(mbs))
				}
				fmt.Printf("%-9s %7d %7d %3d %3d | %10s %10s %8s %8s %8s  %s\n", wl, size, n, s, r,
					rate, mb, p[0], p[1], p[2], status)
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}
