package nhncert

import (
	"sync"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// certInfo is one entry of NHN's certificate list (nhn.Certificate).
type certInfo = nhn.Certificate

// describesAnotherFile reports whether the list now says of c something
// that means its file changed since old was listed. NHN's list
// has dates only, so a file re-uploaded on the same day looks the same;
// a certificateId that changed means the certificate was deleted and
// registered again under the same name.
func describesAnotherFile(c, old *certInfo) bool {
	if id, ok := c.CertificateID(); ok {
		if oldID, ok := old.CertificateID(); ok && id != oldID {
			return true
		}
	}
	return c.FileCreationDate != old.FileCreationDate || c.ExpirationDate != old.ExpirationDate
}

// listedInfo returns what NHN's list says of a served entry's certificate:
// the latest list of its generation, else the list seen when it was
// downloaded; nil when no list has named it.
func (b *backend) listedInfo(e *cacheEntry) *certInfo {
	if info := b.catalog.lookup(e.generation, e.name); info != nil {
		return info
	}
	return e.listedAtDownload.Load()
}

// catalog remembers what NHN's latest list said of each certificate: the
// metadata path shows it, and the background refresh compares it with what
// was listed when a file was downloaded to notice rotations. It holds one
// entry per name NHN listed, of one config generation, no more.
type catalog struct {
	mu         sync.RWMutex
	generation string
	byName     map[string]*certInfo
	// completeAt is when the last complete list (status ALL) of the
	// generation was recorded; zero when none was. version counts the
	// records, so that what is derived from the catalog (hosts.go) knows
	// when to derive it again.
	completeAt time.Time
	version    uint64
}

// record stores a list's entries. A list says what NHN holds of its
// status filter now: a name an earlier list showed, that this list's
// filter covers (by the date that list gave it) and that this list no
// longer shows is gone, deleted in NHN or moved to the other status;
// names outside the filter stay as the last list of their status showed
// them (CONTRACT, metrics: "as far as the last list of each status
// showed"). today is the date (UTC, YYYY-MM-DD) the filter is read at,
// as NHN reads it: expired when expirationDate is before today.
func (l *catalog) record(generation string, infos []certInfo, status, today string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	complete := status == "all"
	if complete || l.generation != generation || l.byName == nil {
		if l.generation != generation {
			l.completeAt = time.Time{}
		}
		l.byName = make(map[string]*certInfo, len(infos))
		l.generation = generation
	}
	if complete {
		l.completeAt = time.Now()
	}
	l.version++
	listed := make(map[string]bool, len(infos))
	for i := range infos {
		listed[infos[i].Name] = true
	}
	for name, c := range l.byName {
		expired := c.ExpirationDate != "" && c.ExpirationDate < today
		if !listed[name] && (status == "expired") == expired {
			delete(l.byName, name)
		}
	}
	for i := range infos {
		c := infos[i]
		l.byName[c.Name] = &c
	}
}

// lookup returns what the latest list of generation said of name, or nil.
func (l *catalog) lookup(generation, name string) *certInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.generation != generation {
		return nil
	}
	return l.byName[name]
}

// snapshot returns the entries of generation's latest list, and false when
// no list of it is known.
func (l *catalog) snapshot(generation string) ([]*certInfo, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.generation != generation || l.byName == nil {
		return nil, false
	}
	out := make([]*certInfo, 0, len(l.byName))
	for _, c := range l.byName {
		out = append(out, c)
	}
	return out, true
}

func (l *catalog) clear() {
	l.mu.Lock()
	l.byName = nil
	l.generation = ""
	l.completeAt = time.Time{}
	l.version++
	l.mu.Unlock()
}

// listState returns the version of what the catalog holds and when the
// last complete list of generation was recorded (zero when none was).
func (l *catalog) listState(generation string) (version uint64, completeAt time.Time) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.generation != generation {
		return l.version, time.Time{}
	}
	return l.version, l.completeAt
}
