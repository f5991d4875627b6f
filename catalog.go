package nhncert

import "sync"

// certInfo is one entry of NHN's certificate list.
type certInfo struct {
	Name               string   `json:"certificateName"`
	Authority          string   `json:"authority"`
	Domains            []string `json:"domains"`
	SignatureAlgorithm string   `json:"signatureAlgorithm"`
	FileCreationDate   string   `json:"fileCreationDate"`
	ExpirationDate     string   `json:"expirationDate"`
}

// describesAnotherFile reports whether the list now says something of the
// certificate that means its file changed since old was listed. NHN's list
// has dates only, so a file re-uploaded on the same day looks the same.
func (c *certInfo) describesAnotherFile(old *certInfo) bool {
	return c.FileCreationDate != old.FileCreationDate || c.ExpirationDate != old.ExpirationDate
}

// catalog remembers what NHN's latest list said of each certificate: the
// metadata path shows it, and the background refresh compares it with what
// was listed when a file was downloaded to notice rotations. It holds one
// entry per name NHN listed, of one config generation, no more.
type catalog struct {
	mu         sync.RWMutex
	generation string
	byName     map[string]*certInfo
}

// record stores a list's entries; a complete list (status ALL) replaces
// what was known, a filtered one adds to it.
func (l *catalog) record(generation string, infos []certInfo, complete bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if complete || l.generation != generation || l.byName == nil {
		l.byName = make(map[string]*certInfo, len(infos))
		l.generation = generation
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

func (l *catalog) clear() {
	l.mu.Lock()
	l.byName = nil
	l.generation = ""
	l.mu.Unlock()
}
