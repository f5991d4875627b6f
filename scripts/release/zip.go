package main

import (
	"archive/zip"
	"io"
	"os"
	"time"
)

// writeZip writes a zip holding the one file bin as name, at the top level
// as HashiCorp's release zips do, with mode 0755 and time mtime (UTC):
// nothing of the machine that built it (owner, umask, clock) gets in, so
// the same binary always makes the same bytes.
func writeZip(w io.Writer, mtime time.Time, name, bin string) error {
	in, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer in.Close()
	zw := zip.NewWriter(w)
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: mtime.UTC()}
	h.SetMode(0o755)
	fw, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(fw, in); err != nil {
		return err
	}
	return zw.Close()
}
