package main

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var testTime = time.Date(2025, 11, 25, 9, 30, 0, 0, time.UTC)

func fakeBinary(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestZipReproducible: the same binary makes the same zip bytes whatever
// the file's own mode and time, with one entry at the top level, mode
// 0755, at the given time.
func TestZipReproducible(t *testing.T) {
	a := fakeBinary(t, "plugin", "#!/bin/sh\necho hi\n")
	b := fakeBinary(t, "other-name", "#!/bin/sh\necho hi\n")
	if err := os.Chtimes(b, time.Now(), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(b, 0o500); err != nil {
		t.Fatal(err)
	}
	var za, zb bytes.Buffer
	if err := writeZip(&za, testTime, "vault-plugin-secrets-nhncert", a); err != nil {
		t.Fatal(err)
	}
	if err := writeZip(&zb, testTime.In(time.FixedZone("KST", 9*3600)), "vault-plugin-secrets-nhncert", b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(za.Bytes(), zb.Bytes()) {
		t.Fatal("two zips of the same binary differ")
	}
	zr, err := zip.NewReader(bytes.NewReader(za.Bytes()), int64(za.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 {
		t.Fatalf("zip has %d entries, want 1", len(zr.File))
	}
	f := zr.File[0]
	if f.Name != "vault-plugin-secrets-nhncert" || f.Mode() != 0o755 || !f.Modified.Equal(testTime) {
		t.Fatalf("entry %q mode %v time %v; want vault-plugin-secrets-nhncert 0755 %v", f.Name, f.Mode(), f.Modified, testTime)
	}
}

// TestOCIReproducible: the same binaries make the same layout tar; the
// index holds one image per platform, each with one layer holding only
// the binary.
func TestOCIReproducible(t *testing.T) {
	amd := fakeBinary(t, "amd64", "amd64 binary")
	arm := fakeBinary(t, "arm64", "arm64 binary")
	plats := []platformBinary{{"linux", "amd64", amd}, {"linux", "arm64", arm}}
	var out [2]bytes.Buffer
	var idx v1.ImageIndex
	for i := range out {
		var err error
		idx, err = buildIndex(plats, "vault-plugin-secrets-nhncert", "v9.8.7", testTime)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeLayoutTar(&out[i], idx, "v9.8.7", testTime); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out[0].Bytes(), out[1].Bytes()) {
		t.Fatal("two image layouts of the same binaries differ")
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index %s with %d manifests; want an OCI index of 2", im.MediaType, len(im.Manifests))
	}
	for i, want := range []string{"amd64", "arm64"} {
		d := im.Manifests[i]
		if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != want {
			t.Fatalf("manifest %d platform %+v; want linux/%s", i, d.Platform, want)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("linux/%s: %d layers (%v); want 1", want, len(layers), err)
		}
	}
}

func TestClassify(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		name, text, want string
	}{
		{"MPL-2.0 (the repository's own LICENSE)", read("../../LICENSE"), "MPL-2.0"},
		{"MIT", "Permission is hereby granted, free of charge, to any person obtaining a copy", "MIT"},
		{"BSD-3", "Redistribution and use in source and binary forms, with or without\nmodification ... Neither the name of Google Inc. nor", "BSD-3-Clause"},
		{"BSD-2", "Redistribution and use in source and binary forms, with or without modification, are permitted", "BSD-2-Clause"},
		{"Apache", "Apache License\n   Version 2.0, January 2004", "Apache-2.0"},
		{"ISC", "Permission to use, copy, modify, and/or distribute this software for any purpose with or without fee", "ISC"},
		{"GPL", "GNU GENERAL PUBLIC LICENSE\nVersion 3", "GPL"},
		{"LGPL", "GNU LESSER GENERAL PUBLIC LICENSE", "LGPL"},
		{"unknown", "All rights reserved.", ""},
	} {
		if got := strings.Join(classify(c.text), ","); got != c.want {
			t.Errorf("%s: classify says %q, want %q", c.name, got, c.want)
		}
	}
}

// TestCheckLicensesFails: a module whose license is not compatible, or
// not recognised, fails the check, and says which.
func TestCheckLicensesFails(t *testing.T) {
	dir := func(files map[string]string) string {
		d := t.TempDir()
		for n, s := range files {
			if err := os.WriteFile(filepath.Join(d, n), []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	ok := &module{Path: "example.com/ok", Version: "v1.0.0", Dir: dir(map[string]string{"LICENSE": "Permission is hereby granted, free of charge"})}
	gpl := &module{Path: "example.com/gpl", Version: "v1.0.0", Dir: dir(map[string]string{"COPYING": "GNU GENERAL PUBLIC LICENSE"})}
	none := &module{Path: "example.com/none", Version: "v1.0.0", Dir: dir(map[string]string{"README": "hello"})}
	var out bytes.Buffer
	if err := checkLicenses(&out, []*module{ok}); err != nil {
		t.Fatalf("an MIT module fails: %v", err)
	}
	err := checkLicenses(&out, []*module{ok, gpl, none})
	if err == nil || !strings.Contains(err.Error(), "example.com/gpl v1.0.0: GPL is not compatible") || !strings.Contains(err.Error(), "example.com/none v1.0.0: no license recognised") {
		t.Fatalf("GPL and unlicensed modules: error %v", err)
	}
}
