package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
)

// module is one module compiled into the plugin on some platform.
type module struct {
	Path, Version, Dir string
	Platforms          []string
}

// compiledModules lists the modules whose packages pkg links on each
// platform ("os/arch"), from `go list -deps` with CGO off as the release
// builds: test-only and tool modules are not in it, standard library
// packages and the main module are left out.
func compiledModules(pkg string, platforms []string) ([]*module, error) {
	byPath := map[string]*module{}
	for _, plat := range platforms {
		goos, goarch, ok := strings.Cut(plat, "/")
		if !ok {
			return nil, fmt.Errorf("platform %q is not os/arch", plat)
		}
		cmd := exec.Command("go", "list", "-deps", "-f",
			`{{with .Module}}{{if not .Main}}{{.Path}}{{"\t"}}{{with .Replace}}{{.Path}}@{{.Version}}{{else}}{{.Version}}{{end}}{{"\t"}}{{.Dir}}{{end}}{{end}}`, pkg)
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go list -deps %s for %s: %w\n%s", pkg, plat, err, stderr.String())
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Split(sc.Text(), "\t")
			if len(f) != 3 {
				continue
			}
			m := byPath[f[0]]
			if m == nil {
				m = &module{Path: f[0], Version: f[1], Dir: f[2]}
				byPath[f[0]] = m
			}
			if len(m.Platforms) == 0 || m.Platforms[len(m.Platforms)-1] != plat {
				m.Platforms = append(m.Platforms, plat)
			}
		}
	}
	mods := make([]*module, 0, len(byPath))
	for _, m := range byPath {
		mods = append(mods, m)
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })
	return mods, nil
}

// compatible are the licenses a module compiled into the plugin may have:
// permissive ones and MPL-2.0 itself. Copyleft licenses that reach the
// whole binary (GPL, LGPL when linked statically, AGPL) are not.
var compatible = map[string]bool{
	"MPL-2.0": true, "Apache-2.0": true, "MIT": true, "BSD-2-Clause": true,
	"BSD-3-Clause": true, "ISC": true, "Unlicense": true,
}

var licenseFileName = regexp.MustCompile(`(?i)^(licen[cs]e|copying|unlicense)([-._].*)?$`)

// checkLicenses finds each module's license files in its directory (the
// module cache), classifies them, prints one line per module and fails
// when a module has no license it recognises or one that is not
// compatible.
func checkLicenses(w io.Writer, mods []*module) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tVERSION\tLICENSE\tFILES")
	var bad []string
	for _, m := range mods {
		if m.Dir == "" {
			bad = append(bad, m.Path+": not in the module cache (go mod download)")
			continue
		}
		entries, err := os.ReadDir(m.Dir)
		if err != nil {
			return err
		}
		found := map[string]bool{}
		var files []string
		for _, e := range entries {
			if e.IsDir() || !licenseFileName.MatchString(e.Name()) {
				continue
			}
			b, err := os.ReadFile(filepath.Join(m.Dir, e.Name()))
			if err != nil {
				return err
			}
			files = append(files, e.Name())
			for _, l := range classify(string(b)) {
				found[l] = true
			}
		}
		var names []string
		for l := range found {
			names = append(names, l)
			if !compatible[l] {
				bad = append(bad, fmt.Sprintf("%s %s: %s is not compatible with MPL-2.0 for a statically linked plugin", m.Path, m.Version, l))
			}
		}
		sort.Strings(names)
		if len(names) == 0 {
			names = []string{"UNKNOWN"}
			bad = append(bad, fmt.Sprintf("%s %s: no license recognised in %v", m.Path, m.Version, files))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Path, m.Version, strings.Join(names, " AND "), strings.Join(files, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d module(s) fail the license check:\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
	fmt.Fprintf(w, "licenses: all %d modules compiled into the plugin have a license compatible with MPL-2.0\n", len(mods))
	return nil
}

var space = regexp.MustCompile(`\s+`)

// classify names the licenses whose text is in a license file, by phrases
// that each license's canonical text has and the others do not. A file
// may hold more than one (go.yaml.in/yaml/v3: MIT and Apache-2.0 parts).
func classify(text string) []string {
	t := space.ReplaceAllString(strings.ToLower(text), " ")
	has := func(s ...string) bool {
		for _, p := range s {
			if strings.Contains(t, p) {
				return true
			}
		}
		return false
	}
	var out []string
	mpl := has("mozilla public license version 2.0", "mozilla public license, version 2.0", "mozilla public license, v. 2.0")
	if mpl {
		out = append(out, "MPL-2.0")
	}
	if has("apache license") && has("version 2.0") {
		out = append(out, "Apache-2.0")
	}
	if has("permission is hereby granted, free of charge") {
		out = append(out, "MIT")
	}
	if has("redistribution and use in source and binary forms") {
		if has("neither the name", "names of its contributors may be used", "name of the copyright holder nor the names") {
			out = append(out, "BSD-3-Clause")
		} else {
			out = append(out, "BSD-2-Clause")
		}
	}
	if has("permission to use, copy, modify, and/or distribute this software for any purpose", "permission to use, copy, modify, and distribute this software for any purpose") {
		out = append(out, "ISC")
	}
	if has("this is free and unencumbered software released into the public domain") {
		out = append(out, "Unlicense")
	}
	// The MPL's own text names the GNU licenses (as "Secondary Licenses"):
	// only a file that is not the MPL is read for them.
	if !mpl {
		switch {
		case has("gnu affero general public license"):
			out = append(out, "AGPL")
		case has("gnu lesser general public license", "gnu library general public license"):
			out = append(out, "LGPL")
		case has("gnu general public license"):
			out = append(out, "GPL")
		}
	}
	return out
}
