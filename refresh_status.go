package nhncert

import (
	"time"
)

// runReport is what one background run did, kept for the status path.
type runReport struct {
	started, finished time.Time
	stats             refreshStats
	err               error
	woken             bool // the config changed during the run
}

func (b *backend) recordRun(rep runReport) {
	b.refresher.mu.Lock()
	defer b.refresher.mu.Unlock()
	b.refresher.last = rep
}

func (b *backend) lastRunReport() runReport {
	b.refresher.mu.Lock()
	defer b.refresher.mu.Unlock()
	return b.refresher.last
}
