package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// refNameAnnotation names the index in the layout's index.json, so that
// `skopeo inspect oci-archive:FILE:vX.Y.Z` finds it.
const refNameAnnotation = "org.opencontainers.image.ref.name"

type platformBinary struct {
	os, arch, bin string
}

func parsePlatformBinary(s string) (platformBinary, error) {
	plat, bin, ok := strings.Cut(s, "=")
	osName, arch, ok2 := strings.Cut(plat, "/")
	if !ok || !ok2 || bin == "" || osName == "" || arch == "" {
		return platformBinary{}, fmt.Errorf("want os/arch=binary, not %q", s)
	}
	return platformBinary{osName, arch, bin}, nil
}

// buildIndex makes the multi-arch image: one image per platform, each of
// one layer that holds only the binary, at /binName, mode 0755, owned by
// root, with mtime as every time it records.
func buildIndex(plats []platformBinary, binName, version string, mtime time.Time) (v1.ImageIndex, error) {
	annotations := map[string]string{
		"org.opencontainers.image.title":    binName,
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.created":  mtime.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses": "MPL-2.0",
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range plats {
		img, err := buildImage(p, binName, mtime, annotations)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", p.os, p.arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.os, Architecture: p.arch}},
		})
	}
	return mutate.Annotations(idx, annotations).(v1.ImageIndex), nil
}

func buildImage(p platformBinary, binName string, mtime time.Time, annotations map[string]string) (v1.Image, error) {
	bin, err := os.ReadFile(p.bin)
	if err != nil {
		return nil, err
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: binName, Mode: 0o755, Size: int64(len(bin)),
		ModTime: mtime, Format: tar.FormatUSTAR,
	}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := layerTar.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: mtime}, CreatedBy: "scripts/release.sh: the plugin binary at /" + binName},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.os, p.arch
	cf.Created = v1.Time{Time: mtime}
	cf.Config.Labels = annotations
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	return mutate.Annotations(img, annotations).(v1.Image), nil
}

// writeLayoutTar writes idx as an OCI image layout (index.json naming it
// by version) and tars it: entries sorted, mode 0644/0755, owner root,
// time mtime.
func writeLayoutTar(w io.Writer, idx v1.ImageIndex, version string, mtime time.Time) error {
	dir, err := os.MkdirTemp("", "nhncert-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameAnnotation: version})); err != nil {
		return err
	}
	var paths []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, path := range paths {
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: rel, ModTime: mtime, Format: tar.FormatUSTAR}
		if st.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, rel+"/", 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(b))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	return tw.Close()
}

// pushIndex pushes idx to ref with the credentials of the Docker config
// (docker login, or the registry's login action in CI).
func pushIndex(idx v1.ImageIndex, ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(r, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", r.Context().Name(), d)
	return nil
}
