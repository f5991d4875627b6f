package integration

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kubeDoc is the page that shows the Kubernetes manifests (the README's
// Kubernetes sections moved there).
const kubeDoc = "docs/kubernetes.md"

// TestKubeReadmeManifests holds the Kubernetes page of the docs (kubeDoc)
// to the manifests the Kubernetes tests apply: every YAML block there is
// one file of deploy/kubernetes, as it is (its first line names it), and
// every file there is shown. It needs no binaries, so it runs (and fails)
// also where the tier is skipped.
func TestKubeReadmeManifests(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(kubeDoc)))
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?ms)^```yaml\n(.*?)^```").FindAllStringSubmatch(string(doc), -1)
	require.NotEmpty(t, blocks, "%s has no yaml block", kubeDoc)

	shown := map[string]bool{}
	header := regexp.MustCompile(`^# (deploy/kubernetes/\S+\.yaml)\n`)
	for i, b := range blocks {
		m := header.FindStringSubmatch(b[1])
		if !assert.NotNil(t, m, "yaml block %d of %s does not begin with the line '# deploy/kubernetes/<file>.yaml' that names its file:\n%s", i+1, kubeDoc, b[1]) {
			continue
		}
		file := m[1]
		assert.False(t, shown[file], "%s is shown twice", file)
		shown[file] = true
		want, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(file)))
		if !assert.NoError(t, err, "%s shows %s", kubeDoc, file) {
			continue
		}
		if line, ok := firstDifference(string(want), b[1]); !ok {
			t.Errorf("%s's block for %s differs from the file the tests apply, first at line %d:\n  file: %q\n  doc:  %q",
				kubeDoc, file, line+1, lineOf(string(want), line), lineOf(b[1], line))
		}
	}
	err = filepath.WalkDir(manifestDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		rel, err := filepath.Rel("..", p)
		if err != nil {
			return err
		}
		assert.True(t, shown[filepath.ToSlash(rel)], "%s does not show %s", kubeDoc, filepath.ToSlash(rel))
		return nil
	})
	require.NoError(t, err)
}

// firstDifference compares a and b line by line; it returns the index of
// the first line that differs, and false, or true when they are equal.
func firstDifference(a, b string) (int, bool) {
	if a == b {
		return 0, true
	}
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; ; i++ {
		if i >= len(la) || i >= len(lb) || la[i] != lb[i] {
			return i, false
		}
	}
}

// lineOf returns line i of s, or "(end of text)".
func lineOf(s string, i int) string {
	l := strings.Split(s, "\n")
	if i < len(l) {
		return l[i]
	}
	return "(end of text)"
}
