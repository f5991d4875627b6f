package integration

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// The chaos checker. It knows the contract, not the engine: it reads the
// history of what the clients asked and were answered (every operation
// with its start, end, node and answer), what the emulator counted, what
// each node's log says it ran, and the final state, and holds them to
// these invariants (CONTRACT.md, "Lifecycle, outages and NHN's cost" and
// "Caching"):
//
//	C1 nothing after a delete: "when DELETE nhncert/config returns, nothing
//	   cached under the old config is in storage or can be served": a read
//	   that starts after a delete returned and ends before the next config
//	   write starts (its first attempt: one that timed out may have been
//	   applied) serves no certificate; after the last delete, once raft
//	   caught up, no storage key of the mount (sys/raw) holds a cached copy
//	   or the config.
//	C2 no old credentials after a delete: "no request to NHN that carries
//	   them, or a token issued for them, starts after the delete returns":
//	   the emulator counts no token, list or file request between a
//	   delete's return (plus the loopback's transit, inFlightGrace) and the
//	   next config write's start.
//	C3 no invented file: every certificate served was NHN's file for that
//	   name (a serial the emulator held for it at some moment up to the
//	   read's end).
//	C4 no storm: "a certificate that a download confirmed is not
//	   downloaded again before it is due": the cold certificates (read
//	   once after each config write, never rotated, cache_ttl far away)
//	   are downloaded by the engine on its own at most once between two
//	   such reads (the download that confirms a copy read before a list),
//	   leader changes included; the rest are client reads'. A download
//	   counts when NHN answered it with the file: one its client gave up
//	   on (NHN slow, the run cancelled) confirmed nothing.
//	C5 one refresh per interval across the cluster: "only the active node
//	   runs the background refresh": no run starts on a node while another
//	   node is seen active on both sides of it, and no two runs start
//	   closer than half the interval (a config write re-plans a run to at
//	   least half the interval away).
//	C6 renewals reach every node: a list-visible renewal is served by every
//	   node within refresh_interval x 1.1 + the election + 5 s (time the
//	   config was deleted excused); near an NHN outage, whose failed runs
//	   back off, within 5 s of the end of the first background run after
//	   it that refreshed every certificate.
//	C7 bounded: each plugin process's resident memory and threads stay
//	   under chaosMaxRSS and chaosMaxThreads; a plugin process whose Vault
//	   was killed exits within orphanBound.

const (
	inFlightGrace   = 300 * time.Millisecond
	chaosMaxRSS     = 512 << 20
	chaosMaxThreads = 256
	orphanBound     = 1500 * time.Millisecond
)

// chaosOp is one client operation of the history.
type chaosOp struct {
	actor, kind, node, name string
	start, end              time.Time
	status                  int // HTTP status; 0: transport error
	serial                  string
	stale, refresh          bool
	err                     string
}

// served reports whether the op served a certificate.
func (o chaosOp) served() bool { return o.kind == "read" && o.status == 200 && o.serial != "" }

// statsSample is the emulator's counters at one moment.
type statsSample struct {
	at           time.Time
	calls        int64 // token + list + file requests
	coldFiles    int64
	coldByName   map[string]int64
	filesTotal   int64
	listCalls    int64
	tokenIssued  int64
	authRejected int64
}

// leaderObs is one look at a node's sys/leader.
type leaderObs struct {
	at     time.Time
	node   string
	isSelf bool
	ok     bool
}

// configWindow is a time the config was deleted: from the delete's return
// to the next write's start (zero: to the end of the run).
type configWindow struct{ from, to time.Time }

// renewal is a list-visible rotation made by the renewal actor.
type renewal struct {
	name, serial string
	at, visible  time.Time                // the renewal actor's call began; it returned (NHN's list shows it)
	reached      map[string]time.Duration // node -> delay until it served serial
}

// nemesisEvent is one fault the nemesis injected.
type nemesisEvent struct {
	kind, node string
	start, end time.Time
	elected    time.Duration // kill/pause of the active node: until a new active node was seen
	downloads  int64         // file downloads in the 20 s after the new active node
	explained  int           // reads then that download whatever the cache holds (after a config write, refresh=true)
	note       string
}

