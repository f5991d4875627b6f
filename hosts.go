package nhncert

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
	"github.com/nhncert/vault-plugin-secrets-nhncert/hostmatch"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
)

// hosts/<hostname>: the best certificate NHN holds for a host. The rules
// (host names, coverage, the choice) are hostmatch's; this file finds the
// candidates without a download storm:
//
//   - NHN's list decides which certificates may cover the host. A v1.3
//     entry's domains narrow them before anything is downloaded; an entry
//     without domains (every v1.1 one) is known by the DNS names of its
//     file, learnt once per file and kept with the cached copy (the cache
//     index, and dns_names in storage). Files not known yet are read by a
//     learning pass (hosts_learn.go), paced like the background refresh.
//   - A certificate the list shows expired is never downloaded.
//   - Each candidate is then read through the cache like any certificate,
//     and its own leaf decides: it must cover the host and be valid now.
//
// The list is the background refresh's: a lookup lists NHN itself only
// when no complete list is known, when the one known is older than the
// rotation period and no run is scheduled on this node (refresh off, a
// performance standby), or on refresh=true.

// hostChoice is a lookup's answer: the certificate served and what NHN
// calls it.
type hostChoice struct {
	served *servedCert
	name   string
	id     int64
	hasID  bool
	// listDue is when this node next lists NHN for hosts (the background
	// run's check, or when a lookup would list again): ttl counts to it.
	listDue time.Time
}

// hostCandidates is what the list says of a host.
type hostCandidates struct {
	// names may cover the host and are not expired by the list; listExpired
	// would cover it but the list shows them expired; unknown have no
	// domains and no file read yet (they need learning).
	names, listExpired, unknown []string
}

// hostCertificate finds the best certificate for host (normalized).
func (b *backend) hostCertificate(ctx context.Context, req *logical.Request, host string, refresh bool) (*hostChoice, *logical.Response, error) {
	b.rememberMountPath(req)
	var choice *hostChoice
	resp, err := b.readWithSession(ctx, req.Storage, func(sess *session) (readOutcome, error) {
		c, outcome, err := b.chooseHost(ctx, req.Storage, sess, host, refresh)
		choice = c
		return outcome, err
	}, hostError)
	if resp != nil || err != nil {
		return nil, resp, err
	}
	return choice, nil, nil
}

func (b *backend) chooseHost(ctx context.Context, s logical.Storage, sess *session, host string, refresh bool) (*hostChoice, readOutcome, error) {
	gen := sess.cfg.Generation
	wild := sess.cfg.hostsWildcards()
	var warnings []string
	listDue, warn, err := b.hostsList(ctx, sess, refresh)
	if err != nil {
		return nil, readError, err
	}
	if warn != "" {
		warnings = append(warnings, warn)
	}
	hc := b.hostCandidatesOf(gen, host, wild)
	// readErrs are the candidates, or the files to learn, that could not
	// be read: when no certificate is left to serve, the first is the
	// answer, not a 404 that would count them as covering nothing.
	var readErrs []error
	if len(hc.unknown) > 0 {
		w, failed, err := b.learnAll(ctx, s, sess, host, &hc)
		if err != nil {
			return nil, readError, err
		}
		warnings = append(warnings, w...)
		readErrs = append(readErrs, failed...)
	}

	outcome := readHit
	var cands []hostmatch.Candidate
	entries := map[string]*servedCert{}
	outcomes := map[string]readOutcome{}
	for _, name := range hc.names {
		e, w, o, err := b.cache.lookup(ctx, s, sess, name, false)
		switch {
		case errors.Is(err, errConfigChanged):
			return nil, readError, err
		case errors.Is(err, errCertNotFound):
			continue // deleted since the list
		case err != nil:
			readErrs = append(readErrs, err)
			warnings = append(warnings, fmt.Sprintf("candidate %s could not be read and was left out: %v", safetext.Quote(name), err))
			continue
		}
		if o == readMiss {
			outcome = readMiss
		}
		if !hostmatch.CoversAny(e.bundle.Leaf.DNSNames, host, wild) {
			continue
		}
		entries[name] = &servedCert{sess: sess, entry: e, warnings: w}
		outcomes[name] = o
		cands = append(cands, b.hostCandidate(gen, e))
	}
	best := hostmatch.Choose(cands, time.Now())
	if best.Best >= 0 && refresh {
		// refresh=true downloads the chosen certificate again; what NHN
		// sends now decides again among the same candidates.
		name := cands[best.Best].Name
		e, w, o, err := b.cache.lookup(ctx, s, sess, name, true)
		switch {
		case errors.Is(err, errConfigChanged):
			return nil, readError, err
		case err != nil && !errors.Is(err, errCertNotFound):
			return nil, readError, err
		}
		outcome = readMiss
		i := best.Best
		cands = slices.Delete(cands, i, i+1)
		delete(entries, name)
		if err == nil && hostmatch.CoversAny(e.bundle.Leaf.DNSNames, host, wild) {
			entries[name] = &servedCert{sess: sess, entry: e, warnings: w}
			outcomes[name] = o
			cands = append(cands, b.hostCandidate(gen, e))
		}
		best = hostmatch.Choose(cands, time.Now())
	}
	if best.Best < 0 {
		if len(readErrs) > 0 {
			return nil, readError, readErrs[0]
		}
		return nil, readError, &noHostCertError{host: host, considered: len(cands) + len(hc.listExpired),
			expired: best.Expired + len(hc.listExpired), notYetValid: best.NotYetValid, exactOnly: !wild}
	}
	c := cands[best.Best]
	sc := entries[c.Name]
	if outcomes[c.Name] == readStale {
		outcome = readStale
	}
	sc.warnings = append(slices.Clone(sc.warnings), warnings...)
	return &hostChoice{served: sc, name: c.Name, id: c.ID, hasID: c.HasID, listDue: listDue}, outcome, nil
}

