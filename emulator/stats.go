package emulator

// Stats counts what the emulator was asked.
type Stats struct {
	TokenIssued     int64            `json:"token_issued"`
	TokenDenied     int64            `json:"token_denied"`       // bad credentials at the token service
	TokenCalls      int64            `json:"token_calls"`        // token requests that reached the handler (even when a fault answered)
	ListCalls       int64            `json:"list_calls"`         // certmanager list requests that reached the handler (even when a fault answered)
	FileCalls       int64            `json:"file_calls"`         // certmanager file requests that reached the handler (even when a fault answered)
	FileCallsByName map[string]int64 `json:"file_calls_by_name"` // FileCalls by name, per requested (decoded) name
	FileCallsByID   map[string]int64 `json:"file_calls_by_id"`   // FileCalls by certificateId, per requested ID segment
	// FilesServedByName counts the file answers sent whole (200, the
	// file), by certificate name (also for a download by certificateId):
	// a request its client gave up on (while the emulator was slow) or a
	// fault answered is not among them.
	FilesServedByName map[string]int64 `json:"files_served_by_name"`
	AuthRejected      int64            `json:"auth_rejected"` // certmanager requests refused for auth (token, key headers, unknown appKey)
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.FileCallsByName = make(map[string]int64, len(s.stats.FileCallsByName))
	for k, v := range s.stats.FileCallsByName {
		st.FileCallsByName[k] = v
	}
	st.FileCallsByID = make(map[string]int64, len(s.stats.FileCallsByID))
	for k, v := range s.stats.FileCallsByID {
		st.FileCallsByID[k] = v
	}
	st.FilesServedByName = make(map[string]int64, len(s.stats.FilesServedByName))
	for k, v := range s.stats.FilesServedByName {
		st.FilesServedByName[k] = v
	}
	return st
}

// ResetStats zeroes the counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = newStats()
}

func newStats() Stats {
	return Stats{FileCallsByName: map[string]int64{}, FileCallsByID: map[string]int64{}, FilesServedByName: map[string]int64{}}
}
