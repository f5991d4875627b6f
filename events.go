package nhncert

import (
	"context"
	"errors"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The Vault events this engine sends. Subscribing to them needs Vault
// Enterprise (Vault Community has no event subscription endpoint); where
// events are unavailable the engine carries on without them.
const (
	eventCertUpdated = "nhncert/certificate-updated"
	eventCertRemoved = "nhncert/certificate-removed"
)

// changeKind is what happened to a cached certificate.
type changeKind int

const (
	// certUpdated: a download brought a file other than the cached one.
	certUpdated changeKind = iota
	// certRemoved: NHN said a cached name no longer exists.
	certRemoved
)

// certChanged tells Vault's event bus that a certificate changed or is
// gone. The event holds the name and paths, never key material.
func (b *backend) certChanged(ctx context.Context, kind changeKind, name string) {
	typ, op := eventCertUpdated, "update"
	if kind == certRemoved {
		typ, op = eventCertRemoved, "delete"
	}
	path := b.eventMountPath() + "certs/" + name
	err := logical.SendEvent(ctx, b.Backend, typ,
		logical.EventMetadataPath, path,
		logical.EventMetadataDataPath, path,
		logical.EventMetadataOperation, op,
		logical.EventMetadataModified, "true",
		"name", name,
	)
	if err != nil && !errors.Is(err, framework.ErrNoEvents) {
		b.Logger().Debug("cannot send event", "type", typ, "name", logName(name), "error", err)
	}
}

// rememberMountPath keeps the path a request came in on ("nhncert/"): a
// plugin learns where it is mounted only from requests, and events name
// full paths.
func (b *backend) rememberMountPath(req *logical.Request) {
	if p := b.mountPath.Load(); p == nil || *p != req.MountPoint {
		mp := req.MountPoint
		b.mountPath.Store(&mp)
	}
}

// eventMountPath is the last mount path a request came in on, or "" before
// the first request.
func (b *backend) eventMountPath() string {
	if p := b.mountPath.Load(); p != nil {
		return *p
	}
	return ""
}