// learnAll learns the files hc.unknown names (hosts_learn.go) until every
// one is known or failed, within hostsLearnWait and maxLearnPasses passes,
// and sorts the list for host again. A file that could not be read is left
// out of the answer with a warning, and its error returned (in name order);
// the next lookup asks for it again.
func (b *backend) learnAll(ctx context.Context, s logical.Storage, sess *session, host string, hc *hostCandidates) ([]string, []error, error) {
	gen, wild := sess.cfg.Generation, sess.cfg.hostsWildcards()
	deadline := time.Now().Add(hostsLearnWait)
	// After a restart or a leader change the names are in storage, with
	// the cached copies: read once per node, as the background refresh
	// does, before any file is.
	if !b.cache.index.isLoaded() {
		if err := b.cache.loadIndex(ctx, s, gen); err != nil && !errors.Is(err, errConfigChanged) {
			b.Logger().Warn("cannot read the cached certificates from storage", "error", err)
		}
		if *hc = b.hostCandidatesOf(gen, host, wild); len(hc.unknown) == 0 {
			return nil, nil, nil
		}
	}
	failed := map[string]error{}
	todo := hc.unknown
	for pass := 1; ; pass++ {
		f, err := b.learnHostNames(ctx, s, sess, todo, deadline)
		if err != nil {
			return nil, nil, err
		}
		if !b.cache.gate.alive(gen) {
			return nil, nil, errConfigChanged
		}
		maps.Copy(failed, f)
		*hc = b.hostCandidatesOf(gen, host, wild)
		todo = slices.DeleteFunc(slices.Clone(hc.unknown), func(n string) bool { return failed[n] != nil })
		if len(todo) == 0 || pass == maxLearnPasses {
			break
		}
	}
	var warnings []string
	var errs []error
	for _, name := range hc.unknown {
		switch ferr := failed[name]; {
		case ferr == nil:
			warnings = append(warnings, fmt.Sprintf("the host names of certificate %s could not be learnt; it was left out", safetext.Quote(name)))
		case !errors.Is(ferr, errCertNotFound):
			warnings = append(warnings, fmt.Sprintf("certificate %s could not be read to learn its host names and was left out: %v", safetext.Quote(name), ferr))
			errs = append(errs, ferr)
		}
	}
	return warnings, errs, nil
}

// maxLearnPasses bounds the learning passes of one lookup.
const maxLearnPasses = 3

// hostCandidate is a cached copy as the choice sees it: its leaf's dates
// and the certificateId NHN lists for it now.
func (b *backend) hostCandidate(generation string, e *cacheEntry) hostmatch.Candidate {
	c := hostmatch.Candidate{Name: e.name, NotBefore: e.bundle.Leaf.NotBefore, NotAfter: e.bundle.Leaf.NotAfter}
	info := b.catalog.lookup(generation, e.name)
	if info == nil {
		info = e.listedAtDownload.Load()
	}
	c.ID, c.HasID = info.CertificateID()
	return c
}

