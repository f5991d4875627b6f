package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "zip":
		err = cmdZip(os.Args[2:])
	case "oci":
		err = cmdOCI(os.Args[2:])
	case "licenses":
		err = cmdLicenses(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "release %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: release zip|oci|licenses ... (see doc.go)")
	os.Exit(2)
}

// mtimeFlag is a Unix time in seconds (the release commit's time), the
// only time any artifact carries.
type mtimeFlag struct{ t time.Time }

func (m *mtimeFlag) String() string { return strconv.FormatInt(m.t.Unix(), 10) }

func (m *mtimeFlag) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("-mtime wants Unix seconds, not %q", s)
	}
	m.t = time.Unix(n, 0).UTC()
	return nil
}

func cmdZip(args []string) error {
	fs := flag.NewFlagSet("zip", flag.ExitOnError)
	out := fs.String("o", "", "the zip to write")
	name := fs.String("name", "", "the entry's name in the zip (default: the binary's base name)")
	var mtime mtimeFlag
	fs.Var(&mtime, "mtime", "the entry's modification time, Unix seconds")
	fs.Parse(args)
	if *out == "" || mtime.t.IsZero() || fs.NArg() != 1 {
		return fmt.Errorf("need -o, -mtime and one binary")
	}
	bin := fs.Arg(0)
	if *name == "" {
		*name = baseName(bin)
	}
	return writeFileAtomic(*out, func(f *os.File) error { return writeZip(f, mtime.t, *name, bin) })
}

func cmdOCI(args []string) error {
	fs := flag.NewFlagSet("oci", flag.ExitOnError)
	out := fs.String("o", "", "the OCI image layout tar to write")
	version := fs.String("version", "", "the plugin's version (the image's tag and ref.name)")
	binName := fs.String("name", "", "the binary's name in the image (at its root)")
	push := fs.String("push", "", "also push the index to this reference (registry/repository:tag); credentials from the Docker config")
	var mtime mtimeFlag
	fs.Var(&mtime, "mtime", "the time every image records, Unix seconds")
	fs.Parse(args)
	if *out == "" || *version == "" || *binName == "" || mtime.t.IsZero() || fs.NArg() == 0 {
		return fmt.Errorf("need -o, -version, -name, -mtime and at least one os/arch=binary")
	}
	var plats []platformBinary
	for _, a := range fs.Args() {
		pb, err := parsePlatformBinary(a)
		if err != nil {
			return err
		}
		plats = append(plats, pb)
	}
	idx, err := buildIndex(plats, *binName, *version, mtime.t)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(*out, func(f *os.File) error { return writeLayoutTar(f, idx, *version, mtime.t) }); err != nil {
		return err
	}
	if *push != "" {
		return pushIndex(idx, *push)
	}
	return nil
}

func cmdLicenses(args []string) error {
	fs := flag.NewFlagSet("licenses", flag.ExitOnError)
	plats := fs.String("platforms", "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64,windows/amd64", "the platforms whose builds are checked")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return fmt.Errorf("need one package (./cmd/vault-plugin-secrets-nhncert)")
	}
	mods, err := compiledModules(fs.Arg(0), strings.Split(*plats, ","))
	if err != nil {
		return err
	}
	return checkLicenses(os.Stdout, mods)
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// writeFileAtomic writes path through fill into a temporary file beside it
// and renames it into place, so that a failed run leaves no partial
// artifact.
func writeFileAtomic(path string, fill func(*os.File) error) error {
	f, err := os.CreateTemp(dirOf(path), ".release-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i+1]
	}
	return "."
}