// history is everything the checker reads. Actors append under mu.
type history struct {
	mu        sync.Mutex
	ops       []chaosOp
	stats     []statsSample
	leaders   []leaderObs
	deleted   []configWindow
	renewals  []*renewal
	nemeses   []*nemesisEvent
	outages   []configWindow // NHN down, slow or lossy
	serials   map[string][]serialAt
	rss       map[int]procPeak // plugin pid -> peak
	orphans   []string         // orphaned plugin processes that outlived orphanBound
	coldNames map[string]bool
}

type serialAt struct {
	serial string
	at     time.Time
}

type procPeak struct {
	node           string
	rss, threads   int64
	first, samples int64
}

func newHistory() *history {
	return &history{serials: map[string][]serialAt{}, rss: map[int]procPeak{}, coldNames: map[string]bool{}}
}

func (h *history) add(op chaosOp) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

func (h *history) held(name, serial string, at time.Time) {
	h.mu.Lock()
	h.serials[name] = append(h.serials[name], serialAt{serial, at})
	h.mu.Unlock()
}

// refreshRun is one background run a node's log reports: its start and,
// when the log says how it ended, its end and whether every certificate
// was refreshed (ok).
type refreshRun struct {
	node    string
	at, end time.Time
	ok      bool
}

// refreshRuns reads a node's log (hclog's timestamp first): the
// "background refresh starting" lines, each ended by the next "background
// refresh done" (ok when it says failed=0) or "background refresh failed"
// line; a run whose plugin was killed has no end.
func refreshRuns(node, logPath string) []refreshRun {
	f, err := os.Open(logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []refreshRun
	open := -1
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		starting := strings.Contains(line, "background refresh starting")
		done := strings.Contains(line, "background refresh done")
		failed := strings.Contains(line, "background refresh failed")
		if !starting && !done && !failed {
			continue
		}
		ts, _, _ := strings.Cut(line, " ")
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", ts)
		if err != nil {
			continue
		}
		switch {
		case starting:
			out = append(out, refreshRun{node: node, at: at})
			open = len(out) - 1
		case open >= 0:
			out[open].end, out[open].ok = at, done && strings.Contains(line, "failed=0")
			open = -1
		}
	}
	return out
}

// firstCleanRun is the first run (runs sorted by start) that started
// after at and refreshed every certificate, or nil.
func firstCleanRun(runs []refreshRun, at time.Time) *refreshRun {
	for i := range runs {
		if r := &runs[i]; r.ok && r.at.After(at) {
			return r
		}
	}
	return nil
}

