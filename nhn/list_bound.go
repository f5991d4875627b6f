package nhn

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// One list of NHN's certificates is bounded, and shared (CONTRACT: "NHN's
// answers for one list may add up to at most 64 MiB and 100,000
// certificates; past that the list is an error that names the bound, and
// nothing of it is kept. Concurrent lists with the same parameters share
// one walk of NHN's pages"). Without the bound, pages of up to 8 MiB and
// up to 10,000 of them made one list hold hundreds of MiB; without the
// sharing, each concurrent `vault list` walked NHN on its own.

const (
	maxListBytes = 64 << 20
	maxListCerts = 100_000
)

// listBound is the bound of one list.
type listBound struct{ bytes, certs int64 }

// ListBound is a lower bound of one list than the contract's (Config):
// the bytes of NHN's answers and the certificates they hold.
type ListBound struct{ Bytes, Certificates int64 }

// boundOf is the bound a client keeps: the contract's, lowered by lb.
func boundOf(lb ListBound) listBound {
	b := listBound{bytes: maxListBytes, certs: maxListCerts}
	if lb.Bytes > 0 && lb.Bytes < b.bytes {
		b.bytes = lb.Bytes
	}
	if lb.Certificates > 0 && lb.Certificates < b.certs {
		b.certs = lb.Certificates
	}
	return b
}

// listBudget is what one walk has spent of its bound.
type listBudget struct {
	mu           sync.Mutex
	bytes, certs int64
}

// errListBound is a list past its bound.
func errListBound(what string) *Error {
	return &Error{Op: "listing certificates", Message: "NHN's answers for one list exceed " + what + ", the bound of one list; nothing of it is kept"}
}

// spend adds a page to the walk's budget; claimed is the total count the
// first page announces (0 for the others), refused at once when over.
func (c *Client) spend(b *listBudget, a *listAnswer, claimed int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bytes += int64(a.size)
	b.certs += int64(len(a.Body.Data))
	switch {
	case b.bytes > c.listBound.bytes:
		if c.listBound.bytes%(1<<20) == 0 {
			return errListBound(fmt.Sprintf("%d MiB", c.listBound.bytes>>20))
		}
		return errListBound(fmt.Sprintf("%d bytes", c.listBound.bytes))
	case b.certs > c.listBound.certs || int64(claimed) > c.listBound.certs:
		return errListBound(fmt.Sprintf("%d certificates", c.listBound.certs))
	}
	return nil
}

// ListCertificates returns every certificate with the given status (ALL,
// EXPIRED or UNEXPIRED), across all pages, sorted by name, each name once.
// Concurrent calls with the same status share one walk, which outlives a
// caller who gives up (Close ends it); each caller gets its own slice.
func (c *Client) ListCertificates(ctx context.Context, status string) ([]Certificate, error) {
	ch := c.listFlight.DoChan(status, func() (any, error) {
		return c.walkList(context.WithoutCancel(ctx), status)
	})
	select {
	case <-ctx.Done():
		return nil, &Error{Op: "listing certificates", Message: "request cancelled"}
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return slices.Clone(r.Val.([]Certificate)), nil
	}
}
