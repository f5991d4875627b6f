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

// TestKubeReadmeManifests holds the README's Kubernetes sections to the
// manifests the Kubernetes tests apply: every YAML block there is one file
// of deploy/kubernetes, as it is (its first line names it), and every file
// there is shown. It needs no binaries, so it runs (and fails) also where
// the tier is skipped.
func TestKubeReadmeManifests(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	section := kubeSection(t, string(readme))
	blocks := regexp.MustCompile("(?ms)^```yaml\n(.*?)^```").FindAllStringSubmatch(section, -1)
	require.NotEmpty(t, blocks, "the README's Kubernetes sections have no yaml block")

	shown := map[string]bool{}
	header := regexp.MustCompile(`^# (deploy/kubernetes/\S+\.yaml)\n`)
	for i, b := range blocks {
		m := header.FindStringSubmatch(b[1])
		if !assert.NotNil(t, m, "yaml block %d of the Kubernetes sections does not begin with the line '# deploy/kubernetes/<file>.yaml' that names its file:\n%s", i+1, b[1]) {
			continue
		}
		file := m[1]
		assert.False(t, shown[file], "%s is shown twice", file)
		shown[file] = true
		want, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(file)))
		if !assert.NoError(t, err, "the README shows %s", file) {
			continue
		}
		if line, ok := firstDifference(string(want), b[1]); !ok {
			t.Errorf("the README's block for %s differs from the file the tests apply, first at line %d:\n  file:   %q\n  README: %q",
				file, line+1, lineOf(string(want), line), lineOf(b[1], line))
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
		assert.True(t, shown[filepath.ToSlash(rel)], "the README does not show %s", filepath.ToSlash(rel))
		return nil
	})
	require.NoError(t, err)
}

// kubeSection returns the README from its first "### Kubernetes" heading
// to the next second-level heading.
func kubeSection(t *testing.T, readme string) string {
	t.Helper()
	start := strings.Index(readme, "\n### Kubernetes")
	require.GreaterOrEqual(t, start, 0, "the README has no '### Kubernetes' section")
	rest := readme[start+1:]
	if end := strings.Index(rest, "\n## "); end >= 0 {
		rest = rest[:end]
	}
	return rest
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