// check runs C1-C7 and returns the violations, and a summary for the log.
func (h *history) check(interval time.Duration, runs []refreshRun) (violations []string, summary []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	bad := func(f string, a ...any) { violations = append(violations, fmt.Sprintf(f, a...)) }
	c6Plain, c6Near := 0, 0
	note := func(f string, a ...any) { summary = append(summary, fmt.Sprintf(f, a...)) }

	// C1 and C2.
	for _, w := range h.deleted {
		to := w.to
		if to.IsZero() {
			to = time.Now()
		}
		for _, o := range h.ops {
			if o.served() && o.start.After(w.from) && o.end.Before(to) {
				bad("C1: %s on %s served %q (serial %s) in [%s, %s], after the config delete returned at %s",
					o.kind, o.node, o.name, o.serial, o.start.Format(tsFmt), o.end.Format(tsFmt), w.from.Format(tsFmt))
			}
		}
		var first, last *statsSample
		for i := range h.stats {
			s := &h.stats[i]
			if s.at.After(w.from.Add(inFlightGrace)) && s.at.Before(to) {
				if first == nil {
					first = s
				}
				last = s
			}
		}
		if first != nil && last != nil && last.calls > first.calls {
			bad("C2: %d requests reached NHN between %s and %s, after the config delete returned at %s",
				last.calls-first.calls, first.at.Format(tsFmt), last.at.Format(tsFmt), w.from.Format(tsFmt))
		}
	}

	// C3.
	for _, o := range h.ops {
		if !o.served() {
			continue
		}
		ok := false
		for _, s := range h.serials[o.name] {
			if s.serial == o.serial && !s.at.After(o.end) {
				ok = true
				break
			}
		}
		if !ok {
			bad("C3: %s on %s served %q with serial %s, never NHN's file for that name before %s", o.kind, o.node, o.name, o.serial, o.end.Format(tsFmt))
		}
	}

	// C4: per cold certificate, the downloads no client read of it
	// explains (a sampled window's downloads beyond the reads that
	// overlapped it) between two reads by the config actor (each config
	// write drops or keeps the cache): at most one, the download that
	// confirms a copy read before the engine listed NHN.
	coldReads := map[string][]chaosOp{}
	for _, o := range h.ops {
		if h.coldNames[o.name] && o.kind == "read" {
			coldReads[o.name] = append(coldReads[o.name], o)
		}
	}
	for name := range h.coldNames {
		unexplained, epoch := int64(0), time.Time{}
		for i := 1; i < len(h.stats); i++ {
			a, b := h.stats[i-1], h.stats[i]
			reads := int64(0)
			for _, o := range coldReads[name] {
				if o.actor == "config" && o.start.After(a.at) && o.start.Before(b.at) {
					unexplained, epoch = 0, o.start
				}
				if o.start.Before(b.at) && o.end.After(a.at) {
					reads++
				}
			}
			// A read's download is tried up to nhn.MaxAttempts times
			// while NHN fails.
			if d := b.coldByName[name] - a.coldByName[name] - reads*nhn.MaxAttempts; d > 0 {
				unexplained += d
				if unexplained > 1 {
					bad("C4: %q downloaded %d times without a client read in [%s, %s] since the config actor read it at %s",
						name, unexplained, a.at.Format(tsFmt), b.at.Format(tsFmt), epoch.Format(tsFmt))
					unexplained = 0
				}
			}
		}
	}
	// Downloads in the 20 s after each new active node.
	for _, n := range h.nemeses {
		if n.elected == 0 {
			continue
		}
		from := n.start.Add(n.elected)
		n.downloads = h.filesAt(from.Add(20*time.Second)) - h.filesAt(from)
		for _, o := range h.ops {
			if o.kind == "read" && (o.actor == "config" || o.refresh) && o.start.Before(from.Add(20*time.Second)) && o.end.After(from) {
				n.explained++
			}
		}
	}

	// C5.
	sort.Slice(runs, func(i, j int) bool { return runs[i].at.Before(runs[j].at) })
	perNode := map[string]int{}
	for i, r := range runs {
		perNode[r.node]++
		if other := h.activeOtherThan(r.node, r.at); other != "" {
			bad("C5: %s started a background run at %s while %s was the active node", r.node, r.at.Format(tsFmt), other)
		}
		if i > 0 && r.at.Sub(runs[i-1].at) < interval*45/100 {
			bad("C5: background runs %s (%s) and %s (%s) %s apart, under half of refresh_interval %s",
				runs[i-1].node, runs[i-1].at.Format(tsFmt), r.node, r.at.Format(tsFmt), r.at.Sub(runs[i-1].at).Round(time.Millisecond), interval)
		}
	}
	note("background runs per node: %v", perNode)

	// C6. "A renewal that NHN's list shows ... is served after the
	// engine's next background run": within refresh_interval x 1.1 + 5 s
	// (plus the time the config was deleted or a nemesis was at work).
	// Near an NHN outage, failed runs back off (2x, 4x the interval): the
	// renewal is then held to the first run after it that refreshed every
	// certificate, + 5 s; with no such run, it must still have reached
	// every node.
	for i, r := range h.renewals {
		bound := interval*11/10 + 5*time.Second + h.excused(r.at, r.at.Add(interval*3))
		how := "plain"
		near := h.nearOutage(r.at.Add(-4*interval), r.at.Add(bound))
		if near {
			how = "near an NHN outage, held to the first clean run after it"
			if run := firstCleanRun(runs, r.visible); run != nil {
				end := run.end.Add(5 * time.Second)
				bound = max(bound, end.Sub(r.at)+h.excused(r.at, end))
				how += " (" + run.node + ", " + run.at.Format(tsFmt) + ".." + run.end.Format(tsFmt) + ")"
			} else {
				bound = 4*interval + 60*time.Second // the watch's own bound: it must have reached every node
				how += " (none: held to the watch's bound)"
			}
		}
		// A later renewal of the same name within the bound may be served
		// first: the watch looks for this one's serial only.
		superseded := false
		for _, later := range h.renewals[i+1:] {
			if later.name == r.name && later.at.Before(r.at.Add(bound)) {
				superseded = true
			}
		}
		if superseded {
			note("renewal %q at %s: superseded by a later renewal within the bound (delays %v)", r.name, r.at.Format(tsFmt), r.reached)
			continue
		}
		if near {
			c6Near++
		} else {
			c6Plain++
		}
		var ds []string
		for node, d := range r.reached {
			ds = append(ds, fmt.Sprintf("%s=%s", node, d.Round(100*time.Millisecond)))
			if d < 0 || d > bound {
				bad("C6: the renewal of %q at %s reached %s after %s (bound %s, %s)", r.name, r.at.Format(tsFmt), node, d.Round(100*time.Millisecond), bound.Round(100*time.Millisecond), how)
			}
		}
		sort.Strings(ds)
		note("renewal %q at %s: delays %s (bound %s, %s)", r.name, r.at.Format(tsFmt), strings.Join(ds, " "), bound.Round(100*time.Millisecond), how)
	}
	note("C6: %d renewals held to the plain bound, %d near an NHN outage held to the first clean run after them", c6Plain, c6Near)

	// Answers per node and status (0: no answer), e.g. the 503s of a node
	// that must confirm it is still the active one after a pause.
	answers := map[string]map[int]int{}
	for _, o := range h.ops {
		if answers[o.node] == nil {
			answers[o.node] = map[int]int{}
		}
		answers[o.node][o.status]++
	}
	for _, node := range []string{"node1", "node2", "node3"} {
		note("answers of %s by status: %v", node, answers[node])
	}

	// C7.
	for pid, p := range h.rss {
		note("plugin pid %d on %s: peak RSS %.1f MiB, first %.1f MiB, peak threads %d, %d samples", pid, p.node, float64(p.rss)/(1<<20), float64(p.first)/(1<<20), p.threads, p.samples)
		if p.rss > chaosMaxRSS || p.threads > chaosMaxThreads {
			bad("C7: plugin pid %d on %s peaked at %d MiB, %d threads", pid, p.node, p.rss>>20, p.threads)
		}
	}
	for _, o := range h.orphans {
		bad("C7: %s", o)
	}
	for _, n := range h.nemeses {
		note("nemesis %-13s %-6s %s..%s new active after %s, downloads in the 20 s after: %d (reads that download anyway: %d) %s", n.kind, n.node, n.start.Format(tsFmt), n.end.Format(tsFmt),
			n.elected.Round(100*time.Millisecond), n.downloads, n.explained, n.note)
	}
	return violations, summary
}

