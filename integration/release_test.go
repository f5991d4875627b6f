package integration

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The release tests check what `make release` wrote, as a user would use
// it. `make release-check` (scripts/release-check.sh) builds the artifacts
// and sets:
//
//	NHNCERT_RELEASE_DIST     the dist/ directory
//	NHNCERT_RELEASE_VERSION  the version it was built as (vX.Y.Z)
//	NHNCERT_RELEASE_GNUPGHOME  the throwaway keyring that signed SHA256SUMS
//
// Without them (a plain `make integration`) they skip, saying so.

type releaseDist struct {
	dir, version, prefix string
}

func requireRelease(t *testing.T) releaseDist {
	t.Helper()
	requireVault(t)
	d := releaseDist{dir: os.Getenv("NHNCERT_RELEASE_DIST"), version: os.Getenv("NHNCERT_RELEASE_VERSION")}
	if d.dir == "" || d.version == "" {
		t.Skip("NHNCERT_RELEASE_DIST and NHNCERT_RELEASE_VERSION not set: the release tests run in `make release-check` (part of `make test`)")
	}
	d.prefix = pluginName + "_" + strings.TrimPrefix(d.version, "v")
	return d
}

func (d releaseDist) path(suffix string) string { return filepath.Join(d.dir, d.prefix+suffix) }

// unzipBinary extracts the linux/amd64 zip into dir as a user would
// (`unzip`), checks it holds the one binary at the top level, mode 0755,
// and returns the binary's path and sha256.
func (d releaseDist) unzipBinary(t *testing.T, dir string) (string, string) {
	t.Helper()
	zipPath := d.path("_linux_amd64.zip")
	zr, err := zip.OpenReader(zipPath)
	require.NoError(t, err)
	defer zr.Close()
	require.Len(t, zr.File, 1, "%s holds %d entries, want the binary only", zipPath, len(zr.File))
	f := zr.File[0]
	require.Equal(t, pluginName, f.Name, "%s: entry name", zipPath)
	require.Equal(t, os.FileMode(0o755), f.Mode(), "%s: entry mode", zipPath)
	out := filepath.Join(dir, pluginName)
	if unzip, err := exec.LookPath("unzip"); err == nil {
		b, err := exec.Command(unzip, "-o", "-d", dir, zipPath).CombinedOutput()
		require.NoError(t, err, "unzip %s: %s", zipPath, b)
	} else {
		rc, err := f.Open()
		require.NoError(t, err)
		w, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		require.NoError(t, err)
		_, err = io.Copy(w, rc)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		rc.Close()
	}
	st, err := os.Stat(out)
	require.NoError(t, err)
	require.NotZero(t, st.Mode()&0o111, "the unzipped binary is not executable")
	return out, fileSHA256(t, out)
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// TestReleaseSums checks SHA256SUMS with sha256sum -c (every zip, SBOM and
// the image listed), its signature with gpg --verify, and that a changed
// SHA256SUMS fails the signature.
func TestReleaseSums(t *testing.T) {
	d := requireRelease(t)
	sums := d.path("_SHA256SUMS")
	b, err := os.ReadFile(sums)
	require.NoError(t, err)
	t.Logf("%s:\n%s", filepath.Base(sums), b)
	for _, want := range []string{"_linux_amd64.zip", "_linux_amd64.cdx.json", "_oci.tar"} {
		assert.Contains(t, string(b), "  "+d.prefix+want+"\n", "SHA256SUMS does not list %s", d.prefix+want)
	}
	cmd := exec.Command("sha256sum", "-c", filepath.Base(sums))
	cmd.Dir = d.dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "sha256sum -c: %s", out)
	t.Logf("$ sha256sum -c %s\n%s", filepath.Base(sums), out)

	home := os.Getenv("NHNCERT_RELEASE_GNUPGHOME")
	require.NotEmpty(t, home, "NHNCERT_RELEASE_GNUPGHOME not set: make release-check signs with a throwaway key")
	gpg := func(args ...string) (string, error) {
		c := exec.Command("gpg", append([]string{"--batch", "--homedir", home}, args...)...)
		o, err := c.CombinedOutput()
		return string(o), err
	}
	out2, err := gpg("--verify", sums+".sig", sums)
	require.NoError(t, err, "gpg --verify: %s", out2)
	assert.Contains(t, out2, "Good signature")
	t.Logf("$ gpg --verify %s.sig %s\n%s", filepath.Base(sums), filepath.Base(sums), out2)

	forged := filepath.Join(t.TempDir(), filepath.Base(sums))
	require.NoError(t, os.WriteFile(forged, []byte(strings.Replace(string(b), string(b[:4]), "0000", 1)), 0o644))
	out3, err := gpg("--verify", sums+".sig", forged)
	require.Error(t, err, "gpg --verify accepts a changed SHA256SUMS: %s", out3)
	assert.Contains(t, out3, "BAD signature")
}