// hostCandidatesOf sorts NHN's latest list for host: see hostCandidates.
// What it finds is kept per host until the catalog changes (every list),
// unless a file still had to be learnt.
func (b *backend) hostCandidatesOf(generation, host string, wild bool) hostCandidates {
	version, _ := b.catalog.listState(generation)
	key := hostMemoKey(generation, host, wild)
	if m, ok := b.hosts.memo.Get(key); ok && m.version == version {
		return m.cands
	}
	infos, _ := b.catalog.snapshot(generation)
	slices.SortFunc(infos, func(a, b *certInfo) int { return strings.Compare(a.Name, b.Name) })
	now := b.now()
	var hc hostCandidates
	for _, info := range infos {
		days, dated := expiresInDays(info.ExpirationDate, now)
		listExpired := dated && days < 0
		names := info.Domains
		if len(names) == 0 {
			learnt, listed, ok := b.cache.index.learnt(info.Name, generation)
			switch {
			case ok && (listed == nil || !describesAnotherFile(info, listed)):
				names = learnt
			case listExpired:
				continue // never downloaded to find out
			default:
				hc.unknown = append(hc.unknown, info.Name)
				continue
			}
		}
		if !hostmatch.CoversAny(names, host, wild) {
			continue
		}
		if listExpired {
			hc.listExpired = append(hc.listExpired, info.Name)
		} else {
			hc.names = append(hc.names, info.Name)
		}
	}
	if len(hc.unknown) == 0 {
		b.hosts.memo.Add(key, hostMemo{version: version, cands: hc})
	}
	return hc
}

// hostMemo is hostCandidatesOf's answer for one host and catalog version.
type hostMemo struct {
	version uint64
	cands   hostCandidates
}

// maxHostMemo bounds the hosts whose candidates are remembered.
const maxHostMemo = 4096

func hostMemoKey(generation, host string, wild bool) string {
	return fmt.Sprintf("%s\x00%s\x00%t", generation, host, wild)
}

// hostsList makes sure a complete list of NHN is known for the session's
// generation (see the top of this file). It returns when this node will
// next have listed NHN (ttl counts to it), and a warning when a list failed
// and an older one is used.
func (b *backend) hostsList(ctx context.Context, sess *session, refresh bool) (time.Time, string, error) {
	gen := sess.cfg.Generation
	period := rotationPeriod(sess.cfg)
	scheduled := b.refresher.nextCheck() // zero when no run is scheduled here
	_, at := b.catalog.listState(gen)
	var err error
	if refresh || at.IsZero() || (scheduled.IsZero() && time.Since(at) >= period) {
		err = b.listForHosts(ctx, sess, refresh)
		_, at = b.catalog.listState(gen)
	}
	if at.IsZero() || errors.Is(err, errConfigChanged) {
		return time.Time{}, "", err
	}
	due := scheduled
	if due.IsZero() {
		due = at.Add(period)
	}
	if err != nil {
		return due, fmt.Sprintf("listing NHN's certificates failed; the list of %s was used: %v", at.UTC().Format(time.RFC3339), err), nil
	}
	return due, "", nil
}

// listForHosts lists NHN once for every concurrent lookup (refresh=true
// lookups share a list of their own, begun after they asked), and records
// the list as the background run does.
func (b *backend) listForHosts(ctx context.Context, sess *session, refresh bool) error {
	gen := sess.cfg.Generation
	key := gen
	if refresh {
		key += "\x00refresh"
	}
	ch := b.hosts.listFlight.DoChan(key, func() (any, error) {
		wctx, done, ok := b.cache.gate.begin(context.WithoutCancel(ctx), gen)
		if !ok {
			return nil, errConfigChanged
		}
		defer done()
		all, err := sess.client.ListCertificates(wctx, "ALL")
		if err != nil {
			return nil, err
		}
		infos, _ := servable(all)
		b.recordList(gen, infos, "all")
		return nil, nil
	})
	select {
	case <-ctx.Done():
		return ctx.Err()
	case r := <-ch:
		return r.Err
	}
}

// noHostCertError is a host no valid certificate covers.
type noHostCertError struct {
	host                             string
	considered, expired, notYetValid int
	exactOnly                        bool
}

func (e *noHostCertError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no valid certificate in NHN Certificate Manager covers %s: %d candidate(s) considered", e.host, e.considered)
	if e.expired > 0 {
		fmt.Fprintf(&b, ", %d of them expired", e.expired)
	}
	if e.notYetValid > 0 {
		fmt.Fprintf(&b, ", %d of them not yet valid", e.notYetValid)
	}
	if e.exactOnly {
		b.WriteString(" (hosts_wildcards is false: only certificates that name the host exactly count)")
	}
	return b.String()
}

// hostError maps a lookup failure: no certificate is a 404 that says why,
// the rest as certs/<name> maps it.
func hostError(err error) error {
	var nh *noHostCertError
	var le *learningError
	switch {
	case errors.As(err, &nh):
		return logical.CodedError(http.StatusNotFound, nh.Error())
	case errors.As(err, &le):
		return logical.CodedError(http.StatusServiceUnavailable, le.Error())
	}
	return certError(err)
}

// leafNames are a parsed file's leaf DNS names, never nil (nil means "not
// known" to the index and in storage).
func leafNames(b *certfile.Bundle) []string {
	if b == nil || b.Leaf == nil {
		return nil
	}
	return append([]string{}, b.Leaf.DNSNames...)
}
