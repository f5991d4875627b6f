package emulator

import (
	"crypto"
	"sync"
	"time"
)

const (
	dateLayout      = "2006-01-02"
	defaultTokenTTL = 24 * time.Hour
	minTokenTTL     = 60 * time.Second
	maxTokenTTL     = 86400 * time.Second
	day             = 24 * time.Hour
)

// Options configures a Server.
type Options struct {
	AppKey          string        // required on every certmanager path; others get HTTP 403
	AccessKeyID     string        // token service Basic user; v1.1 X-TC-AUTHENTICATION-ID
	SecretAccessKey string        // token service Basic password; v1.1 X-TC-AUTHENTICATION-SECRET
	TokenTTL        time.Duration // expires_in of issued tokens; default 24h; clamped to 60s..86400s, whole seconds
	MaxPageSize     int           // 0 = no cap; otherwise pageSize above it is clamped (body.pageSize reports what was used)
	Now             func() time.Time
	// Now defaults to time.Now; it is used for token expiry, the
	// expired/unexpired status filter, "today" and generated validity periods.
}

// Server is the emulator. Its zero value is not usable; call New. It is safe
// for concurrent use.
type Server struct {
	opts Options

	mu        sync.Mutex
	certs     map[string]*entry
	sorted    []string // sorted names; nil when stale
	lastID    int64    // the certificateId given last; IDs are never reused
	tokens    map[string]*tokenInfo
	fault     Fault
	faultLeft int
	latency   time.Duration
	stats     Stats
	// unlisted names are left out of every list while their files still
	// download (SetUnlisted): a truncated or glitching list.
	unlisted map[string]bool

	caMu       sync.Mutex // guards the lazily made shared material below
	cas        map[int]*CA
	seedKey    crypto.Signer
	seedKeyPEM []byte
	otherKeys  map[KeyType][]byte
}

// New makes a Server with no certificates.
func New(o Options) *Server {
	if o.TokenTTL == 0 {
		o.TokenTTL = defaultTokenTTL
	}
	o.TokenTTL = min(max(o.TokenTTL.Truncate(time.Second), minTokenTTL), maxTokenTTL)
	if o.MaxPageSize < 0 {
		o.MaxPageSize = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Server{
		opts:      o,
		certs:     map[string]*entry{},
		tokens:    map[string]*tokenInfo{},
		stats:     newStats(),
		cas:       map[int]*CA{},
		otherKeys: map[KeyType][]byte{},
	}
}

// Options returns the (defaulted) options the server runs with.
func (s *Server) Options() Options { return s.opts }

func (s *Server) now() time.Time { return s.opts.Now() }

func (s *Server) today() string { return s.now().UTC().Format(dateLayout) }