// TestReleaseZip registers the binary unzipped from the linux/amd64 zip in
// a real Vault by its sha256, as the install docs say, enables it, reads a
// certificate, and checks the mount runs that version and that binary.
func TestReleaseZip(t *testing.T) {
	d := requireRelease(t)
	bin, sha := d.unzipBinary(t, t.TempDir())
	t.Logf("unzipped %s: sha256 %s", filepath.Base(bin), sha)

	e := newBareEnv(t, devVault)
	v := e.vault
	_, err := copyExecutable(bin, filepath.Join(v.pluginDir, pluginName))
	require.NoError(t, err)

	out := mustCLI(t, v, "plugin", "register", "-sha256="+sha, "-version="+d.version, "secret", pluginName)
	t.Logf("$ vault plugin register -sha256=%s -version=%s secret %s\n%s", sha, d.version, pluginName, out)
	out = mustCLI(t, v, "secrets", "enable", "-path="+mount, "-plugin-version="+d.version, pluginName)
	t.Logf("$ vault secrets enable -path=%s -plugin-version=%s %s\n%s", mount, d.version, pluginName, out)
	require.NoError(t, e.configure(mount))
	s := readCert(t, v, "example.com", nil)
	require.NotEmpty(t, str(t, s.Data, "certificate"))
	t.Logf("vault read %s/certs/example.com: serial %s", mount, str(t, s.Data, "serial_number"))

	var mounts map[string]map[string]any
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, v, "secrets", "list", "-detailed", "-format=json")), &mounts))
	m := mounts[mount+"/"]
	assert.Equal(t, d.version, m["running_plugin_version"], "the mount's running_plugin_version")
	assert.Equal(t, sha, m["running_sha256"], "the mount's running_sha256")
	out = mustCLI(t, v, "plugin", "info", "-version="+d.version, "secret", pluginName)
	t.Logf("$ vault plugin info -version=%s secret %s\n%s", d.version, pluginName, out)
}

// TestReleaseImage opens the image layout with skopeo (Debian's package):
// the index holds linux/amd64 and linux/arm64, each image's one layer
// holds only the binary at /vault-plugin-secrets-nhncert, and the
// linux/amd64 binary is the zip's, byte for byte.
func TestReleaseImage(t *testing.T) {
	d := requireRelease(t)
	skopeo, err := exec.LookPath("skopeo")
	require.NoError(t, err, "skopeo is not installed (make release-check installs Debian's package)")
	ver, _ := exec.Command(skopeo, "--version").CombinedOutput()
	t.Logf("%s", strings.TrimSpace(string(ver)))
	ref := "oci-archive:" + d.path("_oci.tar") + ":" + d.version
	run := func(args ...string) string {
		t.Helper()
		var stderr strings.Builder
		c := exec.Command(skopeo, args...)
		c.Stderr = &stderr
		b, err := c.Output()
		require.NoError(t, err, "skopeo %s: %s", strings.Join(args, " "), stderr.String())
		return string(b)
	}

	raw := run("inspect", "--raw", ref)
	t.Logf("$ skopeo inspect --raw %s\n%s", ref, raw)
	var idx struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest   string `json:"digest"`
			Platform struct {
				OS           string `json:"os"`
				Architecture string `json:"architecture"`
			} `json:"platform"`
		} `json:"manifests"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &idx))
	require.Equal(t, "application/vnd.oci.image.index.v1+json", idx.MediaType)
	var plats []string
	for _, m := range idx.Manifests {
		plats = append(plats, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	require.ElementsMatch(t, []string{"linux/amd64", "linux/arm64"}, plats, "the index's platforms")

	for _, arch := range []string{"amd64", "arm64"} {
		out := run("inspect", "--override-os", "linux", "--override-arch", arch, ref)
		t.Logf("$ skopeo inspect --override-arch %s %s\n%s", arch, ref, out)
		var info struct {
			Architecture, Os string
			Layers           []string
		}
		require.NoError(t, json.Unmarshal([]byte(out), &info))
		assert.Equal(t, arch, info.Architecture)
		assert.Equal(t, "linux", info.Os)
		assert.Len(t, info.Layers, 1, "linux/%s: layers", arch)
	}

	// The linux/amd64 image's binary, taken out with skopeo copy.
	out := filepath.Join(t.TempDir(), "amd64")
	run("copy", "--override-os", "linux", "--override-arch", "amd64", ref, "dir:"+out)
	var man struct {
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &man))
	require.Len(t, man.Layers, 1)
	lf, err := os.Open(filepath.Join(out, strings.TrimPrefix(man.Layers[0].Digest, "sha256:")))
	require.NoError(t, err)
	defer lf.Close()
	gz, err := gzip.NewReader(lf)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	h, err := tr.Next()
	require.NoError(t, err)
	assert.Equal(t, pluginName, h.Name, "the layer's entry")
	assert.Equal(t, int64(0o755), h.Mode, "the binary's mode in the layer")
	hs := sha256.New()
	_, err = io.Copy(hs, tr)
	require.NoError(t, err)
	_, err = tr.Next()
	require.ErrorIs(t, err, io.EOF, "the layer holds more than the binary")
	imageSHA := hex.EncodeToString(hs.Sum(nil))

	_, zipSHA := d.unzipBinary(t, t.TempDir())
	require.Equal(t, zipSHA, imageSHA, "the linux/amd64 image's binary differs from the zip's")
	t.Logf("linux/amd64: the image's /%s has sha256 %s, the zip's binary's", pluginName, imageSHA)
}
