package emulator

import (
	"encoding/json"
	"fmt"
	"time"
)

// FaultMode selects what a Fault does.
type FaultMode string

const (
	FaultNone     FaultMode = ""
	FaultDown     FaultMode = "down"     // HTTP 503, JSON header isSuccessful=false
	FaultReset    FaultMode = "reset"    // hijack and close the connection without answering
	FaultSlow     FaultMode = "slow"     // wait Fault.Delay (or until the client gives up) before answering normally
	FaultFlaky    FaultMode = "flaky"    // the next Fault.Count matching requests get HTTP 500, later ones answer normally
	FaultTooMany  FaultMode = "429"      // HTTP 429 with Retry-After: Fault.RetryAfter seconds
	FaultGarbage  FaultMode = "garbage"  // HTTP 200, Content-Type application/json, body not JSON
	FaultBadPEM   FaultMode = "badpem"   // file downloads: HTTP 200 octet-stream, body not PEM
	FaultMismatch FaultMode = "mismatch" // file downloads: valid PEM whose key does not match the leaf
	FaultResult   FaultMode = "result"   // HTTP 200 JSON with isSuccessful=false and Fault.ResultCode
	FaultRotating FaultMode = "rotating" // every file download first rotates the certificate
	FaultHuge     FaultMode = "huge"     // file downloads: a valid-looking PEM body larger than 1 MiB
)

// Fault targets.
const (
	TargetAll   = ""
	TargetToken = "token"
	TargetList  = "list"
	TargetFiles = "files"
)

// Fault is an injected upstream failure. It applies to non-admin requests
// whose kind matches Target ("" = every non-admin request, or "token",
// "list", "files"); the file-download modes (badpem, mismatch, rotating,
// huge) apply only to downloads of a certificate that exists and has a file.
//
// Count > 0 limits any mode to the next Count matching requests (the fault
// then stops applying); Count = 0 means every matching request.
type Fault struct {
	Mode       FaultMode     `json:"mode"`
	Target     string        `json:"target"`
	Delay      time.Duration `json:"delay"` // JSON: a Go duration string such as "2s"
	Count      int           `json:"count"`
	RetryAfter int           `json:"retry_after"` // seconds; 429 sends 1 when this is not positive
	ResultCode int           `json:"result_code"` // for "result": one of 52000..52008
}

type faultJSON struct {
	Mode       FaultMode       `json:"mode"`
	Target     string          `json:"target"`
	Delay      json.RawMessage `json:"delay,omitempty"`
	Count      int             `json:"count"`
	RetryAfter int             `json:"retry_after"`
	ResultCode int             `json:"result_code"`
}

// MarshalJSON writes Delay as a Go duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	d, _ := json.Marshal(f.Delay.String())
	return json.Marshal(faultJSON{
		Mode: f.Mode, Target: f.Target, Delay: d, Count: f.Count,
		RetryAfter: f.RetryAfter, ResultCode: f.ResultCode,
	})
}

// UnmarshalJSON reads Delay as a Go duration string ("250ms", "2s"); a bare
// number is taken as nanoseconds, like time.Duration's default encoding.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	d, err := parseJSONDuration(j.Delay)
	if err != nil {
		return fmt.Errorf("fault delay: %w", err)
	}
	*f = Fault{Mode: j.Mode, Target: j.Target, Delay: d, Count: j.Count, RetryAfter: j.RetryAfter, ResultCode: j.ResultCode}
	return nil
}

func parseJSONDuration(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return 0, nil
		}
		return time.ParseDuration(s)
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("want a duration string such as \"2s\", got %s", raw)
	}
	return time.Duration(n), nil
}

// Validate reports whether the fault is one the emulator understands.
func (f Fault) Validate() error {
	switch f.Mode {
	case FaultNone, FaultDown, FaultReset, FaultSlow, FaultFlaky, FaultTooMany, FaultGarbage,
		FaultBadPEM, FaultMismatch, FaultRotating, FaultHuge:
	case FaultResult:
		if _, ok := ResultMessages[f.ResultCode]; !ok {
			return fmt.Errorf("fault result_code must be one of 52000..52008, got %d", f.ResultCode)
		}
	default:
		return fmt.Errorf("unknown fault mode %q", f.Mode)
	}
	switch f.Target {
	case TargetAll, TargetToken, TargetList, TargetFiles:
	default:
		return fmt.Errorf("unknown fault target %q (want \"\", token, list or files)", f.Target)
	}
	if f.Delay < 0 || f.Count < 0 || f.RetryAfter < 0 {
		return fmt.Errorf("fault delay, count and retry_after must not be negative")
	}
	return nil
}

// fileOnly reports whether the mode only concerns file downloads.
func (m FaultMode) fileOnly() bool {
	switch m {
	case FaultBadPEM, FaultMismatch, FaultRotating, FaultHuge:
		return true
	}
	return false
}

// SetFault injects a fault (replacing any other); see Fault.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault, s.faultLeft = f, f.Count
}

// ClearFault removes the fault.
func (s *Server) ClearFault() { s.SetFault(Fault{}) }

// CurrentFault returns the fault and, when its Count is positive, how many
// matching requests it still applies to.
func (s *Server) CurrentFault() (Fault, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault, s.faultLeft
}

// takeFault returns the fault to apply to a request of the given kind, if
// any, using up one of its Count.
func (s *Server) takeFault(kind string, file bool) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fault
	if f.Mode == FaultNone || f.Mode.fileOnly() != file {
		return Fault{}, false
	}
	if f.Target != TargetAll && f.Target != kind {
		return Fault{}, false
	}
	if f.Count > 0 {
		if s.faultLeft <= 0 {
			return Fault{}, false
		}
		s.faultLeft--
	}
	return f, true
}