const tsFmt = "15:04:05.000"

// filesAt is the emulator's download count at the last sample before at.
func (h *history) filesAt(at time.Time) int64 {
	var n int64
	for _, s := range h.stats {
		if s.at.After(at) {
			break
		}
		n = s.filesTotal
	}
	return n
}

// activeOtherThan names a node other than node that was seen active on
// both sides of at (two consecutive looks, at most 1.5 s apart, that both
// said it was active), or "".
func (h *history) activeOtherThan(node string, at time.Time) string {
	last := map[string]leaderObs{}
	for _, o := range h.leaders {
		if o.at.After(at) {
			if p, ok := last[o.node]; ok && o.node != node && p.isSelf && o.isSelf && o.at.Sub(p.at) <= 1500*time.Millisecond {
				return o.node
			}
			continue
		}
		if o.ok {
			last[o.node] = o
		}
	}
	return ""
}

// nearOutage reports whether an NHN outage overlapped [from, to].
func (h *history) nearOutage(from, to time.Time) bool {
	for _, w := range h.outages {
		if w.from.Before(to) && (w.to.IsZero() || w.to.After(from)) {
			return true
		}
	}
	return false
}

// excused is how much of [from, to] the config was deleted or a nemesis
// was at work (the election and the restart it causes).
func (h *history) excused(from, to time.Time) time.Duration {
	var d time.Duration
	overlap := func(a, b time.Time) {
		if b.IsZero() {
			b = to
		}
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		if b.After(a) {
			d += b.Sub(a)
		}
	}
	for _, w := range h.deleted {
		overlap(w.from, w.to)
	}
	for _, n := range h.nemeses {
		overlap(n.start, n.end.Add(n.elected))
	}
	return d
}
